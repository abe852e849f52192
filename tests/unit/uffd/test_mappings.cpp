// MappingManager on anonymous regions with the in-memory store and a real ChunkCache: every byte compared
// with the object, in userfaultfd and eager mode; random order, threads, COW, MADV_DONTNEED, partial munmap,
// mremap, offsets, fork, a failing store (SIGBUS in a child, never zeros), kernel access, small budgets,
// and an unprivileged child (UFFD_USER_MODE_ONLY).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <linux/userfaultfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <functional>
#include <random>
#include <thread>

#include "core/uffd/uffd.hpp"
#include "core/vfs/mappings.hpp"
#include "tests/unit/cache/fake_store.hpp"
#include "tests/unit/uffd/fork_as_shim.hpp"

using namespace mf;
using mf::test::FakeStore;
using mf::test::fork_as_shim;
using mf::test::pattern_bytes;

namespace {
constexpr uint64_t kPage = 4096;
constexpr uint64_t kChunk = 256 * 1024;

struct Fx {
  FakeStore store;
  std::vector<std::byte> ref;
  ChunkCache cache;
  MappingManager mgr;
  std::shared_ptr<const RemoteObject> obj;

  Fx(uint64_t size, UffdSetting s = UffdSetting::automatic, uint64_t budget = 64 * kChunk, int delay_us = 0)
      : ref(pattern_bytes(size, 3)), cache(store, CacheConfig{kChunk, budget}), mgr(cache, s, MapSyscalls::libc()) {
    store.put("m.bin", ref);
    store.delay_us = delay_us;
    obj = cache.register_object(store.info("m.bin"), "/mnt/m.bin");
  }
  std::byte* map(uint64_t len, int prot = PROT_READ, int flags = MAP_PRIVATE, uint64_t off = 0) {
    auto r = mgr.map(obj, nullptr, len, prot, flags, off);
    REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
    return static_cast<std::byte*>(*r);
  }
  // Compares [p, p+len) of a mapping of offset `off` with the object (zeros past EOF in the last page).
  bool same(const std::byte* p, uint64_t off, uint64_t len) const {
    for (uint64_t i = 0; i < len; ++i) {
      const uint64_t o = off + i;
      const std::byte want = o < ref.size() ? ref[o] : std::byte{0};
      if (p[i] != want) return false;
    }
    return true;
  }
  void unmap(void* p, uint64_t len) {
    int rc = -1;
    CHECK(mgr.munmap(p, len, &rc));
    CHECK(rc == 0);
  }
};

bool uffd_here(const MappingManager& m) {
  if (m.mode() == MapMode::uffd) return true;
  MESSAGE("userfaultfd is unavailable here: uffd-mode test skipped");
  return false;
}

// Runs fn in a forked child; returns the wait status.
int in_child(const std::function<int()>& fn) {
  const pid_t pid = fork();
  if (pid == 0) {
    std::signal(SIGSEGV, SIG_DFL);  // doctest's handlers would report the expected signal as a crash
    std::signal(SIGBUS, SIG_DFL);
    _exit(fn());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}
}  // namespace

TEST_CASE("uffd mode: every byte of a whole-file mapping matches, including the zeroed tail of the last page") {
  Fx f(20 * kChunk + 1234);
  if (!uffd_here(f.mgr)) return;
  const uint64_t len = f.ref.size();
  std::byte* p = f.map(len);
  CHECK(f.mgr.overlaps(p, 1));
  CHECK(f.same(p, 0, (len + kPage - 1) / kPage * kPage));
  // The copying thread counts after UFFDIO_COPY has woken the reader: give it a moment.
  for (int i = 0; i < 1000 && f.mgr.stats().bytes_filled < len; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(f.mgr.stats().bytes_filled >= len);
  CHECK(f.mgr.stats().bytes_filled < len + 2 * kPage);  // every page placed once
  f.unmap(p, len);
  CHECK_FALSE(f.mgr.overlaps(p, len));
  // A read-only MAP_SHARED mapping is served the same way.
  std::byte* s = f.map(len, PROT_READ, MAP_SHARED);
  CHECK(f.same(s, 0, len));
  f.unmap(s, len);
}

TEST_CASE("uffd mode: random page order against a slow store resolves faults in blocks") {
  Fx f(24 * kChunk, UffdSetting::automatic, 64 * kChunk, 20000);
  if (!uffd_here(f.mgr)) return;
  std::byte* p = f.map(f.ref.size());
  std::vector<uint64_t> pages(f.ref.size() / kPage);
  for (uint64_t i = 0; i < pages.size(); ++i) pages[i] = i;
  std::shuffle(pages.begin(), pages.end(), std::mt19937_64(5));
  int bad = 0;
  for (uint64_t pg : pages) bad += !f.same(p + pg * kPage, pg * kPage, kPage);
  CHECK(bad == 0);
  const MappingStats s = f.mgr.stats();
  CHECK(s.uffd_faults > 0);
  CHECK(s.fault_bytes >= s.uffd_faults * kPage);  // faults place whole blocks, not single pages
  f.unmap(p, f.ref.size());
}

TEST_CASE("eager mode: every byte matches; prot is applied") {
  Fx f(10 * kChunk + 77, UffdSetting::off);
  CHECK(f.mgr.mode() == MapMode::eager);
  std::byte* p = f.map(f.ref.size());
  CHECK(f.same(p, 0, f.ref.size()));
  CHECK(f.mgr.stats().eager_maps == 1);
  CHECK(f.mgr.overlaps(p, 1));  // tracked, for MADV_DONTNEED (filled from the start, nothing to fault)
  const int status = in_child([&] {
    p[0] = std::byte{1};  // PROT_READ: must fault
    return 0;
  });
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGSEGV);
  f.unmap(p, f.ref.size());
}

TEST_CASE("eager mode: MADV_DONTNEED restores the object's bytes (never zeros), also read-only and split") {
  Fx f(12 * kChunk + 777, UffdSetting::off);
  REQUIRE(f.mgr.mode() == MapMode::eager);
  const uint64_t len = f.ref.size();
  for (int prot : {PROT_READ, PROT_READ | PROT_WRITE}) {
    CAPTURE(prot);
    std::byte* p = f.map(len, prot);
    REQUIRE(f.same(p, 0, len));
    if (prot & PROT_WRITE) p[5 * kChunk + 3] = std::byte{0};  // a private write, undone by the drop
    int rc = -1;
    CHECK(f.mgr.madvise(p + 4 * kChunk, 3 * kChunk + kPage, MADV_DONTNEED, &rc));
    CHECK(rc == 0);
    CHECK(f.same(p, 0, len));
    rc = -1;
    CHECK(f.mgr.madvise(p, len, MADV_FREE, &rc));  // a hint: eager pages keep their bytes
    CHECK(rc == 0);
    CHECK(f.same(p, 0, len));
    f.unmap(p + 2 * kChunk, kChunk);  // split: both halves still restore
    rc = 0;
    errno = 0;
    CHECK(f.mgr.madvise(p, len, MADV_DONTNEED, &rc));
    CHECK(rc == -1);  // the hole: ENOMEM, as the kernel says, after advising the rest
    CHECK(errno == ENOMEM);
    CHECK(f.same(p, 0, 2 * kChunk));
    CHECK(f.same(p + 3 * kChunk, 3 * kChunk, len - 3 * kChunk));
    f.unmap(p, 2 * kChunk);
    f.unmap(p + 3 * kChunk, len - 3 * kChunk);
  }
}

TEST_CASE("eager mode refuses a mapping larger than available memory") {
  FakeStore store;
  ChunkCache cache(store, CacheConfig{kChunk, 4 * kChunk});
  MappingManager mgr(cache, UffdSetting::off, MapSyscalls::libc());
  ObjectInfo info{"huge", 1ull << 46, "\"e\"", ""};  // 64 TiB
  auto obj = cache.register_object(info, "/mnt/huge");
  auto r = mgr.map(obj, nullptr, info.size, PROT_READ, MAP_PRIVATE, 0);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ENOMEM);
}

TEST_CASE("bad arguments") {
  Fx f(4 * kChunk);
  CHECK(f.mgr.map(f.obj, nullptr, 100, PROT_READ, MAP_PRIVATE, 100).error().code == EINVAL);
  CHECK(f.mgr.map(f.obj, nullptr, 0, PROT_READ, MAP_PRIVATE, 0).error().code == EINVAL);
  CHECK(f.mgr.map(f.obj, nullptr, 100, PROT_READ | PROT_WRITE, MAP_SHARED, 0).error().code == EACCES);
}

TEST_CASE("multi-threaded readers, more data than the cache budget, both modes") {
  for (UffdSetting s : {UffdSetting::automatic, UffdSetting::off}) {
    Fx f(40 * kChunk + 5000, s, 4 * kChunk, 500);
    std::byte* p = f.map(f.ref.size());
    std::vector<std::thread> ts;
    std::atomic<int> bad{0};
    for (int t = 0; t < 4; ++t)
      ts.emplace_back([&, t] {
        std::mt19937_64 rng(t);
        for (int i = 0; i < 300; ++i) {
          const uint64_t off = rng() % f.ref.size(), n = std::min<uint64_t>(3000, f.ref.size() - off);
          if (!f.same(p + off, off, n)) bad.fetch_add(1);
        }
      });
    for (auto& t : ts) t.join();
    CHECK(bad == 0);
    CHECK(f.same(p, 0, f.ref.size()));
    CHECK(f.cache.stats().peak_resident_bytes <= 4 * kChunk);
    f.unmap(p, f.ref.size());  // eager mappings are tracked too (MADV_DONTNEED restores them)
  }
}

TEST_CASE("MAP_PRIVATE writes stay in their mapping; MADV_DONTNEED drops them and refills from the file") {
  Fx f(8 * kChunk, UffdSetting::automatic, 64 * kChunk, 5000);
  if (!uffd_here(f.mgr)) return;
  std::byte* a = f.map(f.ref.size(), PROT_READ | PROT_WRITE);
  std::byte* b = f.map(f.ref.size(), PROT_READ);
  std::memset(a + 3 * kChunk + 10, 0x5a, 3 * kPage);
  CHECK(a[3 * kChunk + 10] == std::byte{0x5a});
  CHECK(f.same(b, 0, f.ref.size()));
  CHECK(f.same(a, 0, 3 * kChunk + 10));
  int rc = -1;
  CHECK(f.mgr.madvise(a + 3 * kChunk, 4 * kPage, MADV_DONTNEED, &rc));
  CHECK(rc == 0);
  CHECK(f.same(a, 0, f.ref.size()));  // the written pages are back to the file's bytes
  CHECK_FALSE(f.mgr.madvise(a, kPage, MADV_WILLNEED, &rc));  // not a dropping advice: libc's business
  f.unmap(a, f.ref.size());
  f.unmap(b, f.ref.size());
}

TEST_CASE("partial munmap keeps the rest served; mremap leaves a filled plain mapping") {
  Fx f(16 * kChunk, UffdSetting::automatic, 64 * kChunk, 20000);
  if (!uffd_here(f.mgr)) return;
  const uint64_t len = f.ref.size();
  std::byte* p = f.map(len);
  int rc = -1;
  CHECK(f.mgr.munmap(p + 4 * kChunk, 2 * kChunk, &rc));
  CHECK(rc == 0);
  CHECK_FALSE(f.mgr.overlaps(p + 4 * kChunk, 2 * kChunk));
  CHECK(f.mgr.overlaps(p, 1));
  CHECK(f.mgr.overlaps(p + 6 * kChunk, 1));
  CHECK(f.same(p + 6 * kChunk, 6 * kChunk, len - 6 * kChunk));
  CHECK(f.same(p, 0, 4 * kChunk));
  void* moved = nullptr;
  CHECK(f.mgr.mremap(p + 6 * kChunk, len - 6 * kChunk, len, MREMAP_MAYMOVE, nullptr, &moved));
  REQUIRE(moved != MAP_FAILED);
  CHECK_FALSE(f.mgr.overlaps(moved, len - 6 * kChunk));
  CHECK(f.same(static_cast<std::byte*>(moved), 6 * kChunk, len - 6 * kChunk));
  ::munmap(moved, len);
  f.unmap(p, 4 * kChunk);
}

TEST_CASE("non-zero offset; pages wholly past EOF raise SIGBUS like a real file") {
  Fx f(6 * kChunk + 100);
  if (!uffd_here(f.mgr)) return;
  const uint64_t off = kChunk + 3 * kPage, len = 8 * kChunk;  // runs 2+ chunks past EOF
  std::byte* p = f.map(len, PROT_READ, MAP_PRIVATE, off);
  const uint64_t data = f.ref.size() - off;
  CHECK(f.same(p, off, (data + kPage - 1) / kPage * kPage));
  const uint64_t past = (data + kPage - 1) / kPage * kPage;
  const int status = in_child([&] { return static_cast<int>(p[past + 5]); });
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGBUS);
  f.unmap(p, len);
}

TEST_CASE("fork with a live mapping: the child sees the file's bytes") {
  Fx f(12 * kChunk, UffdSetting::automatic, 64 * kChunk, 30000);
  if (!uffd_here(f.mgr)) return;
  std::byte* p = f.map(f.ref.size(), PROT_READ | PROT_WRITE);
  const int status = fork_as_shim(f.mgr, f.cache, [&] {
    return f.same(p, 0, f.ref.size()) && !f.mgr.overlaps(p, 1) ? 0 : 3;
  });
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(f.same(p, 0, f.ref.size()));
  f.unmap(p, f.ref.size());
}

TEST_CASE("a chunk that cannot be fetched gives SIGBUS in the faulting thread, never zeros") {
  const int status = in_child([] {
    Fx f(8 * kChunk, UffdSetting::automatic, 64 * kChunk, 0);
    if (f.mgr.mode() != MapMode::uffd) return 77;
    f.store.fail_hook = [](const RangeRequest& r) -> std::optional<Error> {
      if (r.offset == 5 * kChunk) return make_error(EIO, "injected permanent failure");
      return std::nullopt;
    };
    std::byte* p = f.map(f.ref.size());
    if (!f.same(p, 0, 5 * kChunk)) return 3;
    volatile std::byte x = p[5 * kChunk + 7];  // must not return
    (void)x;
    return 4;
  });
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) return;
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGBUS);
}

TEST_CASE("fill_for_kernel, then write() from the mapping to a pipe") {
  Fx f(20 * kChunk, UffdSetting::automatic, 64 * kChunk, 100000);
  if (!uffd_here(f.mgr)) return;
  std::byte* p = f.map(f.ref.size());
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const uint64_t off = 19 * kChunk + 5;
  REQUIRE(f.mgr.fill_for_kernel(p + off, 1000));
  CHECK(write(fds[1], p + off, 1000) == 1000);
  std::vector<std::byte> back(1000);
  CHECK(read(fds[0], back.data(), 1000) == 1000);
  CHECK(std::memcmp(back.data(), f.ref.data() + off, 1000) == 0);
  close(fds[0]);
  close(fds[1]);
  f.unmap(p, f.ref.size());
}

// What an unprivileged process gets here (FACTS.md): userfaultfd only with UFFD_USER_MODE_ONLY, kernel
// accesses to unfilled pages fail with EFAULT, and UFFD_FEATURE_EVENT_FORK is refused (CAP_SYS_PTRACE).
TEST_CASE("unprivileged: user-mode-only uffd serves mappings; EFAULT before fill_for_kernel; EVENT_FORK refused") {
  const int status = in_child([] {
    if (setgid(65534) != 0 || setuid(65534) != 0) return 77;
    const int fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY));
    if (fd < 0) return 77;  // no userfaultfd at all for this user: nothing to check
    uffdio_api api{UFFD_API, UFFD_FEATURE_EVENT_FORK, 0};
    if (ioctl(fd, UFFDIO_API, &api) == 0 || errno != EPERM) return 10;
    close(fd);
    Fx f(20 * kChunk, UffdSetting::automatic, 64 * kChunk, 200000);
    if (f.mgr.mode() != MapMode::uffd) return 11;
    std::byte* p = f.map(f.ref.size());
    int fds[2];
    if (pipe(fds) != 0) return 12;
    const uint64_t off = 18 * kChunk;  // far from the filler's start: not filled yet
    if (write(fds[1], p + off, 100) != -1 || errno != EFAULT) return 13;
    if (!f.mgr.fill_for_kernel(p + off, 100)) return 14;
    if (write(fds[1], p + off, 100) != 100) return 15;
    if (!f.same(p, 0, f.ref.size())) return 16;
    return 0;
  });
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
    MESSAGE("cannot drop privileges or no userfaultfd for an unprivileged user: skipped");
    return;
  }
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("open_uffd reports how it opened the uffd") {
  auto h = uffd::open_uffd();
  if (!h) {
    MESSAGE("userfaultfd unavailable: " << h.error().message);
    return;
  }
  CHECK(h->fd >= 0);
  CHECK_FALSE(h->how.empty());
  if (geteuid() == 0) CHECK_FALSE(h->user_mode_only);  // root has CAP_SYS_PTRACE
  close(h->fd);
}
