// Thin, errno-faithful wrappers over the userfaultfd API (linux/userfaultfd.h). No policy here: which
// pages to copy and when is the MappingManager's business (core/uffd/mapping_manager.cpp).
//
// Opening. The kernel allows a full userfaultfd (one that also handles faults raised by the kernel itself,
// e.g. read(2) into a missing page) only to a process with CAP_SYS_PTRACE or when
// vm.unprivileged_userfaultfd=1, or through /dev/userfaultfd when it is accessible. Everyone else gets one
// only with UFFD_USER_MODE_ONLY (kernel >= 5.11): then a kernel access to a missing page fails with EFAULT
// instead of faulting, which is why the shim fills pages before handing them to a syscall
// (MappingManager::fill_for_kernel). open_uffd tries the full kind only where it can succeed, so that an
// unprivileged process does not log a refused syscall for nothing.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/util/own_fds.hpp"
#include "core/util/result.hpp"

struct pollfd;

namespace mf::uffd {

struct Handle {
  int fd = -1;
  bool user_mode_only = false;  // kernel accesses to missing pages get EFAULT
  bool can_move = false;        // UFFDIO_MOVE negotiated (Linux 6.8+): whole huge pages can be placed
  std::string how;              // for the mode log line
};

// Opens a non-blocking, close-on-exec userfaultfd and negotiates the API: UFFD_FEATURE_MOVE when the
// kernel offers it (probed on a throwaway fd, since UFFDIO_API can be called once per fd), nothing else (we
// fill before fork and handle unmap/remap in the hooks, see DESIGN.md). Errors: EPERM (seccomp, policy),
// ENOSYS (no userfaultfd in the kernel), EINVAL (API mismatch).
Result<Handle> open_uffd();

// Registers [addr, addr+len) in MISSING mode; fails with ENOTSUP when UFFDIO_COPY is not offered there.
Result<void> register_missing(int fd, uintptr_t addr, uint64_t len);
Result<void> unregister(int fd, uintptr_t addr, uint64_t len);
// Wakes threads blocked on faults in the range (their access is retried). Errors are ignored by callers.
int wake(int fd, uintptr_t addr, uint64_t len);

enum class CopyStatus { ok, gone, failed };
struct CopyResult {
  CopyStatus status = CopyStatus::ok;
  int err = 0;           // errno when failed
  uint64_t copied = 0;   // bytes this call placed (pages found present are not counted)
};

// Copies len bytes (a multiple of the page size) from src (not registered memory) to dst (registered) with
// UFFDIO_COPY, which also wakes the threads waiting on those pages. Pages already present (EEXIST, or a
// partial copy reported as EAGAIN with copy > 0) are skipped and count as done: the whole range is present
// when the status is ok. ENOENT/ESRCH (the range is no longer registered or the mm is gone) -> gone.
CopyResult copy(int fd, uintptr_t dst, const std::byte* src, uint64_t len, uint64_t page);

// Moves len bytes (a multiple of the page size) of anonymous memory from src (ours, not registered, same
// protection as dst) to dst (registered, missing) with UFFDIO_MOVE, waking the waiters. When src and dst
// are 2 MiB-aligned and src holds a transparent huge page, the kernel moves the whole PMD: dst is then
// mapped by one huge page instead of 512 small ones. `copied` is what was moved before any error; the caller
// places the rest with copy() (src still holds those bytes). EEXIST: a dst page is present; EINVAL: the two
// areas are not compatible (protection, mlock); EBUSY: src is shared (after fork).
CopyResult move(int fd, uintptr_t dst, std::byte* src, uint64_t len);

// The same on the engine's relocatable userfaultfd (core/util/own_fds.hpp OwnFd): the number is read at the
// call; when the call fails and the number changed meanwhile (the program's dup2/close onto it moved the fd:
// the old number was the program's file by then), it is retried once with the new number.
inline Result<void> register_missing(const OwnFd& h, uintptr_t addr, uint64_t len) {
  const int fd = h.get();
  auto r = register_missing(fd, addr, len);
  if (!r && h.get() != fd) r = register_missing(h.get(), addr, len);
  return r;
}
inline Result<void> unregister(const OwnFd& h, uintptr_t addr, uint64_t len) {
  const int fd = h.get();
  auto r = unregister(fd, addr, len);
  if (!r && h.get() != fd) r = unregister(h.get(), addr, len);
  return r;
}
inline int wake(const OwnFd& h, uintptr_t addr, uint64_t len) {
  const int fd = h.get();
  int r = wake(fd, addr, len);
  if (r != 0 && h.get() != fd) r = wake(h.get(), addr, len);
  return r;
}
CopyResult copy(int fd, uintptr_t dst, const std::byte* src, uint64_t len, uint64_t page);
CopyResult move(int fd, uintptr_t dst, std::byte* src, uint64_t len);
inline CopyResult copy(const OwnFd& h, uintptr_t dst, const std::byte* src, uint64_t len, uint64_t page) {
  const int fd = h.get();
  CopyResult r = copy(fd, dst, src, len, page);
  if (r.status != CopyStatus::ok && h.get() != fd) {
    const CopyResult rest = copy(h.get(), dst + r.copied, src + r.copied, len - r.copied, page);
    r = CopyResult{rest.status, rest.err, r.copied + rest.copied};
  }
  return r;
}
inline CopyResult move(const OwnFd& h, uintptr_t dst, std::byte* src, uint64_t len) {
  const int fd = h.get();
  CopyResult r = move(fd, dst, src, len);
  if (r.status != CopyStatus::ok && r.copied == 0 && h.get() != fd) r = move(h.get(), dst, src, len);
  return r;
}

// The calls on an open userfaultfd (the ioctls above, and the fault thread's poll and read) go through these,
// so that tests can inject failures (tests/unit/uffd/test_fault_errors.cpp). Libc's by default.
int sys_ioctl(int fd, unsigned long request, void* arg);
ssize_t sys_read(int fd, void* buf, size_t n);
int sys_poll(struct pollfd* fds, unsigned long n, int timeout);

// Test seam, never set by the shim: replaces the calls above for the whole process (null: libc's).
struct TestSyscalls {
  int (*ioctl)(int fd, unsigned long request, void* arg) = nullptr;
  ssize_t (*read)(int fd, void* buf, size_t n) = nullptr;
  int (*poll)(struct pollfd* fds, unsigned long n, int timeout) = nullptr;
};
void set_syscalls_for_test(const TestSyscalls& s);

}  // namespace mf::uffd
