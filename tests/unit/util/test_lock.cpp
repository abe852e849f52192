// The lock-order checker (core/util/lock.hpp): BasicMutex<true> checks in every build; Mutex checks only
// with -Dlock_order_checks=true. A violation aborts with a line naming both locks (checked in a child).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>

#include "core/util/lock.hpp"

using namespace mf;

namespace {
// Runs fn in a child with stderr captured; returns {wait status, stderr}.
std::pair<int, std::string> in_child(const std::function<void()>& fn) {
  int pipefd[2];
  REQUIRE(pipe(pipefd) == 0);
  const pid_t pid = fork();
  if (pid == 0) {
    std::signal(SIGABRT, SIG_DFL);  // doctest's handler would report the expected abort
    dup2(pipefd[1], 2);
    close(pipefd[0]);
    fn();
    _exit(0);
  }
  close(pipefd[1]);
  std::string err;
  char buf[512];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0) err.append(buf, static_cast<size_t>(n));
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return {status, err};
}
}  // namespace

TEST_CASE("lock order: taking locks in rank order passes; repeated region locks pass") {
  BasicMutex<true> tree(LockRank::tree), cache(LockRank::cache);
  BasicSharedMutex<true> mappings(LockRank::mappings), r1(LockRank::region), r2(LockRank::region);
  {
    std::lock_guard a(tree);
    std::lock_guard b(mappings);
    std::unique_lock c(r1);
    std::shared_lock d(r2);  // region locks may repeat (taken under the manager's lock)
    std::lock_guard e(cache);
    CHECK(lockorder::depth() == 4);  // the two region locks share one entry
  }
  CHECK(lockorder::depth() == 0);
  {  // released out of order, then taken again
    std::unique_lock a(tree);
    std::unique_lock b(cache);
    a.unlock();
    b.unlock();
    std::lock_guard c(tree);
    CHECK(lockorder::depth() == 1);
  }
  CHECK(lockorder::depth() == 0);
}

TEST_CASE("lock order: a lower rank taken under a higher one aborts, naming both") {
  auto [status, err] = in_child([] {
    BasicMutex<true> tree(LockRank::tree), cache(LockRank::cache);
    std::lock_guard a(cache);
    std::lock_guard b(tree);  // must abort
  });
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGABRT);
  CHECK(err.find("modelfetch:") != std::string::npos);
  CHECK(err.find("taking Tree::mu_ (rank 30) while holding ChunkCache::mu (rank 100)") != std::string::npos);
}

TEST_CASE("lock order: the same non-repeatable rank twice aborts (a self-deadlock waiting to happen)") {
  auto [status, err] = in_child([] {
    BasicSharedMutex<true> mm(LockRank::mappings);
    std::shared_lock a(mm);
    std::shared_lock b(mm);  // a shared re-lock would deadlock behind a waiting writer
  });
  CHECK(WIFSIGNALED(status));
  CHECK(err.find("taking MappingManager::mu (rank 60) while holding MappingManager::mu (rank 60)") !=
        std::string::npos);
}

TEST_CASE("lock order: Mutex checks exactly when built with -Dlock_order_checks=true") {
  auto [status, err] = in_child([] {
    Mutex tree(LockRank::tree), cache(LockRank::cache);
    std::lock_guard a(cache);
    std::lock_guard b(tree);
  });
  if (kLockOrderChecks) {
    CHECK(WIFSIGNALED(status));
  } else {
    CHECK(WIFEXITED(status));
    CHECK(sizeof(Mutex) == sizeof(std::mutex));  // nothing stored, nothing checked
  }
}

TEST_CASE("CondVar waits on a ranked mutex") {
  BasicMutex<true> mu(LockRank::cache);
  CondVar cv;
  bool ready = false;
  std::thread t([&] {
    std::lock_guard lock(mu);
    ready = true;
    cv.notify_all();
  });
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return ready; });
    CHECK(lockorder::depth() == 1);
    CHECK_FALSE(cv.wait_for(lock, std::chrono::milliseconds(1), [] { return false; }));
  }
  t.join();
  CHECK(lockorder::depth() == 0);
}
