#include "core/util/own_fds.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

using namespace mf;

TEST_CASE("own_fd moves an fd high, registers it, and close_own_fd releases it") {
  reset_own_fds_for_test();
  int low = ::eventfd(0, EFD_CLOEXEC);
  REQUIRE(low >= 0);
  int fd = own_fd(low);
  CHECK(fd >= own_fd_base());
  CHECK(fd != low);
  CHECK(fcntl(low, F_GETFD) == -1);  // the original number is free again
  CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  CHECK(is_own_fd(fd));
  CHECK_FALSE(is_own_fd(low));
  CHECK(next_own_fd(0, ~0u) == fd);
  CHECK(next_own_fd(static_cast<unsigned>(fd) + 1, ~0u) == -1);
  CHECK(next_own_fd(0, static_cast<unsigned>(fd) - 1) == -1);
  CHECK(next_own_fd(static_cast<unsigned>(fd), static_cast<unsigned>(fd)) == fd);
  CHECK(close_own_fd(fd) == 0);
  CHECK_FALSE(is_own_fd(fd));
  CHECK(next_own_fd(0, ~0u) == -1);
}

TEST_CASE("own_fd keeps a negative fd and errno") {
  errno = EMFILE;
  CHECK(own_fd(-1) == -1);
  CHECK(errno == EMFILE);
}

TEST_CASE("next_own_fd finds registrations across words") {
  reset_own_fds_for_test();
  register_own_fd(63);
  register_own_fd(64);
  register_own_fd(1000);
  CHECK(next_own_fd(0, 62) == -1);
  CHECK(next_own_fd(0, 63) == 63);
  CHECK(next_own_fd(64, 999) == 64);
  CHECK(next_own_fd(65, 999) == -1);
  CHECK(next_own_fd(65, 1000) == 1000);
  unregister_own_fd(63);
  unregister_own_fd(64);
  unregister_own_fd(1000);
  CHECK_FALSE(is_own_fd(1000));
}

TEST_CASE("register_new_fds registers what appeared since the snapshot, nothing else") {
  reset_own_fds_for_test();
  int old_fd = ::eventfd(0, EFD_CLOEXEC);
  auto before = open_fds();
  bool seen = false;
  for (const auto& f : before) seen = seen || (f.fd == old_fd && f.target == "anon_inode:[eventfd]");
  CHECK(seen);
  int sv[2];
  REQUIRE(::pipe2(sv, O_CLOEXEC) == 0);
  register_new_fds(before);
  CHECK(is_own_fd(sv[0]));
  CHECK(is_own_fd(sv[1]));
  CHECK_FALSE(is_own_fd(old_fd));
  CHECK(close_own_fd(sv[0]) == 0);
  CHECK(close_own_fd(sv[1]) == 0);
  ::close(old_fd);
  CHECK(next_own_fd(0, ~0u) == -1);
}

namespace {
int g_moved_calls = 0;
int g_seen_in_callback = -1;
OwnFd* g_held = nullptr;
void on_moved(void* ctx) {
  ++g_moved_calls;
  CHECK(ctx == &g_moved_calls);
  g_seen_in_callback = g_held->get();  // the new number is published before the callback
}
}  // namespace

TEST_CASE("relocate_own_fd moves a held fd: same file at a new high number, the old number still open") {
  reset_own_fds_for_test();
  OwnFd h = hold_own_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), &on_moved, &g_moved_calls);
  g_held = &h;
  const int old = h.get();
  REQUIRE(old >= own_fd_base());
  CHECK(is_own_fd(old));
  const uint64_t one = 7;
  REQUIRE(::write(old, &one, sizeof one) == sizeof one);
  CHECK(relocate_own_fd(old));
  const int now = h.get();
  CHECK(now != old);
  CHECK(now >= own_fd_base());
  CHECK(is_own_fd(now));
  CHECK_FALSE(is_own_fd(old));
  CHECK(g_moved_calls == 1);
  CHECK(g_seen_in_callback == now);
  CHECK((::fcntl(now, F_GETFD) & FD_CLOEXEC) != 0);
  // The old number still refers to the same eventfd until the caller's dup2/close replaces it.
  uint64_t v = 0;
  CHECK(::read(now, &v, sizeof v) == sizeof v);
  CHECK(v == 7);
  CHECK(::fcntl(old, F_GETFD) >= 0);
  ::close(old);
  // Not ours any more: relocating the old number again is a no-op that succeeds.
  CHECK(relocate_own_fd(old));
  CHECK(g_moved_calls == 1);
  CHECK(close_own_fd(h) == 0);
  CHECK(h.get() == -1);
  CHECK(::fcntl(now, F_GETFD) == -1);
  CHECK(next_own_fd(0, ~0u) == -1);
}

TEST_CASE("relocate_own_fd refuses with EBUSY an fd registered without a holder (a connection)") {
  reset_own_fds_for_test();
  const int fd = own_fd(::eventfd(0, EFD_CLOEXEC));
  REQUIRE(fd >= 0);
  errno = 0;
  CHECK_FALSE(relocate_own_fd(fd));
  CHECK(errno == EBUSY);
  CHECK(is_own_fd(fd));
  CHECK(close_own_fd(fd) == 0);
}

TEST_CASE("hold_own_fd of a failed creation is empty; slots are reused after close") {
  reset_own_fds_for_test();
  errno = EMFILE;
  OwnFd none = hold_own_fd(-1);
  CHECK(errno == EMFILE);
  CHECK_FALSE(none.open());
  CHECK(close_own_fd(none) == 0);
  for (int i = 0; i < 100; ++i) {  // more than the slots: each close frees its slot
    OwnFd h = hold_own_fd(::eventfd(0, EFD_CLOEXEC));
    REQUIRE(h.open());
    const int old = h.get();
    CHECK(relocate_own_fd(old));  // relocatable: it got a slot
    CHECK(h.get() != old);
    ::close(old);
    CHECK(close_own_fd(h) == 0);
  }
  CHECK(next_own_fd(0, ~0u) == -1);
}
