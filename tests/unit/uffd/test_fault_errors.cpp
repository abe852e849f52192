// Error paths of the fault thread and of placing pages, with failures injected through uffd's test seam
// (uffd::set_syscalls_for_test): each must end in a defined outcome for the faulting thread (its bytes, or
// SIGBUS with a log line), never a spin or a hang. Each case runs in a child process bounded by alarm():
// a hang or spin shows as SIGALRM instead of SIGBUS. Also: no manager lock is held while a chunk is fetched
// (madvise of an eager mapping, mremap, fork preparation): overlaps() from another thread answers at once.
#include <doctest/doctest.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <functional>
#include <thread>

#include "core/uffd/uffd.hpp"
#include "core/vfs/mappings.hpp"
#include "tests/unit/cache/fake_store.hpp"

using namespace mf;
using mf::test::FakeStore;
using mf::test::pattern_bytes;

namespace {
constexpr uint64_t kPage = 4096;
constexpr uint64_t kChunk = 256 * 1024;
constexpr int kSkip = 77;

struct Fx {
  FakeStore store;
  std::vector<std::byte> ref;
  ChunkCache cache;
  MappingManager mgr;
  std::shared_ptr<const RemoteObject> obj;
  Fx(uint64_t size, UffdSetting s = UffdSetting::automatic, uint64_t budget = 64 * kChunk)
      : ref(pattern_bytes(size, 5)), cache(store, CacheConfig{kChunk, budget}), mgr(cache, s, MapSyscalls::libc()) {
    store.put("m.bin", ref);
    obj = cache.register_object(store.info("m.bin"), "/mnt/m.bin");
  }
  std::byte* map(uint64_t len, int prot = PROT_READ) {
    auto r = mgr.map(obj, nullptr, len, prot, MAP_PRIVATE, 0);
    return r ? static_cast<std::byte*>(*r) : nullptr;
  }
  bool same(const std::byte* p, uint64_t off, uint64_t len) const {
    return std::memcmp(p, ref.data() + off, len) == 0;
  }
};

// Runs fn in a child with a deadline; returns the wait status.
int bounded_child(const std::function<int()>& fn, unsigned seconds = 20) {
  const pid_t pid = fork();
  if (pid == 0) {
    std::signal(SIGSEGV, SIG_DFL);  // doctest's handlers would report the expected signal as a crash
    std::signal(SIGBUS, SIG_DFL);
    std::signal(SIGALRM, SIG_DFL);
    alarm(seconds);
    _exit(fn());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

void check_sigbus(int status, const char* what) {
  if (WIFEXITED(status) && WEXITSTATUS(status) == kSkip) {
    MESSAGE("userfaultfd is unavailable here: skipped: " << what);
    return;
  }
  INFO(std::string(what) << ": status " << status << (WIFSIGNALED(status) ? " signal " : " exit ")
            << (WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status)));
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGBUS);  // SIGALRM: it hung or spun
}

std::atomic<int> g_copy_calls{0};
int failing_copy_ioctl(int fd, unsigned long req, void* arg) {
  if (req == UFFDIO_COPY) {
    g_copy_calls.fetch_add(1);
    errno = ENOMEM;
    return -1;
  }
  return ::ioctl(fd, req, arg);
}

std::atomic<int> g_uffd_fd{-1};
ssize_t failing_read(int fd, void* buf, size_t n) {
  if (fd == g_uffd_fd.load()) {
    errno = EIO;
    return -1;
  }
  return ::read(fd, buf, n);
}

int failing_poll(pollfd*, unsigned long, int) {
  errno = EINVAL;
  return -1;
}
}  // namespace

TEST_CASE("a placement that keeps failing gives SIGBUS after a few tries, not a fault loop") {
  const int status = bounded_child([] {
    Fx f(8 * kChunk);
    if (f.mgr.mode() != MapMode::uffd) return kSkip;
    std::byte* p = f.map(f.ref.size());
    if (!p) return 2;
    uffd::TestSyscalls s;
    s.ioctl = failing_copy_ioctl;
    uffd::set_syscalls_for_test(s);
    volatile std::byte x = p[3 * kChunk + 5];  // must not return: no byte can be placed
    (void)x;
    return 4;
  });
  check_sigbus(status, "UFFDIO_COPY failing with ENOMEM");
}

TEST_CASE("a read error on the userfaultfd fails the waiting fault with SIGBUS, not a hang") {
  const int status = bounded_child([] {
    Fx f(8 * kChunk);
    if (f.mgr.mode() != MapMode::uffd) return kSkip;
    std::byte* p = f.map(f.ref.size());
    if (!p) return 2;
    if (!f.same(p, 0, kPage)) return 3;  // the fault thread works until the injection
    // The fd the fault thread reads: the one /proc/self/fd shows as anon_inode:[userfaultfd].
    // (The engine's fds live at 3/4 of RLIMIT_NOFILE's soft limit, which may be far above 1024.)
    struct rlimit rl {};
    const int hi = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (1u << 20) ? static_cast<int>(rl.rlim_cur) : 1 << 20;
    for (int fd = 3; fd < hi; ++fd) {
      char link[64], target[256] = {};
      std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
      if (readlink(link, target, sizeof target - 1) > 0 && std::strstr(target, "userfaultfd")) g_uffd_fd = fd;
    }
    if (g_uffd_fd.load() < 0) return 5;
    uffd::TestSyscalls s;
    s.read = failing_read;
    uffd::set_syscalls_for_test(s);
    volatile std::byte x = p[6 * kChunk + 5];  // a page not filled yet
    (void)x;
    return 4;
  });
  check_sigbus(status, "read(userfaultfd) failing with EIO");
}

TEST_CASE("a poll error on the userfaultfd fails every missing page with SIGBUS; later mappings are eager") {
  const int status = bounded_child([] {
    Fx f(8 * kChunk);
    if (f.mgr.mode() != MapMode::uffd) return kSkip;
    std::byte* p = f.map(f.ref.size());
    if (!p) return 2;
    if (!f.same(p, 0, kPage)) return 3;
    uffd::TestSyscalls s;
    s.poll = failing_poll;
    uffd::set_syscalls_for_test(s);
    // The fault thread is blocked in a poll() made before the injection: a fault of another mapping is served
    // by it, and the next poll() fails. Then this thread's access of p must not hang either.
    std::byte* q = f.map(f.ref.size());
    if (!q) return 6;
    std::thread t([&] {
      volatile std::byte y = q[kChunk];
      (void)y;
    });
    t.detach();
    for (int i = 0; i < 2000 && f.mgr.stats().sigbus_pages == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (f.mgr.stats().sigbus_pages == 0) return 7;  // never noticed: the faulting thread would hang
    // A mapping made after the failure is filled before map() returns: every byte right, no fault needed.
    std::byte* e = f.map(f.ref.size());
    if (!e || !f.same(e, 0, f.ref.size())) return 8;
    volatile std::byte x = p[5 * kChunk + 5];
    (void)x;
    return 4;
  });
  check_sigbus(status, "poll(userfaultfd) failing with EINVAL");
}

namespace {
// Runs `slow` on a thread while this thread times overlaps(); returns the longest overlaps() call in ms.
double overlaps_while(MappingManager& mgr, const void* addr, const std::function<void()>& slow) {
  std::atomic<bool> done{false};
  std::thread t([&] {
    slow();
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // slow() is waiting for the store now
  double worst = 0;
  while (!done) {
    const auto t0 = std::chrono::steady_clock::now();
    (void)mgr.overlaps(addr, 1);
    worst = std::max(worst, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  t.join();
  return worst;
}
}  // namespace

TEST_CASE("no manager lock across a fetch: madvise of an eager mapping, mremap, fork preparation") {
  SUBCASE("madvise(MADV_DONTNEED) of an eager mapping refetches without the lock") {
    Fx f(8 * kChunk, UffdSetting::off, 2 * kChunk);  // the budget keeps 2 of 8 chunks: chunk 0 is refetched
    std::byte* p = f.map(f.ref.size(), PROT_READ | PROT_WRITE);
    REQUIRE(p);
    // Another mapping, of the last chunk (resident: the budget holds the last two), for overlaps() to find.
    auto om = f.mgr.map(f.obj, nullptr, kChunk, PROT_READ, MAP_PRIVATE, 7 * kChunk);
    REQUIRE(om);
    std::byte* other = static_cast<std::byte*>(*om);
    std::memset(p, 0x5a, kPage);  // a private write that DONTNEED undoes
    f.store.delay_us = 600000;
    int rc = -1;
    const double worst = overlaps_while(f.mgr, other, [&] { CHECK(f.mgr.madvise(p, kChunk, MADV_DONTNEED, &rc)); });
    CHECK(rc == 0);
    CHECK(f.same(p, 0, f.ref.size()));
    CHECK(worst < 300);  // was ~600 ms: the manager's lock was held across the fetch
    f.store.delay_us = 0;
    CHECK(f.mgr.munmap(p, f.ref.size(), &rc));
    CHECK(f.mgr.munmap(other, kChunk, &rc));
  }
  SUBCASE("mremap fills without the lock") {
    Fx f(8 * kChunk);
    if (f.mgr.mode() != MapMode::uffd) {
      MESSAGE("userfaultfd is unavailable here: skipped");
      return;
    }
    std::byte* p = f.map(4 * kChunk);
    std::byte* other = f.map(kChunk);
    REQUIRE(p);
    REQUIRE(other);
    f.store.delay_us = 600000;
    void* moved = nullptr;
    const double worst = overlaps_while(f.mgr, other, [&] {
      CHECK(f.mgr.mremap(p, 4 * kChunk, 4 * kChunk, MREMAP_MAYMOVE, nullptr, &moved));
    });
    REQUIRE(moved != MAP_FAILED);
    CHECK(f.same(static_cast<std::byte*>(moved), 0, 4 * kChunk));
    CHECK(worst < 300);
    f.store.delay_us = 0;
    ::munmap(moved, 4 * kChunk);
    int rc = -1;
    CHECK(f.mgr.munmap(other, kChunk, &rc));
  }
  SUBCASE("fork preparation fills without the lock") {
    Fx f(8 * kChunk);
    if (f.mgr.mode() != MapMode::uffd) {
      MESSAGE("userfaultfd is unavailable here: skipped");
      return;
    }
    std::byte* p = f.map(4 * kChunk);
    REQUIRE(p);
    f.store.delay_us = 600000;
    const double worst = overlaps_while(f.mgr, p, [&] {
      f.mgr.fill_for_fork();
      f.mgr.before_fork();  // nothing left to fill: takes the locks at once
      f.mgr.after_fork_parent();
    });
    CHECK(worst < 300);
    f.store.delay_us = 0;
    CHECK(f.same(p, 0, 4 * kChunk));
    int rc = -1;
    CHECK(f.mgr.munmap(p, 4 * kChunk, &rc));
  }
}
