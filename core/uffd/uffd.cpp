#include "core/uffd/uffd.hpp"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1  // linux/userfaultfd.h since 5.11; older headers lack it
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)  // /dev/userfaultfd (5.11+)
#endif

namespace mf::uffd {
namespace {

int libc_ioctl(int fd, unsigned long request, void* arg) { return ::ioctl(fd, request, arg); }
std::atomic<int (*)(int, unsigned long, void*)> g_ioctl{libc_ioctl};
std::atomic<ssize_t (*)(int, void*, size_t)> g_read{::read};
std::atomic<int (*)(pollfd*, nfds_t, int)> g_poll{::poll};

}  // namespace

int sys_ioctl(int fd, unsigned long request, void* arg) {
  return g_ioctl.load(std::memory_order_relaxed)(fd, request, arg);
}
ssize_t sys_read(int fd, void* buf, size_t n) { return g_read.load(std::memory_order_relaxed)(fd, buf, n); }
int sys_poll(pollfd* fds, nfds_t n, int timeout) { return g_poll.load(std::memory_order_relaxed)(fds, n, timeout); }

void set_syscalls_for_test(const TestSyscalls& s) {
  g_ioctl.store(s.ioctl ? s.ioctl : libc_ioctl);
  g_read.store(s.read ? s.read : ::read);
  g_poll.store(s.poll ? s.poll : ::poll);
}

namespace {

// CAP_SYS_PTRACE (bit 19) in the effective set, read from /proc (no libcap dependency).
bool has_cap_sys_ptrace() {
  FILE* f = std::fopen("/proc/self/status", "re");
  if (!f) return false;
  char line[256];
  unsigned long long eff = 0;
  bool found = false;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "CapEff: %llx", &eff) == 1) {
      found = true;
      break;
    }
  std::fclose(f);
  return found && (eff & (1ull << 19)) != 0;
}

bool sysctl_unprivileged() {
  FILE* f = std::fopen("/proc/sys/vm/unprivileged_userfaultfd", "re");
  if (!f) return false;
  int v = 0;
  const bool ok = std::fscanf(f, "%d", &v) == 1;
  std::fclose(f);
  return ok && v == 1;
}

int sys_userfaultfd(int flags) { return static_cast<int>(::syscall(SYS_userfaultfd, flags)); }

// Not in the uapi headers of older distributions (Debian 12 ships 6.1's): values from Linux 6.8's.
constexpr uint64_t kFeatureMove = 1ull << 16;  // UFFD_FEATURE_MOVE
struct MoveArgs {                               // struct uffdio_move
  uint64_t dst, src, len, mode;
  int64_t move;
};
constexpr unsigned long kIoctlMove = _IOWR(UFFDIO, 0x05, MoveArgs);  // UFFDIO_MOVE

// The features this kernel offers: UFFDIO_API with none asked reports them, on a throwaway fd (a user-mode-
// only one, which anyone allowed userfaultfd at all may open).
uint64_t offered_features() {
  const int fd = sys_userfaultfd(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
  if (fd < 0) return 0;
  uffdio_api api{};
  api.api = UFFD_API;
  const bool ok = ::ioctl(fd, UFFDIO_API, &api) == 0;
  ::close(fd);
  return ok ? api.features : 0;
}

Result<void> negotiate(int fd, uint64_t features) {
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = features;
  if (::ioctl(fd, UFFDIO_API, &api) != 0) {
    const int e = errno;
    return make_error(e, std::string("UFFDIO_API: ") + std::strerror(e));
  }
  return {};
}

}  // namespace

Result<Handle> open_uffd() {
  const int flags = O_CLOEXEC | O_NONBLOCK;
  Handle h;
  if (has_cap_sys_ptrace() || sysctl_unprivileged()) {
    h.fd = sys_userfaultfd(flags);
    h.how = "userfaultfd (privileged: kernel accesses fault too)";
  }
  if (h.fd < 0) {
    const int dev = ::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) {
      h.fd = ::ioctl(dev, USERFAULTFD_IOC_NEW, flags);
      ::close(dev);
      h.how = "/dev/userfaultfd (kernel accesses fault too)";
    }
  }
  if (h.fd < 0) {
    h.fd = sys_userfaultfd(flags | UFFD_USER_MODE_ONLY);
    h.user_mode_only = true;
    h.how = "userfaultfd with UFFD_USER_MODE_ONLY (kernel accesses to unfilled pages get EFAULT)";
  }
  if (h.fd < 0) {
    const int e = errno;
    return make_error(e, std::string("userfaultfd: ") + std::strerror(e));
  }
  h.can_move = (offered_features() & kFeatureMove) != 0;
  if (auto r = negotiate(h.fd, h.can_move ? kFeatureMove : 0); !r) {
    ::close(h.fd);
    return r.error();
  }
  return h;
}

Result<void> register_missing(int fd, uintptr_t addr, uint64_t len) {
  uffdio_register reg{};
  reg.range.start = addr;
  reg.range.len = len;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING;
  if (sys_ioctl(fd, UFFDIO_REGISTER, &reg) != 0) {
    const int e = errno;
    return make_error(e, std::string("UFFDIO_REGISTER: ") + std::strerror(e));
  }
  if ((reg.ioctls & (1ull << _UFFDIO_COPY)) == 0) {
    (void)unregister(fd, addr, len);
    return make_error(ENOTSUP, "UFFDIO_REGISTER: UFFDIO_COPY not offered for this range");
  }
  return {};
}

Result<void> unregister(int fd, uintptr_t addr, uint64_t len) {
  uffdio_range range{addr, len};
  if (sys_ioctl(fd, UFFDIO_UNREGISTER, &range) != 0) {
    const int e = errno;
    return make_error(e, std::string("UFFDIO_UNREGISTER: ") + std::strerror(e));
  }
  return {};
}

int wake(int fd, uintptr_t addr, uint64_t len) {
  uffdio_range range{addr, len};
  return sys_ioctl(fd, UFFDIO_WAKE, &range);
}

CopyResult copy(int fd, uintptr_t dst, const std::byte* src, uint64_t len, uint64_t page) {
  CopyResult out;
  uint64_t done = 0;
  int again = 0;
  while (done < len) {
    uffdio_copy c{};
    c.dst = dst + done;
    c.src = reinterpret_cast<uintptr_t>(src + done);
    c.len = len - done;
    c.mode = 0;
    if (sys_ioctl(fd, UFFDIO_COPY, &c) == 0) {
      out.copied += len - done;
      return out;
    }
    const int e = errno;
    if (c.copy > 0) {  // partial: stopped at a present page or a signal; the rest is retried
      done += static_cast<uint64_t>(c.copy);
      out.copied += static_cast<uint64_t>(c.copy);
      continue;
    }
    if (e == EEXIST) {  // the first page is already there (another filler, or the app wrote it)
      done += page;
      continue;
    }
    if (e == EAGAIN && ++again < 100) continue;  // the mm is changing (fork/mremap in progress)
    if (e == ENOENT || e == ESRCH) {
      out.status = CopyStatus::gone;
      return out;
    }
    out.status = CopyStatus::failed;
    out.err = e;
    return out;
  }
  return out;
}

CopyResult move(int fd, uintptr_t dst, std::byte* src, uint64_t len) {
  CopyResult out;
  MoveArgs m{dst, reinterpret_cast<uintptr_t>(src), len, 0, 0};
  if (sys_ioctl(fd, kIoctlMove, &m) == 0) {
    out.copied = len;
    return out;
  }
  out.err = errno;
  out.copied = m.move > 0 ? static_cast<uint64_t>(m.move) : 0;
  out.status = (out.err == ENOENT || out.err == ESRCH) ? CopyStatus::gone : CopyStatus::failed;
  return out;
}

}  // namespace mf::uffd
