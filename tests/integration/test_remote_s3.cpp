// The client against s3rver (started by scripts/test; see scripts/lib.sh mf_start_s3). Without
// MODELFETCH_TEST_ENDPOINT the suite is skipped (exit 77), unless MODELFETCH_TEST_REQUIRE_S3=1 (then it fails).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstring>
#include <thread>

#include "tests/integration/s3_fixture.hpp"

using namespace mf;
using namespace mf::test;

namespace {

std::string read_range(Client& c, const std::string& key, uint64_t off, uint64_t len, const std::string& etag = "") {
  std::string out(len, '\0');
  auto r = c.read({key, etag, off, len, reinterpret_cast<std::byte*>(out.data())});
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  return out;
}

}  // namespace

TEST_CASE("good vs bad secret: a bad one is EACCES, not retried, and not in the message") {
  Uploader up;
  const std::string key = run_prefix() + "auth.bin";
  REQUIRE(up.put(key, "secret-checked") == 200);
  auto good = s3_client(s3_vars());
  auto info = good->stat(key);
  REQUIRE(info.ok());
  CHECK(info->size == 14);
  CHECK(read_range(*good, key, 0, 6) == "secret");

  auto bad = s3_client(s3_vars("wrong-secret-XYZZY"));
  auto st = bad->stat(key);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == EACCES);
  std::string buf(4, '\0');
  auto r = bad->read({key, "", 0, 4, reinterpret_cast<std::byte*>(buf.data())});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == EACCES);
  CHECK(r.error().message.find("SignatureDoesNotMatch") != std::string::npos);
  CHECK(r.error().message.find("XYZZY") == std::string::npos);
  CHECK(r.error().message.find(env_or("MODELFETCH_TEST_SECRET")) == std::string::npos);
  auto s = bad->stats();
  CHECK(s.head_requests == 1);
  CHECK(s.get_requests == 1);
  CHECK(s.retries == 0);
}

TEST_CASE("session token: sent and accepted (s3rver ignores it; the header itself is checked in unit tests)") {
  Uploader up;
  const std::string key = run_prefix() + "token.bin";
  REQUIRE(up.put(key, "tok") == 200);
  Vars v = s3_vars();
  v["AWS_SESSION_TOKEN"] = "FwoGZXIvYXdzE-session-token";
  auto c = s3_client(v);
  CHECK(read_range(*c, key, 0, 3) == "tok");
}

TEST_CASE("ranges: first byte, last byte, whole, past the end, many in parallel") {
  Uploader up;
  const std::string key = run_prefix() + "ranges.bin";
  const std::string data = random_bytes(3 * 1024 * 1024 + 7, 42);
  REQUIRE(up.put(key, data) == 200);
  auto c = s3_client(s3_vars());
  auto info = c->stat(key);
  REQUIRE(info.ok());
  CHECK(info->size == data.size());
  CHECK(info->etag.size() > 2);
  CHECK_FALSE(info->last_modified.empty());
  CHECK(read_range(*c, key, 0, 2, info->etag) == data.substr(0, 2));  // [0,1): see the s3rver case below
  CHECK(read_range(*c, key, 1, 1, info->etag) == data.substr(1, 1));
  CHECK(read_range(*c, key, data.size() - 1, 1, info->etag) == data.substr(data.size() - 1));
  CHECK(read_range(*c, key, 0, data.size()) == data);
  std::string buf(10, '\0');
  auto past = c->read({key, "", data.size(), 10, reinterpret_cast<std::byte*>(buf.data())});
  REQUIRE_FALSE(past.ok());
  CHECK(past.error().code == EINVAL);
  CHECK(c->stats().retries == 0);

  std::vector<std::string> outs(64, std::string(50000, '\0'));
  std::vector<RangeRequest> reqs;
  for (size_t i = 0; i < outs.size(); ++i)
    reqs.push_back({key, info->etag, i * 49000, 50000, reinterpret_cast<std::byte*>(outs[i].data())});
  auto results = c->read_many(reqs);
  for (size_t i = 0; i < outs.size(); ++i) {
    CAPTURE(i);
    REQUIRE(results[i].ok());
    CHECK(outs[i] == data.substr(i * 49000, 50000));
  }
}

TEST_CASE("s3rver answers bytes=0-0 with the whole object: refused as a wrong body, never wrong bytes") {
  Uploader up;
  const std::string key = run_prefix() + "zero.bin";
  REQUIRE(up.put(key, "abcdefgh") == 200);
  Vars v = s3_vars();
  v["MODELFETCH_RETRIES"] = "1";
  auto c = s3_client(v);
  char one = 0;
  auto r = c->read({key, "", 0, 1, reinterpret_cast<std::byte*>(&one)});
  if (r.ok()) {  // a fixed server
    CHECK(one == 'a');
  } else {
    CHECK(r.error().code == EIO);
    CHECK(r.error().message.find("wrong Content-Range") != std::string::npos);
    CHECK(c->stats().retries == 1);  // a bad body is retried
  }
}

TEST_CASE("404 → ENOENT for stat and read") {
  auto c = s3_client(s3_vars());
  auto st = c->stat(run_prefix() + "missing");
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ENOENT);
  std::string buf(4, '\0');
  auto r = c->read({run_prefix() + "missing", "", 0, 4, reinterpret_cast<std::byte*>(buf.data())});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ENOENT);
  CHECK(c->stats().retries == 0);
}

TEST_CASE("an object replaced between HEAD and GET → ESTALE") {
  Uploader up;
  const std::string key = run_prefix() + "replaced.bin";
  REQUIRE(up.put(key, "version one") == 200);
  auto c = s3_client(s3_vars());
  auto info = c->stat(key);
  REQUIRE(info.ok());
  REQUIRE(up.put(key, "version two!") == 200);
  std::string buf(7, '\0');
  auto r = c->read({key, info->etag, 0, 7, reinterpret_cast<std::byte*>(buf.data())});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ESTALE);
  CHECK(c->stats().retries == 0);
  auto fresh = c->stat(key);
  REQUIRE(fresh.ok());
  CHECK(read_range(*c, key, 0, 7, fresh->etag) == "version");
}

TEST_CASE("listing: more than 1000 keys (continuation) and one level with delimiter") {
  Uploader up;
  const std::string base = run_prefix() + "many/";
  const int n = 1010;
  for (int i = 0; i < n; ++i) REQUIRE(up.put(base + "k" + std::to_string(i), "x") == 200);
  auto c = s3_client(s3_vars());
  auto all = c->list(base, false);
  REQUIRE_MESSAGE(all.ok(), (all.ok() ? "" : all.error().message));
  CHECK(all->objects.size() == static_cast<size_t>(n));
  CHECK(c->stats().list_requests >= 2);
  CHECK(all->objects.front().key.starts_with(base));

  const std::string tree = run_prefix() + "tree/";
  for (const char* k : {"a.json", "d1/x.bin", "d1/y.bin", "d2/z.bin", "sp ace+/w"})
    REQUIRE(up.put(tree + k, "t") == 200);
  auto lvl = c->list(tree, true);
  REQUIRE(lvl.ok());
  REQUIRE(lvl->objects.size() == 1);
  CHECK(lvl->objects[0].key == tree + "a.json");
  CHECK(lvl->common_prefixes == std::vector<std::string>{tree + "d1/", tree + "d2/", tree + "sp ace+/"});
  auto deep = c->list(tree + "sp ace+/", false);
  REQUIRE(deep.ok());
  REQUIRE(deep->objects.size() == 1);
  CHECK(deep->objects[0].key == tree + "sp ace+/w");
}

int main(int argc, char** argv) {
  if (env_or("MODELFETCH_TEST_ENDPOINT").empty()) {
    if (env_or("MODELFETCH_TEST_REQUIRE_S3") == "1") {
      std::fprintf(stderr, "MODELFETCH_TEST_REQUIRE_S3=1 but MODELFETCH_TEST_ENDPOINT is not set\n");
      return 1;
    }
    std::fprintf(stderr, "skipped: MODELFETCH_TEST_ENDPOINT not set (run scripts/test)\n");
    return 77;
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
