// The engine's own fds (the userfaultfd, the fault loop's eventfd, the SIGBUS memfd, curl's sockets): a
// process-wide lock-free registry, and the rule that they live at high numbers.
//
// The program must not be able to close them (daemonizing code and subprocess helpers close fds 3..N; a
// closed userfaultfd unregisters every range and missing pages would fill with zeros): the shim's close,
// close_range and closefrom hooks skip registered fds and report success, and dup2/dup3 onto one fail with
// EBUSY (shim/hooks_open.cpp). They are created at or above base(), derived from RLIMIT_NOFILE's soft limit,
// so the program's lowest-free allocations (open after closing 0-2, the daemon pattern) never meet them.
//
// The engine closes its own fds with close_own_fd(), which unregisters first.
#pragma once

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

// Forgets every registration (a test; or a child that closed all of them).
void reset_own_fds_for_test();

}  // namespace mf
