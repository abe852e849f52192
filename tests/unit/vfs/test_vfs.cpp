// core/vfs without LD_PRELOAD: config parsing (good and bad input), path normalisation and mount matching,
// the tree learned from listings, virtual fds (read/offset/dup/close identity) against a local-directory store.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

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
  CHECK(::lseek(*fd, 0, SEEK_CUR) == 70000);
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
