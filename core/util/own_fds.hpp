// The engine's own fds (the userfaultfd, the fault loop's eventfd, the SIGBUS memfd, curl's sockets): a
// process-wide lock-free registry, and the rule that they live at high numbers.
//
// The program must not be able to close them (daemonizing code and subprocess helpers close fds 3..N; a
// closed userfaultfd unregisters every range and missing pages would fill with zeros): the shim's close,
// close_range and closefrom hooks skip registered fds and report success. dup2/dup3 onto one, and the
// program's close() of one, give the number to the program: an fd held in an OwnFd (below) is first moved
// to another high number (relocate_own_fd); one that cannot move (curl's sockets) makes dup2/dup3 fail with
// EBUSY and close() report success while the number stays ours (shim/hooks_open.cpp). They are created at or above base(), derived from RLIMIT_NOFILE's soft limit,
// so the program's lowest-free allocations (open after closing 0-2, the daemon pattern) never meet them.
//
// The engine closes its own fds with close_own_fd(), which unregisters first.
#pragma once

#include <atomic>
#include <cstddef>
#include <string>
#include <vector>

namespace mf {

// Moves fd to a number >= own_fd_base() (F_DUPFD_CLOEXEC; the original is closed) and registers it. Returns
// the new number, or fd itself (registered) if it cannot move; fd < 0 is returned as is (errno kept).
int own_fd(int fd);

// Registers fd where it is (for fds whose number something else chose), or unregisters it.
void register_own_fd(int fd);
void unregister_own_fd(int fd);

// Unregisters fd and closes it (the close system call itself: no hook sees it).
int close_own_fd(int fd);

// True when fd is one of ours. One relaxed load when the engine owns no fd.
bool is_own_fd(int fd);

// The lowest registered fd in [lo, hi], or -1.
int next_own_fd(unsigned lo, unsigned hi);

// Where own_fd() puts fds: three quarters of RLIMIT_NOFILE's soft limit, at least 64 (read once).
int own_fd_base();

// The fds open now, with what /proc/self/fd says they are ("socket:[123]"), read with raw system calls.
struct OpenFd {
  int fd;
  std::string target;
};
std::vector<OpenFd> open_fds();

// Registers the fds open now that were not open (or were something else) in `before`: for fds a library
// creates where no callback sees them (curl_multi_init's wakeup socketpair). Called around that library call;
// a program thread opening an fd in the same instant would have its fd registered too (it would then
// survive that thread's close): the window is one curl_multi_init, once per process.
void register_new_fds(const std::vector<OpenFd>& before);

// A relocatable own fd: the engine reads the number through get() at each use, because the program's
// dup2/dup3/close onto the number moves the fd elsewhere (relocate_own_fd). Backed by one of a fixed set of
// process-wide slots (never freed memory, so a hook may read a slot while the engine closes it). Copyable;
// the copies name the same slot. An empty OwnFd (no fd) reads -1.
struct OwnFd {
  std::atomic<int>* num = nullptr;
  int get() const { return num ? num->load(std::memory_order_acquire) : -1; }
  bool open() const { return get() >= 0; }
};

// Called by relocate_own_fd after the new number is published and before the old one is handed to the
// program: a user that waits on the number inside the kernel (the fault thread's poll) must be made to
// re-read it. Runs in the thread of the program's call.
using OwnFdMoved = void (*)(void* ctx);

// own_fd(fd), held in a slot. fd < 0 gives an empty OwnFd (errno kept). When every slot is taken the fd is
// registered but cannot move (dup2 onto it fails with EBUSY).
OwnFd hold_own_fd(int fd, OwnFdMoved on_move = nullptr, void* ctx = nullptr);

// Closes the fd that h holds now, unregisters it and frees the slot; h is empty afterwards.
int close_own_fd(OwnFd& h);

// The program is about to take number fd (dup2/dup3 onto it, or close it): if an OwnFd holds it, moves the
// fd to another number >= own_fd_base() (F_DUPFD_CLOEXEC), publishes that number in the slot, registers it,
// unregisters fd, and calls the slot's on_move. The old number still refers to the engine's file until the
// caller's dup2/close replaces it. Returns true when fd is not the engine's any more (moved, or not held by
// a slot and not registered); false (errno EBUSY) when it is registered but cannot move.
bool relocate_own_fd(int fd);

// Forgets every registration (a test; or a child that closed all of them).
void reset_own_fds_for_test();

}  // namespace mf
