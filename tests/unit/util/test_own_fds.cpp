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
