// core/vfs without LD_PRELOAD: config parsing (good and bad input), path normalisation and mount matching,
// the tree learned from listings, virtual fds (read/offset/dup/close identity) against a local-directory store.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sys/syscall.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include "core/vfs/config.hpp"
#include "core/vfs/path.hpp"
#include "core/vfs/tree.hpp"
#include "core/vfs/vfs.hpp"
#include "tests/support/local_dir_store.hpp"

using namespace mf;

TEST_CASE("normalize_path and path_below") {
  struct { const char* in; const char* out; } cases[] = {
      {"/", "/"}, {"//a//b/", "/a/b"}, {"/a/./b/../c", "/a/c"}, {"/..", "/"}, {"/a/b/../../..", "/"},
      {"/models/../etc/passwd", "/etc/passwd"}, {"/m/./x/.", "/m/x"}};
  for (auto& c : cases) CHECK(normalize_path(c.in) == c.out);
  CHECK(join_path("/a/b", "../c") == "/a/c");
  CHECK(join_path("/a", "/abs") == "/abs");
  CHECK(path_below("/models", "/models") == std::string_view{});
  CHECK(path_below("/models/a/b", "/models") == std::string_view{"a/b"});
  CHECK(!path_below("/models2/a", "/models"));
  CHECK(!path_below("/mod", "/models"));
  CHECK(needs_normalising("/a//b"));
  CHECK(needs_normalising("/a/../b"));
  CHECK(!needs_normalising("/a/b.c"));
}

TEST_CASE("parse_fd_link: /proc/self/fd/N and its spellings, nothing else") {
  auto fd_of = [](std::string_view p) { auto l = parse_fd_link(p, 4242); return l ? l->fd : -1; };
  CHECK(fd_of("/proc/self/fd/7") == 7);
  CHECK(fd_of("/proc/thread-self/fd/7") == 7);
  CHECK(fd_of("/proc/4242/fd/12") == 12);
  CHECK(fd_of("/dev/fd/0") == 0);
  CHECK(fd_of("/proc/4242/task/4250/fd/9") == 9);
  CHECK(fd_of("/proc/self/task/4250/fd/9") == 9);
  CHECK(fd_of("/proc/self/task/x/fd/9") == -1);
  CHECK(fd_of("//proc/self/fd/3") == 3);
  CHECK(parse_fd_link("/proc/self/fd/5/sub/x.bin", 1)->rest == "sub/x.bin");
  CHECK(parse_fd_link("/proc/self/fd/5/", 1)->rest == "");
  CHECK(fd_of("/proc/4243/fd/12") == -1);  // another process's fd
  CHECK(fd_of("/proc/self/fdinfo/3") == -1);
  CHECK(fd_of("/proc/self/fd/") == -1);
  CHECK(fd_of("/proc/self/fd/x") == -1);
  CHECK(fd_of("/proc/self/fd/3x") == -1);
  CHECK(fd_of("/proc/self/fd/03") == -1);
  CHECK(fd_of("/proc/self/fd/99999999999") == -1);
  CHECK(fd_of("/proc/self") == -1);
  CHECK(fd_of("/dev/fdx/1") == -1);
  CHECK(fd_of("/mnt/m/proc/self/fd/1") == -1);
}

TEST_CASE("split_remote") {
  auto a = split_remote("s3://bucket/pre/fix/");
  REQUIRE(a);
  CHECK(a->store == "s3://bucket");
  CHECK(a->prefix == "pre/fix/");
  auto b = split_remote("https://host:8080");
  REQUIRE(b);
  CHECK(b->store == "https://host:8080");
  CHECK(b->prefix.empty());
  CHECK(!split_remote("ftp://x/y"));
  CHECK(!split_remote("s3:///x"));
  CHECK(!split_remote("s3://b/x?versionId=1"));
}

TEST_CASE("parse_config") {
  auto c = parse_config(map_env({{"MODELFETCH_REMOTE", "s3://b/p"}, {"MODELFETCH_MOUNT", "/models/x/../y/"}}),
                        8ull << 30);
  REQUIRE(c);
  REQUIRE(c->mounts.size() == 1);
  CHECK(c->mounts[0].path == "/models/y");
  CHECK(c->cache_size == 2ull << 30);
  CHECK(c->chunk_size == 8ull << 20);
  CHECK(c->log_level == LogLevel::warn);
  CHECK(default_cache_size(256ull << 30) == 16ull << 30);

  auto m = parse_config(map_env({{"MODELFETCH_MOUNTS", "/a=s3://b/x;/a/b=https://h/p"},
                                 {"MODELFETCH_UFFD", "off"}, {"MODELFETCH_CACHE_SIZE", "1G"},
                                 {"MODELFETCH_HUGE_PAGES", "off"}}), 1ull << 30);
  REQUIRE(m);
  CHECK_FALSE(m->huge_pages);
  CHECK(c->huge_pages);  // default auto
  REQUIRE(m->mounts.size() == 2);
  CHECK(m->mounts[0].path == "/a/b");  // most specific first
  CHECK(m->uffd == UffdSetting::off);
  CHECK(m->cache_size == 1ull << 30);

  auto unset = parse_config(map_env({}), 1ull << 30);
  REQUIRE(!unset);
  CHECK(unset.error().message.find("MODELFETCH_REMOTE") != std::string::npos);
  struct { const char* var; const char* value; } bad[] = {
      {"MODELFETCH_MOUNT", "relative"}, {"MODELFETCH_MOUNT", "/"}, {"MODELFETCH_REMOTE", "gs://b"},
      {"MODELFETCH_LOG", "loud"}, {"MODELFETCH_UFFD", "maybe"}, {"MODELFETCH_HUGE_PAGES", "on"}, {"MODELFETCH_CHUNK_SIZE", "1000"},
      {"MODELFETCH_CACHE_SIZE", "abc"}, {"MODELFETCH_CACHE_SIZE", "1M"}};
  for (auto& b : bad) {
    std::map<std::string, std::string, std::less<>> env{{"MODELFETCH_REMOTE", "s3://b/p"},
                                                        {"MODELFETCH_MOUNT", "/models"}};
    env[b.var] = b.value;
    auto r = parse_config(map_env(env), 1ull << 30);
    CHECK_MESSAGE(!r, b.var);
    if (!r) CHECK(r.error().message.find(b.var) != std::string::npos);
  }
  CHECK(!parse_config(map_env({{"MODELFETCH_MOUNTS", "/a"}}), 1ull << 30));
  CHECK(!parse_config(map_env({{"MODELFETCH_MOUNTS", "/a=s3://b;/a=s3://c"}}), 1ull << 30));
}

TEST_CASE("parse_http_time") {
  CHECK(parse_http_time("Wed, 21 Oct 2015 07:28:00 GMT") == 1445412480);
  CHECK(parse_http_time("2015-10-21T07:28:00.000Z") == 1445412480);
  CHECK(parse_http_time("garbage") == 0);
}

namespace {
struct Fixture {
  std::string root;
  std::unique_ptr<Vfs> vfs;
  std::string data;
  Fixture() {
    char tmpl[] = "/tmp/mf-vfs-XXXXXX";
    root = mkdtemp(tmpl);
    std::string base = root + "/bucket/pre";
    REQUIRE(std::system(("mkdir -p " + base + "/sub/deep").c_str()) == 0);
    for (int i = 0; i < 300000; ++i) data.push_back(static_cast<char>('a' + (i * 7 + i / 1000) % 26));
    std::ofstream(base + "/f.bin", std::ios::binary) << data;
    std::ofstream(base + "/sub/deep/g.txt") << "hello";
    VfsConfig c = *parse_config(map_env({{"MODELFETCH_REMOTE", "s3://bucket/pre"},
                                         {"MODELFETCH_MOUNT", "/mnt/m"},
                                         {"MODELFETCH_CHUNK_SIZE", "64K"},
                                         {"MODELFETCH_CACHE_SIZE", "1M"}}),
                                1ull << 30);
    VfsDeps deps;
    std::string r = root;
    deps.make_store = [r](const std::string& url) -> Result<std::unique_ptr<ObjectStore>> {
      return std::unique_ptr<ObjectStore>(new test::LocalDirStore(r + "/" + url.substr(5)));
    };
    deps.map_sys = MapSyscalls::libc();
    vfs = std::make_unique<Vfs>(std::move(c), std::move(deps));
  }
  ~Fixture() { (void)std::system(("rm -rf " + root).c_str()); }
  MountedPath p(const char* path) { return *vfs->match(path); }
};
}  // namespace

TEST_CASE("match, stat and listing") {
  Fixture f;
  CHECK(!f.vfs->match("/mnt/mx"));
  CHECK(!f.vfs->match("/mnt/m/../etc"));
  CHECK(f.vfs->match("/mnt//m/./sub")->path == "/mnt/m/sub");
  CHECK(!f.vfs->used());
  auto st = f.vfs->stat(f.p("/mnt/m/f.bin"));
  REQUIRE(st);
  CHECK(st->st_size == 300000);
  CHECK(st->st_mode == (S_IFREG | 0444));
  CHECK(st->st_mtime > 0);
  CHECK(f.vfs->stat(f.p("/mnt/m"))->st_mode == (S_IFDIR | 0555));
  CHECK(f.vfs->stat(f.p("/mnt/m/sub/deep"))->st_mode == (S_IFDIR | 0555));
  CHECK(f.vfs->stat(f.p("/mnt/m/sub/deep/g.txt"))->st_size == 5);
  CHECK(f.vfs->stat(f.p("/mnt/m/nope")).error().code == ENOENT);
  CHECK(f.vfs->stat(f.p("/mnt/m/nodir/x")).error().code == ENOENT);
  CHECK(f.vfs->stat(f.p("/mnt/m/f.bin"))->st_ino == f.vfs->stat(f.p("/mnt/m/f.bin"))->st_ino);
  auto list = f.vfs->list_dir(f.p("/mnt/m"));
  REQUIRE(list);
  REQUIRE(list->size() == 2);
  CHECK((*list)[0].name == "f.bin");
  CHECK((*list)[0].kind == NodeKind::file);
  CHECK((*list)[1].name == "sub");
  CHECK((*list)[1].kind == NodeKind::dir);
  CHECK(f.vfs->list_dir(f.p("/mnt/m/none")).error().code == ENOENT);
}

TEST_CASE("virtual fds: read, offsets, dup, close identity, errors") {
  Fixture f;
  CHECK(f.vfs->open(f.p("/mnt/m/f.bin"), O_WRONLY).error().code == EROFS);
  CHECK(f.vfs->open(f.p("/mnt/m/new"), O_WRONLY | O_CREAT).error().code == EROFS);
  CHECK(f.vfs->open(f.p("/mnt/m/missing"), O_RDONLY).error().code == ENOENT);
  CHECK(f.vfs->open(f.p("/mnt/m/f.bin"), O_RDONLY | O_DIRECTORY).error().code == ENOTDIR);
  auto fd = f.vfs->open(f.p("/mnt/m/f.bin"), O_RDONLY);
  REQUIRE(fd);
  CHECK(f.vfs->maybe_virtual(*fd));
  struct stat kst;
  REQUIRE(::fstat(*fd, &kst) == 0);  // the kernel's view of the memfd: a regular file of the right size
  CHECK(S_ISREG(kst.st_mode));
  CHECK(kst.st_size == 300000);
  std::string buf(70000, '\0');
  CHECK(*f.vfs->read(*fd, buf.data(), buf.size()) == 70000);  // crosses the 64 KiB chunk edge
  CHECK(buf == f.data.substr(0, 70000));
  CHECK(*f.vfs->lseek(*fd, 0, SEEK_CUR) == 70000);
  int d = ::dup(*fd);
  f.vfs->dup_fd(*fd, d);
  f.vfs->close_fd(*fd);
  ::close(*fd);
  CHECK(*f.vfs->read(d, buf.data(), 10) == 10);  // the dup shares the offset and survives the close
  CHECK(buf.substr(0, 10) == f.data.substr(70000, 10));
  CHECK(*f.vfs->pread(d, buf.data(), 100, 299990) == 10);
  CHECK(*f.vfs->pread(d, buf.data(), 100, 400000) == 0);
  CHECK(f.vfs->fstat(d)->st_size == 300000);
  // A stale mark: the fd number reused for something else is never served from the cache.
  f.vfs->close_fd(d);
  ::close(d);
  int other = ::open("/dev/null", O_RDONLY);
  CHECK(!f.vfs->file(other));
  ::close(other);
  CHECK(f.vfs->used());
  CHECK(f.vfs->stats_json().find("\"/mnt/m/f.bin\"") != std::string::npos);
}

TEST_CASE("virtual fds: the kernel cannot read them (O_PATH): raw reads, sendfile, splice, mmap fail with EBADF") {
  Fixture f;
  auto fd = f.vfs->open(f.p("/mnt/m/f.bin"), O_RDONLY);
  REQUIRE(fd);
  // open() put the O_PATH fd under the memfd's number: the lowest free one, as the kernel picks.
  int probe = ::open("/dev/null", O_RDONLY);
  CHECK(probe == *fd + 1);
  ::close(probe);
  char buf[64];
  errno = 0;
  CHECK(::syscall(SYS_read, *fd, buf, sizeof buf) == -1);
  CHECK(errno == EBADF);
  errno = 0;
  CHECK(::syscall(SYS_pread64, *fd, buf, sizeof buf, 0) == -1);
  CHECK(errno == EBADF);
  int out = ::open("/dev/null", O_WRONLY);
  REQUIRE(out >= 0);
  errno = 0;
  CHECK(::syscall(SYS_sendfile, out, *fd, nullptr, 64) == -1);
  CHECK(errno == EBADF);
  int pipefd[2];
  REQUIRE(::pipe(pipefd) == 0);
  errno = 0;
  CHECK(::syscall(SYS_splice, *fd, nullptr, pipefd[1], nullptr, 64, 0) == -1);
  CHECK(errno == EBADF);
  errno = 0;
  CHECK(::syscall(SYS_copy_file_range, *fd, nullptr, out, nullptr, 64, 0) == -1);
  CHECK(errno == EBADF);
  errno = 0;
  CHECK(::mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE, *fd, 0) == MAP_FAILED);
  CHECK(errno == EBADF);
  // Identity and size still come from the kernel (fstat, statx), so FdTable::get keeps working.
  struct stat kst;
  REQUIRE(::fstat(*fd, &kst) == 0);
  CHECK(kst.st_size == 300000);
  CHECK(f.vfs->file(*fd) != nullptr);
  ::close(pipefd[0]);
  ::close(pipefd[1]);
  ::close(out);
  f.vfs->close_fd(*fd);
  ::close(*fd);
}

TEST_CASE("virtual fds: lseek, status flags, concurrent reads on one description") {
  Fixture f;
  // Each 8-byte word of words.bin holds its own offset, so a piece says where it came from.
  const size_t words = (3 << 20) / 8;
  {
    std::vector<uint64_t> w(words);
    for (size_t i = 0; i < words; ++i) w[i] = i * 8;
    std::ofstream(f.root + "/bucket/pre/words.bin", std::ios::binary)
        .write(reinterpret_cast<const char*>(w.data()), static_cast<std::streamsize>(w.size() * 8));
  }
  auto fd = f.vfs->open(f.p("/mnt/m/f.bin"), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  REQUIRE(fd);
  CHECK(*f.vfs->lseek(*fd, 100, SEEK_SET) == 100);
  CHECK(*f.vfs->lseek(*fd, 50, SEEK_CUR) == 150);
  CHECK(*f.vfs->lseek(*fd, -10, SEEK_END) == 299990);
  CHECK(*f.vfs->lseek(*fd, 10, SEEK_END) == 300010);  // past the end is allowed
  char c;
  CHECK(*f.vfs->read(*fd, &c, 1) == 0);
  CHECK(f.vfs->lseek(*fd, -1, SEEK_SET).error().code == EINVAL);
  CHECK(f.vfs->lseek(*fd, -400000, SEEK_END).error().code == EINVAL);
  CHECK(*f.vfs->lseek(*fd, 0, SEEK_CUR) == 300010);  // a failed lseek leaves the offset alone
  CHECK(*f.vfs->lseek(*fd, 5, SEEK_DATA) == 5);
  CHECK(*f.vfs->lseek(*fd, 5, SEEK_HOLE) == 300000);
  CHECK(f.vfs->lseek(*fd, 300000, SEEK_DATA).error().code == ENXIO);
  CHECK(f.vfs->lseek(*fd, 0, 77).error().code == EINVAL);
  CHECK(*f.vfs->get_status_flags(*fd) == (O_RDONLY | O_NONBLOCK | O_LARGEFILE));
  {  // opened with O_PATH by the program: fstat yes, reads and mmap no (EBADF), as the kernel says
    auto pfd = f.vfs->open(f.p("/mnt/m/f.bin"), O_PATH);
    REQUIRE(pfd);
    CHECK(*f.vfs->get_status_flags(*pfd) == (O_PATH | O_LARGEFILE));
    CHECK(f.vfs->fstat(*pfd)->st_size == 300000);
    char b[4];
    CHECK(f.vfs->read(*pfd, b, 4).error().code == EBADF);
    CHECK(f.vfs->pread(*pfd, b, 4, 0).error().code == EBADF);
    CHECK(f.vfs->mmap(*pfd, nullptr, 4096, PROT_READ, MAP_PRIVATE, 0).error().code == EBADF);
    f.vfs->close_fd(*pfd);
    ::close(*pfd);
  }
  REQUIRE(f.vfs->set_status_flags(*fd, O_APPEND | O_RDWR | O_TRUNC));  // only the settable bits change
  CHECK(*f.vfs->get_status_flags(*fd) == (O_RDONLY | O_APPEND | O_LARGEFILE));
  f.vfs->close_fd(*fd);
  ::close(*fd);
  // Eight threads read() one description: consecutive disjoint pieces that cover the file exactly once.
  fd = f.vfs->open(f.p("/mnt/m/words.bin"), O_RDONLY);
  REQUIRE(fd);
  std::vector<std::atomic<int>> seen(words);
  std::atomic<bool> wrong{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      std::vector<uint64_t> piece(4096 / 8);
      for (;;) {
        auto got = f.vfs->read(*fd, piece.data(), 4096);
        if (!got || *got == 0) {
          if (!got) wrong = true;
          return;
        }
        if (*got % 8 != 0) wrong = true;
        for (size_t i = 0; i < *got / 8; ++i) {
          if (piece[i] != piece[0] + i * 8 || piece[0] % 8 != 0 || piece[0] / 8 + i >= words) {
            wrong = true;
            return;
          }
          seen[piece[0] / 8 + i].fetch_add(1);
        }
      }
    });
  for (auto& th : threads) th.join();
  CHECK(!wrong.load());
  size_t once = 0;
  for (auto& s1 : seen) once += s1.load() == 1;
  CHECK(once == words);
  f.vfs->close_fd(*fd);
  ::close(*fd);
}

TEST_CASE("copy_to: the object's bytes to a sink, offsets as sendfile says, short sinks, errors") {
  Fixture f;
  std::string big;
  for (size_t i = 0; i < Vfs::kCopyPiece * 2 + 12345; ++i) big.push_back(static_cast<char>(i * 13 / 7));
  std::ofstream(f.root + "/bucket/pre/sub/big.bin", std::ios::binary) << big;
  auto fd = f.vfs->open(f.p("/mnt/m/f.bin"), O_RDONLY);
  REQUIRE(fd);
  std::string out;
  Vfs::Sink all = [&](const std::byte* d, size_t n) -> Result<size_t> {
    out.append(reinterpret_cast<const char*>(d), n);
    return n;
  };
  // Without an offset pointer: from and advancing the fd offset.
  REQUIRE(*f.vfs->lseek(*fd, 1000, SEEK_SET) == 1000);
  CHECK(*f.vfs->copy_to(*fd, nullptr, 5000, all) == 5000);
  CHECK(out == f.data.substr(1000, 5000));
  CHECK(*f.vfs->lseek(*fd, 0, SEEK_CUR) == 6000);
  // With one: at *offset, which advances; the fd offset stays.
  out.clear();
  int64_t off = 299000;
  CHECK(*f.vfs->copy_to(*fd, &off, 5000, all) == 1000);  // short at the end of the file
  CHECK(off == 300000);
  CHECK(out == f.data.substr(299000));
  CHECK(*f.vfs->copy_to(*fd, &off, 5000, all) == 0);  // 0 at EOF
  CHECK(*f.vfs->lseek(*fd, 0, SEEK_CUR) == 6000);
  int64_t neg = -1;
  CHECK(f.vfs->copy_to(*fd, &neg, 10, all).error().code == EINVAL);
  // The whole file, in more than one piece.
  out.clear();
  off = 0;
  CHECK(*f.vfs->copy_to(*fd, &off, size_t{1} << 40, all) == f.data.size());
  CHECK(out == f.data);
  // A sink that takes less: the copy stops there and the fd offset moves only by what it took.
  out.clear();
  REQUIRE(*f.vfs->lseek(*fd, 0, SEEK_SET) == 0);
  Vfs::Sink some = [&](const std::byte* d, size_t n) -> Result<size_t> {
    n = std::min<size_t>(n, 777);
    out.append(reinterpret_cast<const char*>(d), n);
    return n;
  };
  CHECK(*f.vfs->copy_to(*fd, nullptr, 100000, some) == 777);
  CHECK(out == f.data.substr(0, 777));
  CHECK(*f.vfs->lseek(*fd, 0, SEEK_CUR) == 777);
  // A sink that fails: its error when nothing moved, else the count so far.
  Vfs::Sink broken = [](const std::byte*, size_t) -> Result<size_t> { return make_error(EPIPE, "closed"); };
  CHECK(f.vfs->copy_to(*fd, nullptr, 100, broken).error().code == EPIPE);
  CHECK(*f.vfs->lseek(*fd, 0, SEEK_CUR) == 777);
  // A file larger than one piece: the whole of it, and a sink that fails on the second piece.
  auto bfd = f.vfs->open(f.p("/mnt/m/sub/big.bin"), O_RDONLY);
  REQUIRE(bfd);
  out.clear();
  CHECK(*f.vfs->copy_to(*bfd, nullptr, size_t{1} << 40, all) == big.size());
  CHECK(out == big);
  CHECK(*f.vfs->lseek(*bfd, 0, SEEK_CUR) == static_cast<int64_t>(big.size()));
  CHECK(*f.vfs->copy_to(*bfd, nullptr, 10, all) == 0);
  int calls = 0;
  Vfs::Sink once = [&](const std::byte*, size_t n) -> Result<size_t> {
    if (calls++ == 0) return n;
    return make_error(EPIPE, "closed");
  };
  REQUIRE(*f.vfs->lseek(*bfd, 0, SEEK_SET) == 0);
  CHECK(*f.vfs->copy_to(*bfd, nullptr, big.size(), once) == Vfs::kCopyPiece);
  CHECK(*f.vfs->lseek(*bfd, 0, SEEK_CUR) == static_cast<int64_t>(Vfs::kCopyPiece));
  f.vfs->close_fd(*bfd);
  ::close(*bfd);
  CHECK(f.vfs->copy_to(-5, nullptr, 10, all).error().code == EBADF);
  auto dir = f.vfs->open(f.p("/mnt/m/sub"), O_RDONLY | O_DIRECTORY);
  REQUIRE(dir);
  CHECK(f.vfs->copy_to(*dir, nullptr, 10, all).error().code == EINVAL);
  char c;
  CHECK(f.vfs->read(*dir, &c, 1).error().code == EISDIR);
  f.vfs->close_fd(*dir);
  ::close(*dir);
  f.vfs->close_fd(*fd);
  ::close(*fd);
}

TEST_CASE("virtual cwd: chdir into a mounted directory, fchdir, fd_path, clear") {
  Fixture f;
  CHECK(!f.vfs->has_cwd());
  CHECK(!f.vfs->cwd());
  CHECK(f.vfs->chdir(f.p("/mnt/m/f.bin")).error().code == ENOTDIR);
  CHECK(f.vfs->chdir(f.p("/mnt/m/nope")).error().code == ENOENT);
  CHECK(!f.vfs->has_cwd());
  REQUIRE(f.vfs->chdir(f.p("/mnt/m/sub")));
  CHECK(*f.vfs->cwd() == "/mnt/m/sub");
  auto dir = f.vfs->open(f.p("/mnt/m/sub/deep"), O_RDONLY | O_DIRECTORY);
  auto file = f.vfs->open(f.p("/mnt/m/f.bin"), O_RDONLY);
  REQUIRE(dir);
  REQUIRE(file);
  CHECK(*f.vfs->fd_path(*dir) == "/mnt/m/sub/deep");
  CHECK(*f.vfs->fd_path(*file) == "/mnt/m/f.bin");
  CHECK(!f.vfs->fd_path(0));
  CHECK(f.vfs->fchdir(*file).error().code == ENOTDIR);
  REQUIRE(f.vfs->fchdir(*dir));
  CHECK(*f.vfs->cwd() == "/mnt/m/sub/deep");
  f.vfs->clear_cwd();
  CHECK(!f.vfs->has_cwd());
  CHECK(!f.vfs->cwd());
  for (int fd : {*dir, *file}) {
    f.vfs->close_fd(fd);
    ::close(fd);
  }
}

namespace {
// A store whose listing is a fixed set of keys (a delimited listing as S3 answers it): keys no file system
// can hold, which LocalDirStore cannot serve.
class KeyListStore : public ObjectStore {
 public:
  explicit KeyListStore(std::vector<std::string> keys) : keys_(std::move(keys)) {}
  Result<ObjectInfo> stat(std::string_view) override { return make_error(ENOENT, "no HEAD here"); }
  Result<Listing> list(std::string_view prefix, bool delimited) override {
    Listing out;
    for (const auto& k : keys_) {
      if (!k.starts_with(prefix)) continue;
      size_t slash = k.find('/', prefix.size());
      if (delimited && slash != std::string::npos) {
        std::string p = k.substr(0, slash + 1);
        if (std::find(out.common_prefixes.begin(), out.common_prefixes.end(), p) == out.common_prefixes.end())
          out.common_prefixes.push_back(p);
      } else {
        out.objects.push_back(ObjectInfo{k, 1, "\"e\"", ""});
      }
    }
    return out;
  }
  void read_async(RangeRequest, ReadCallback done) override { done(make_error(EIO, "no reads here")); }
  StoreStats stats() const override { return {}; }

 private:
  std::vector<std::string> keys_;
};

std::vector<std::string> names(const Result<std::vector<DirEntry>>& r) {
  std::vector<std::string> out;
  if (r)
    for (const auto& e : *r) out.push_back(e.name);
  return out;
}
}  // namespace

TEST_CASE("tree: keys a path cannot reach are left out; a key that is also a prefix is a directory") {
  const std::string base = "s3://b/m/";
  std::string long_name(1000, 'x');
  KeyListStore store({base + "ok.bin", base + "a/../../etc/passwd", base + "a/./b", base + "a/real.bin",
                      base + "../up.bin", base + "./dot.bin", base + ".", base + long_name,
                      base + "d/" + long_name + "/f", base + std::string(255, 'y'), base + "both",
                      base + "both/inner.bin", base + "empty.bin"});
  Tree tree(store);
  auto root = tree.list(base, "");
  REQUIRE(root);
  // ".." (from "../up.bin") and "." are not entries, nor is the 1000-character name; 255 characters is.
  CHECK(names(root) == std::vector<std::string>{"a", "both", "d", "empty.bin", "ok.bin", std::string(255, 'y')});
  CHECK(names(tree.list(base, "a")) == std::vector<std::string>{"real.bin"});
  CHECK(names(tree.list(base, "d")).empty());
  CHECK(tree.lookup(base, "a/..").error().code == ENOENT);
  CHECK(tree.lookup(base, long_name).error().code == ENOENT);
  CHECK(tree.lookup(base, "both")->kind == NodeKind::dir);  // the directory wins, as in s3fs/mountpoint-s3
  CHECK(tree.lookup(base, "both/inner.bin")->kind == NodeKind::file);
  CHECK(tree.lookup(base, "a/real.bin")->info.key == base + "a/real.bin");
}
