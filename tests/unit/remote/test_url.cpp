#include <doctest/doctest.h>

#include "core/remote/url.hpp"

using namespace mf;

TEST_CASE("s3 URLs") {
  auto u = parse_remote_url("s3://my-bucket/models/llama/");
  REQUIRE(u.ok());
  CHECK(u->is_s3());
  CHECK(u->bucket == "my-bucket");
  CHECK(u->path == "models/llama/");
  auto bare = parse_remote_url("s3://my-bucket");
  REQUIRE(bare.ok());
  CHECK(bare->path.empty());
  CHECK(bare->display() == "s3://my-bucket/");
}

TEST_CASE("http URLs keep the query apart") {
  auto u = parse_remote_url("https://cdn.example.com:8443/a/b/model.safetensors?X-Amz-Signature=abc&X=1");
  REQUIRE(u.ok());
  CHECK(u->scheme == Scheme::https);
  CHECK(u->authority == "cdn.example.com:8443");
  CHECK(u->path == "a/b/model.safetensors");
  CHECK(u->query == "X-Amz-Signature=abc&X=1");
  CHECK(u->display().find("Signature") == std::string::npos);
  // The query starts at the first '?', even before the first '/' (found by scripts/fuzz: the part after
  // the '/' used to become the path and showed in display()).
  auto early = parse_remote_url("http://host?a=/b?sig=1");
  REQUIRE(early.ok());
  CHECK(early->authority == "host");
  CHECK(early->path.empty());
  CHECK(early->query == "a=/b?sig=1");
  CHECK(early->display() == "http://host/");
  auto v6 = parse_remote_url("http://[::1]:8080/x");
  REQUIRE(v6.ok());
  CHECK(v6->authority == "[::1]:8080");
}

TEST_CASE("bad URLs are EINVAL with a message naming the expected form, without the query") {
  struct Case {
    const char* text;
    const char* why;
  };
  const Case cases[] = {
      {"", "unknown scheme"},
      {"ftp://host/x", "unknown scheme"},
      {"s3:/bucket", "unknown scheme"},
      {"s3://", "bad bucket name"},
      {"s3://ab/x", "bad bucket name"},
      {"s3://bad bucket/x", "bad bucket name"},
      {"s3://bucket/x?y=1", "query not allowed"},
      {"http:///path", "bad host"},
      {"http://user:pw@host/x", "bad host"},
      {"http://host:99999/x", "bad host"},
      {"http://host:port/x", "bad host"},
      {"http://host/x#frag", "fragment"},
      {"http://host/a\nb", "control character"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    auto r = parse_remote_url(c.text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == EINVAL);
    CHECK(r.error().message.find(c.why) != std::string::npos);
    CHECK(r.error().message.find("expected s3://BUCKET") != std::string::npos);
  }
  auto q = parse_remote_url("ftp://h/x?Signature=SECRET");
  REQUIRE_FALSE(q.ok());
  CHECK(q.error().message.find("SECRET") == std::string::npos);
}

TEST_CASE("split_object_url") {
  auto s3 = split_object_url(*parse_remote_url("s3://bkt/d/e/f.bin"));
  CHECK(s3.first.path.empty());
  CHECK(s3.second == "d/e/f.bin");
  auto h = split_object_url(*parse_remote_url("http://h:1/d/f.bin?sig=1"));
  CHECK(h.first.path == "d/");
  CHECK(h.first.query == "sig=1");
  CHECK(h.second == "f.bin");
  auto top = split_object_url(*parse_remote_url("http://h/f.bin"));
  CHECK(top.first.path.empty());
  CHECK(top.second == "f.bin");
}
