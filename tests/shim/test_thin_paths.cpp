// The thin library's pre-filter (shim/thin_paths.cpp): which environments it reads itself, which it leaves
// to the engine, and which paths load the engine. A "no" must be right (the engine would never see the
// call); "may" only costs loading the engine.
#include "shim/thin_paths.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include <map>
#include <string>

using namespace mf::thin;

namespace {
std::map<std::string, std::string> g_env;
const char* lookup(const char* name) {
  auto it = g_env.find(name);
  return it == g_env.end() ? nullptr : it->second.c_str();
}
MountsFound read(Mounts& m, std::map<std::string, std::string> env) {
  g_env = std::move(env);
  return read_mounts(m, lookup);
}
}  // namespace

TEST_CASE("read_mounts: the plain forms are read, the rest is left to the engine") {
  static Mounts m;
  CHECK(read(m, {}) == MountsFound::none);
  CHECK(read(m, {{"MODELFETCH_MOUNTS", ""}}) == MountsFound::none);
  CHECK(read(m, {{"MODELFETCH_REMOTE", "s3://b/p"}, {"MODELFETCH_MOUNT", "/models/"}}) == MountsFound::some);
  REQUIRE(m.count == 1);
  CHECK(std::string(m.text + m.start[0], m.len[0]) == "/models");
  CHECK(read(m, {{"MODELFETCH_REMOTE", "s3://b/p"}}) == MountsFound::unclear);
  CHECK(read(m, {{"MODELFETCH_MOUNT", "/m"}}) == MountsFound::unclear);
  CHECK(read(m, {{"MODELFETCH_REMOTE", "ftp://x"}, {"MODELFETCH_MOUNT", "/m"}}) == MountsFound::unclear);
  CHECK(read(m, {{"MODELFETCH_REMOTE", "s3:///p"}, {"MODELFETCH_MOUNT", "/m"}}) == MountsFound::unclear);
  CHECK(read(m, {{"MODELFETCH_REMOTE", "https://h/p?x"}, {"MODELFETCH_MOUNT", "/m"}}) == MountsFound::unclear);
  CHECK(read(m, {{"MODELFETCH_REMOTE", "s3://b"}, {"MODELFETCH_MOUNT", "models"}}) == MountsFound::unclear);
  CHECK(read(m, {{"MODELFETCH_REMOTE", "s3://b"}, {"MODELFETCH_MOUNT", "/"}}) == MountsFound::unclear);
  CHECK(read(m, {{"MODELFETCH_MOUNTS", "/a=s3://b/x;/c//d/=https://h/y;"}}) == MountsFound::some);
  REQUIRE(m.count == 2);
  CHECK(std::string(m.text + m.start[1], m.len[1]) == "/c/d");
  CHECK(read(m, {{"MODELFETCH_MOUNTS", "/a"}}) == MountsFound::unclear);
  CHECK(read(m, {{"MODELFETCH_MOUNTS", ";;"}}) == MountsFound::unclear);
  CHECK(read(m, {{"MODELFETCH_MOUNTS", "/a=s3://b;x=s3://c"}}) == MountsFound::unclear);
  CHECK(m.count == 0);  // nothing half-read
}

TEST_CASE("may_be_mounted: absolute paths, normalised lexically as the engine does") {
  static Mounts m;
  REQUIRE(read(m, {{"MODELFETCH_MOUNTS", "/mnt/models=s3://b/x;/data=s3://b/y"}}) == MountsFound::some);
  CHECK(may_be_mounted(m, AT_FDCWD, "/mnt/models"));
  CHECK(may_be_mounted(m, AT_FDCWD, "/mnt/models/"));
  CHECK(may_be_mounted(m, AT_FDCWD, "/mnt/models/a/b.bin"));
  CHECK(may_be_mounted(m, AT_FDCWD, "/data/x"));
  CHECK(may_be_mounted(m, AT_FDCWD, "//mnt/./models//a"));
  CHECK(may_be_mounted(m, AT_FDCWD, "/mnt/x/../models/a"));
  CHECK(may_be_mounted(m, AT_FDCWD, "/../mnt/models"));
  CHECK_FALSE(may_be_mounted(m, AT_FDCWD, "/mnt/models2"));
  CHECK_FALSE(may_be_mounted(m, AT_FDCWD, "/mnt"));
  CHECK_FALSE(may_be_mounted(m, AT_FDCWD, "/mnt/models/../other"));
  CHECK_FALSE(may_be_mounted(m, AT_FDCWD, "/home/u/.local/lib"));
  CHECK_FALSE(may_be_mounted(m, AT_FDCWD, "/usr/lib/x86_64-linux-gnu/libc.so.6"));
  CHECK_FALSE(may_be_mounted(m, AT_FDCWD, ""));
  CHECK_FALSE(may_be_mounted(m, AT_FDCWD, nullptr));
  CHECK_FALSE(may_be_mounted(m, 5, "models/a"));  // relative to a real dirfd: no fd is virtual yet
  CHECK(may_be_mounted(m, 5, "/data/a"));         // an absolute path ignores dirfd
}

TEST_CASE("may_be_mounted: relative paths against the cwd") {
  static Mounts m;
  char saved[PATH_MAX];
  REQUIRE(getcwd(saved, sizeof saved));
  char tmpl[] = "/tmp/mf-thin-paths-XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  const std::string root = tmpl, mount = root + "/m";
  REQUIRE(mkdir(mount.c_str(), 0755) == 0);
  REQUIRE(mkdir((mount + "/a").c_str(), 0755) == 0);
  REQUIRE(mkdir((root + "/other").c_str(), 0755) == 0);
  REQUIRE(read(m, {{"MODELFETCH_MOUNT", mount}, {"MODELFETCH_REMOTE", "s3://b/x"}}) == MountsFound::some);
  REQUIRE(chdir(root.c_str()) == 0);
  CHECK(may_be_mounted(m, AT_FDCWD, "m"));
  CHECK(may_be_mounted(m, AT_FDCWD, "./m/a/x.bin"));
  CHECK(may_be_mounted(m, AT_FDCWD, "other/../m"));
  CHECK_FALSE(may_be_mounted(m, AT_FDCWD, "other"));
  CHECK_FALSE(may_be_mounted(m, AT_FDCWD, "mm"));
  REQUIRE(chdir((root + "/other").c_str()) == 0);
  CHECK(may_be_mounted(m, AT_FDCWD, "../m/a"));
  CHECK_FALSE(may_be_mounted(m, AT_FDCWD, "x.bin"));
  REQUIRE(chdir((mount + "/a").c_str()) == 0);
  CHECK(may_be_mounted(m, AT_FDCWD, "x.bin"));  // the cwd is inside the mount
  CHECK_FALSE(may_be_mounted(m, AT_FDCWD, "../../other"));
  REQUIRE(chdir(saved) == 0);
  rmdir((mount + "/a").c_str());
  rmdir(mount.c_str());
  rmdir((root + "/other").c_str());
  rmdir(root.c_str());
}
