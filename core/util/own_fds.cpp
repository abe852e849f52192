#include "core/util/own_fds.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <dirent.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>

namespace mf {
namespace {

// One bit per fd below kMaxFd (the default hard limit of RLIMIT_NOFILE is 2^20); fds above it are never
// ours (own_fd leaves them unregistered... and they are never that high: base() is below the soft limit).
constexpr unsigned kMaxFd = 1u << 20;
constexpr unsigned kWords = kMaxFd / 64;
constinit std::atomic<uint64_t> g_bits[kWords] = {};
constinit std::atomic<int> g_count{0};
constinit std::atomic<int> g_base{0};

bool in_range(int fd) { return fd >= 0 && static_cast<unsigned>(fd) < kMaxFd; }

// OwnFd slots. used: taken by hold_own_fd (CAS), freed by close_own_fd. num: the fd now (-1 while free).
constexpr int kSlots = 32;
struct Slot {
  std::atomic<bool> used{false};
  std::atomic<int> num{-1};
  std::atomic<OwnFdMoved> on_move{nullptr};
  std::atomic<void*> ctx{nullptr};
};
constinit Slot g_slots[kSlots] = {};

}  // namespace

int own_fd_base() {
  int b = g_base.load(std::memory_order_relaxed);
  if (b) return b;
  struct rlimit rl {};
  rlim_t soft = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
  if (soft == RLIM_INFINITY || soft > kMaxFd) soft = kMaxFd;
  rlim_t base = soft / 4 * 3;
  if (base < 64) base = soft > 64 ? 64 : soft / 2;
  b = static_cast<int>(base);
  g_base.store(b, std::memory_order_relaxed);
  return b;
}

void register_own_fd(int fd) {
  if (!in_range(fd)) return;
  uint64_t bit = uint64_t{1} << (fd % 64);
  if (!(g_bits[fd / 64].fetch_or(bit, std::memory_order_acq_rel) & bit)) g_count.fetch_add(1, std::memory_order_release);
}

void unregister_own_fd(int fd) {
  if (!in_range(fd)) return;
  uint64_t bit = uint64_t{1} << (fd % 64);
  if (g_bits[fd / 64].fetch_and(~bit, std::memory_order_acq_rel) & bit) g_count.fetch_sub(1, std::memory_order_release);
}

int own_fd(int fd) {
  if (fd < 0) return fd;
  int saved = errno;
  int moved = fd >= own_fd_base() ? fd : static_cast<int>(::syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, own_fd_base()));
  if (moved >= 0 && moved != fd) {
    // Through libc, not a raw syscall: a sanitizer runtime (TSan) tracks fds by number and would take the
    // program's next open() of this low number for a race with our eventfd()/socket().
    ::close(fd);
    fd = moved;
  }
  register_own_fd(fd);
  errno = saved;
  return fd;
}

int close_own_fd(int fd) {
  unregister_own_fd(fd);
  return static_cast<int>(::syscall(SYS_close, fd));
}

OwnFd hold_own_fd(int fd, OwnFdMoved on_move, void* ctx) {
  fd = own_fd(fd);
  if (fd < 0) return OwnFd{};
  for (Slot& s : g_slots) {
    bool expected = false;
    if (!s.used.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) continue;
    s.on_move.store(on_move, std::memory_order_relaxed);
    s.ctx.store(ctx, std::memory_order_relaxed);
    s.num.store(fd, std::memory_order_release);
    return OwnFd{&s.num};
  }
  // No slot: registered where it is, not relocatable. A static holder keeps get() working.
  auto* fixed = new std::atomic<int>(fd);
  return OwnFd{fixed};
}

int close_own_fd(OwnFd& h) {
  if (!h.num) return 0;
  int fd = h.num->exchange(-1, std::memory_order_acq_rel);
  for (Slot& s : g_slots)
    if (&s.num == h.num) {
      s.on_move.store(nullptr, std::memory_order_relaxed);
      s.used.store(false, std::memory_order_release);
    }
  h.num = nullptr;
  return fd < 0 ? 0 : close_own_fd(fd);
}

bool relocate_own_fd(int fd) {
  if (!is_own_fd(fd)) return true;
  for (Slot& s : g_slots) {
    if (s.num.load(std::memory_order_acquire) != fd) continue;
    int saved = errno;
    int moved = static_cast<int>(::syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, own_fd_base()));
    if (moved < 0) {  // EMFILE; or EBADF: the engine closed it meanwhile
      bool gone = !is_own_fd(fd);
      errno = gone ? saved : EBUSY;
      return gone;
    }
    register_own_fd(moved);
    int expected = fd;
    if (!s.num.compare_exchange_strong(expected, moved, std::memory_order_acq_rel)) {
      // The engine closed or moved it meanwhile (a racing relocation won): drop our copy.
      unregister_own_fd(moved);
      ::syscall(SYS_close, moved);
      errno = saved;
      return !is_own_fd(fd);
    }
    unregister_own_fd(fd);
    if (OwnFdMoved cb = s.on_move.load(std::memory_order_acquire)) cb(s.ctx.load(std::memory_order_relaxed));
    errno = saved;
    return true;
  }
  errno = EBUSY;
  return false;
}

bool is_own_fd(int fd) {
  if (g_count.load(std::memory_order_acquire) == 0 || !in_range(fd)) return false;
  return g_bits[fd / 64].load(std::memory_order_acquire) & (uint64_t{1} << (fd % 64));
}

int next_own_fd(unsigned lo, unsigned hi) {
  if (g_count.load(std::memory_order_acquire) == 0 || lo >= kMaxFd) return -1;
  if (hi >= kMaxFd) hi = kMaxFd - 1;
  for (unsigned w = lo / 64; w <= hi / 64; ++w) {
    uint64_t bits = g_bits[w].load(std::memory_order_acquire);
    if (w == lo / 64) bits &= ~uint64_t{0} << (lo % 64);
    if (w == hi / 64 && hi % 64 != 63) bits &= (uint64_t{1} << (hi % 64 + 1)) - 1;
    if (bits) return static_cast<int>(w * 64 + static_cast<unsigned>(__builtin_ctzll(bits)));
  }
  return -1;
}

std::vector<OpenFd> open_fds() {
  std::vector<OpenFd> out;
  int dir = static_cast<int>(::syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir < 0) return out;
  alignas(8) char buf[4096];
  for (;;) {
    long n = ::syscall(SYS_getdents64, dir, buf, sizeof buf);
    if (n <= 0) break;
    for (long pos = 0; pos < n;) {
      auto* e = reinterpret_cast<struct dirent64*>(buf + pos);
      pos += e->d_reclen;
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      int fd = std::atoi(e->d_name);
      if (fd == dir) continue;
      char target[256];
      long len = ::syscall(SYS_readlinkat, dir, e->d_name, target, sizeof target - 1);
      out.push_back(OpenFd{fd, std::string(target, len > 0 ? static_cast<size_t>(len) : 0)});
    }
  }
  ::syscall(SYS_close, dir);
  return out;
}

void register_new_fds(const std::vector<OpenFd>& before) {
  for (const auto& now : open_fds()) {
    bool known = false;
    for (const auto& b : before) known = known || (b.fd == now.fd && b.target == now.target);
    if (!known) register_own_fd(now.fd);
  }
}

void reset_own_fds_for_test() {
  for (auto& w : g_bits) w.store(0, std::memory_order_relaxed);
  g_count.store(0, std::memory_order_release);
  for (Slot& s : g_slots) {
    s.num.store(-1, std::memory_order_relaxed);
    s.on_move.store(nullptr, std::memory_order_relaxed);
    s.used.store(false, std::memory_order_release);
  }
}

}  // namespace mf
