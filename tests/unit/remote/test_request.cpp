#include <doctest/doctest.h>

#include <algorithm>

#include "core/remote/request.hpp"

using namespace mf;

namespace {
RemoteConfig cfg(std::map<std::string, std::string, std::less<>> vars) {
  auto c = RemoteConfig::from_env(map_env(std::move(vars)));
  REQUIRE(c.ok());
  return *c;
}
bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }
}  // namespace

TEST_CASE("uri_encode follows SigV4's rules") {
  CHECK(uri_encode("a b+c/d~e_f.g-h", true) == "a%20b%2Bc/d~e_f.g-h");
  CHECK(uri_encode("a/b=c", false) == "a%2Fb%3Dc");
  CHECK(uri_encode("\xc3\xa9", true) == "%C3%A9");
}

TEST_CASE("object URLs: path style, virtual-hosted, AWS default, http") {
  auto s3 = *parse_remote_url("s3://bkt/ignored");
  CHECK(object_url(s3, cfg({{"AWS_ENDPOINT_URL", "http://127.0.0.1:9000"}}), "m/a b") ==
        "http://127.0.0.1:9000/bkt/m/a%20b");
  CHECK(object_url(s3, cfg({}), "k") == "https://bkt.s3.us-east-1.amazonaws.com/k");
  CHECK(object_url(s3, cfg({{"AWS_REGION", "eu-west-1"}, {"MODELFETCH_S3_ADDRESSING", "path"}}), "k") ==
        "https://s3.eu-west-1.amazonaws.com/bkt/k");
  CHECK(object_url(s3, cfg({{"AWS_ENDPOINT_URL", "https://minio.local:9000"}, {"MODELFETCH_S3_ADDRESSING", "virtual"}}),
                   "k") == "https://bkt.minio.local:9000/k");
  auto dotted = *parse_remote_url("s3://my.bucket/");
  CHECK(object_url(dotted, cfg({}), "k") == "https://s3.us-east-1.amazonaws.com/my.bucket/k");
  auto h = *parse_remote_url("http://h:8080/models/?sig=1");
  CHECK(object_url(h, cfg({}), "x.bin") == "http://h:8080/models/x.bin?sig=1");
  auto h2 = *parse_remote_url("http://h:8080/models");
  CHECK(object_url(h2, cfg({}), "x.bin") == "http://h:8080/models/x.bin");
}

TEST_CASE("list URLs: no trailing slash in path style (s3rver), sorted, encoded query") {
  auto s3 = *parse_remote_url("s3://bkt/");
  auto c = cfg({{"AWS_ENDPOINT_URL", "http://e:1"}});
  CHECK(list_url(s3, c, "", false, "") == "http://e:1/bkt?list-type=2");
  CHECK(list_url(s3, c, "m/", true, "a/b+=") ==
        "http://e:1/bkt?continuation-token=a%2Fb%2B%3D&delimiter=%2F&list-type=2&prefix=m%2F");
  CHECK(list_url(s3, cfg({}), "p", false, "") == "https://bkt.s3.us-east-1.amazonaws.com/?list-type=2&prefix=p");
}

TEST_CASE("headers: payload hash always on s3, session token only with credentials, If-Match") {
  auto s3 = *parse_remote_url("s3://bkt/");
  auto anon = request_headers(s3, cfg({}), "");
  CHECK(anon == std::vector<std::string>{"x-amz-content-sha256: UNSIGNED-PAYLOAD"});
  auto sess = request_headers(
      s3, cfg({{"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SECRET_ACCESS_KEY", "S"}, {"AWS_SESSION_TOKEN", "TOK"}}), "\"e\"");
  CHECK(has(sess, "x-amz-security-token: TOK"));
  CHECK(has(sess, "If-Match: \"e\""));
  CHECK(has(sess, "x-amz-content-sha256: UNSIGNED-PAYLOAD"));
  auto plain = request_headers(s3, cfg({{"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SECRET_ACCESS_KEY", "S"}}), "");
  CHECK(plain.size() == 1);
  auto h = request_headers(*parse_remote_url("http://h/x"), cfg({{"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SECRET_ACCESS_KEY", "S"}}), "");
  CHECK(h.empty());  // no AWS headers to a mirror
}

TEST_CASE("sigv4 parameter names region and service explicitly; none when unsigned") {
  auto s3 = *parse_remote_url("s3://bkt/");
  CHECK(sigv4_param(s3, cfg({{"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SECRET_ACCESS_KEY", "S"}, {"AWS_REGION", "eu-central-1"}})) ==
        "aws:amz:eu-central-1:s3");
  CHECK(sigv4_param(s3, cfg({})).empty());
  CHECK(sigv4_param(*parse_remote_url("http://h/x"), cfg({{"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SECRET_ACCESS_KEY", "S"}})).empty());
}
