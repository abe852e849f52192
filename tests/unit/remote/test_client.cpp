// Client tests against a scripted HTTP server on loopback (no S3 needed): lazy start, retries and their
// stats, no retry on 403, body checks, headers actually sent, shutdown with transfers in flight.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "core/remote/client.hpp"
#include "tests/unit/remote/fake_server.hpp"

using namespace mf;
using mf::testing::FakeServer;

namespace {

std::string range_response(const std::string& body, uint64_t first, uint64_t last) {
  std::string part = body.substr(first, last - first + 1);
  return "HTTP/1.1 206 Partial Content\r\nContent-Length: " + std::to_string(part.size()) +
         "\r\nContent-Range: bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" +
         std::to_string(body.size()) + "\r\nETag: \"v1\"\r\n\r\n" + part;
}

std::unique_ptr<Client> client_for(int port, std::map<std::string, std::string, std::less<>> extra = {}) {
  extra["AWS_ENDPOINT_URL"] = "http://127.0.0.1:" + std::to_string(port);
  extra.try_emplace("MODELFETCH_RETRY_BASE_MS", "1");
  // No credentials given: unsigned, as these fakes expect (and never the chain's IMDS at 169.254.169.254).
  if (!extra.contains("AWS_ACCESS_KEY_ID")) extra.try_emplace("MODELFETCH_NO_SIGN", "1");
  extra.try_emplace("AWS_EC2_METADATA_DISABLED", "true");
  auto cfg = RemoteConfig::from_env(map_env(extra));
  REQUIRE(cfg.ok());
  auto c = make_client(*parse_remote_url("s3://bucket/"), *cfg);
  REQUIRE(c.ok());
  return std::move(*c);
}

std::string response(const std::string& status, const std::string& body, const std::string& headers = "") {
  return "HTTP/1.1 " + status + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + headers + "\r\n" + body;
}

const std::string kBody = "0123456789abcdefghijklmnopqrstuvwxyz";

}  // namespace

TEST_CASE("no thread and no connection until the first request") {
  FakeServer server([](const std::string&, int) { return range_response(kBody, 0, 3); });
  auto c = client_for(server.port());
  CHECK_FALSE(c->io_thread_started());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(server.requests().empty());
  std::vector<std::byte> buf(4);
  REQUIRE(c->read({"k", "", 0, 4, buf.data()}).ok());
  CHECK(c->io_thread_started());
  CHECK(std::memcmp(buf.data(), "0123", 4) == 0);
}

TEST_CASE("503 then 206: retried once, data correct; headers sent") {
  FakeServer server([](const std::string&, int n) {
    if (n == 0) return response("503 Slow Down", "<Error><Code>SlowDown</Code></Error>");
    return range_response(kBody, 10, 19);
  });
  auto c = client_for(server.port(), {{"AWS_ACCESS_KEY_ID", "AKIDTEST"},
                                      {"AWS_SECRET_ACCESS_KEY", "SECRETVALUE"},
                                      {"AWS_SESSION_TOKEN", "SESSIONTOKEN"}});
  std::vector<std::byte> buf(10);
  auto r = c->read({"dir/k", "\"v1\"", 10, 10, buf.data()});
  REQUIRE(r.ok());
  CHECK(std::memcmp(buf.data(), "abcdefghij", 10) == 0);
  CHECK(c->stats().retries == 1);
  CHECK(c->stats().get_requests == 2);
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[1].starts_with("GET /bucket/dir/k HTTP/1.1"));
  CHECK(reqs[1].find("Range: bytes=10-19") != std::string::npos);
  CHECK(reqs[1].find("If-Match: \"v1\"") != std::string::npos);
  CHECK(reqs[1].find("x-amz-security-token: SESSIONTOKEN") != std::string::npos);
  CHECK(reqs[1].find("x-amz-content-sha256: UNSIGNED-PAYLOAD") != std::string::npos);
  CHECK(reqs[1].find("Authorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/") != std::string::npos);
  CHECK(reqs[1].find("/us-east-1/s3/aws4_request") != std::string::npos);
  CHECK(reqs[1].find("x-amz-security-token") < reqs[1].size());
}

TEST_CASE("403 is not retried and the message holds no credentials") {
  FakeServer server([](const std::string&, int) {
    return response("403 Forbidden", "<Error><Code>SignatureDoesNotMatch</Code></Error>");
  });
  auto c = client_for(server.port(), {{"AWS_ACCESS_KEY_ID", "AKIDTEST"},
                                      {"AWS_SECRET_ACCESS_KEY", "SECRETVALUE"},
                                      {"AWS_SESSION_TOKEN", "SESSIONTOKEN"}});
  std::vector<std::byte> buf(4);
  auto r = c->read({"k", "", 0, 4, buf.data()});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == EACCES);
  CHECK(r.error().message.find("SignatureDoesNotMatch") != std::string::npos);
  for (const char* secret : {"SECRETVALUE", "SESSIONTOKEN", "Authorization", "Signature="})
    CHECK(r.error().message.find(secret) == std::string::npos);
  CHECK(c->stats().get_requests == 1);
  CHECK(c->stats().retries == 0);
  CHECK(c->stats().errors == 1);
  auto st = c->stat("k");
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == EACCES);
}

TEST_CASE("status mapping: 404, 412, 416") {
  struct Case {
    const char* status;
    int err;
  };
  for (Case k : {Case{"404 Not Found", ENOENT}, Case{"412 Precondition Failed", ESTALE},
                 Case{"416 Range Not Satisfiable", EINVAL}}) {
    FakeServer server([&](const std::string&, int) {
      return std::string("HTTP/1.1 ") + k.status + "\r\nContent-Length: 0\r\n\r\n";
    });
    auto c = client_for(server.port());
    std::vector<std::byte> buf(4);
    auto r = c->read({"k", "\"v0\"", 0, 4, buf.data()});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == k.err);
    CHECK(c->stats().get_requests == 1);
  }
}

TEST_CASE("a wrong Content-Range or a too-long body is retried, then fails with EIO") {
  FakeServer server([](const std::string&, int n) {
    if (n % 2 == 0) return range_response(kBody, 1, 4);  // asked 0-3: shifted range
    return range_response(kBody, 0, 5);                   // asked 0-3: 6 bytes
  });
  auto c = client_for(server.port(), {{"MODELFETCH_RETRIES", "3"}});
  std::vector<std::byte> buf(4);
  auto r = c->read({"k", "", 0, 4, buf.data()});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == EIO);
  CHECK(c->stats().get_requests == 4);
  CHECK(c->stats().retries == 3);
}

TEST_CASE("Retry-After is honoured") {
  FakeServer server([](const std::string&, int n) {
    if (n == 0) return std::string("HTTP/1.1 503 Slow Down\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n");
    return range_response(kBody, 0, 3);
  });
  auto c = client_for(server.port());
  std::vector<std::byte> buf(4);
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(c->read({"k", "", 0, 4, buf.data()}).ok());
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(950));
}

TEST_CASE("invalid requests fail with EINVAL without a request") {
  FakeServer server([](const std::string&, int) { return range_response(kBody, 0, 3); });
  auto c = client_for(server.port());
  std::vector<std::byte> buf(4);
  CHECK(c->read({"k", "", 0, 0, buf.data()}).error().code == EINVAL);
  CHECK(c->read({"k", "", 0, 4, nullptr}).error().code == EINVAL);
  CHECK(c->read({"k", "", ~0ull, 4, buf.data()}).error().code == EINVAL);
  CHECK(server.requests().empty());
}

TEST_CASE("http remotes: list is ENOTSUP") {
  auto cfg = RemoteConfig::from_env(map_env({}));
  auto c = make_client(*parse_remote_url("http://127.0.0.1:1/x/"), *cfg);
  REQUIRE(c.ok());
  auto l = (*c)->list("", false);
  REQUIRE_FALSE(l.ok());
  CHECK(l.error().code == ENOTSUP);
  CHECK_FALSE((*c)->io_thread_started());
}

TEST_CASE("destructor with transfers in flight: no hang, callbacks get ECANCELED") {
  FakeServer server([](const std::string&, int) { return std::string(); });  // never answers
  std::atomic<int> cancelled{0}, other{0};
  std::vector<std::byte> buf(40 * 4);
  auto t0 = std::chrono::steady_clock::now();
  {
    auto c = client_for(server.port(), {{"MODELFETCH_MAX_CONNECTIONS", "4"}});
    for (int i = 0; i < 40; ++i)  // 4 on the wire, 36 queued
      c->read_async({"k", "", 0, 4, buf.data() + 4 * i}, [&](Result<void> r) {
        (!r && r.error().code == ECANCELED ? cancelled : other)++;
      });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK(server.requests().size() == 4);  // the connection limit holds
  }
  CHECK(cancelled == 40);
  CHECK(other == 0);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
}

TEST_CASE("stalled transfers are aborted by the overall timeout") {
  FakeServer server([](const std::string&, int) { return std::string(); });
  auto c = client_for(server.port(), {{"MODELFETCH_TIMEOUT_MS", "300"}});
  std::vector<std::byte> buf(4);
  auto r = c->read({"k", "", 0, 4, buf.data()});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ETIMEDOUT);
}

namespace {

std::unique_ptr<Client> signed_client(int port, const std::string& bucket) {
  auto cfg = RemoteConfig::from_env(map_env({{"AWS_ENDPOINT_URL", "http://127.0.0.1:" + std::to_string(port)},
                                             {"AWS_ACCESS_KEY_ID", "AKIDTEST"}, {"AWS_SECRET_ACCESS_KEY", "SECRETVALUE"},
                                             {"AWS_REGION", "us-east-1"}, {"MODELFETCH_RETRY_BASE_MS", "1"}}));
  REQUIRE(cfg.ok());
  auto c = make_client(*parse_remote_url("s3://" + bucket + "/"), *cfg);
  REQUIRE(c.ok());
  return std::move(*c);
}

}  // namespace

TEST_CASE("a 400 AuthorizationHeaderMalformed naming the bucket's region is followed once, then remembered") {
  FakeServer server([](const std::string& req, int) {
    if (req.find("/eu-west-3/s3/aws4_request") != std::string::npos) return range_response(kBody, 0, 3);
    return response("400 Bad Request", "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region "
                                       "'us-east-1' is wrong; expecting 'eu-west-3'</Message>"
                                       "<Region>eu-west-3</Region></Error>");
  });
  std::vector<std::byte> buf(4);
  {
    auto c = signed_client(server.port(), "regional-bucket");
    REQUIRE(c->read({"k", "", 0, 4, buf.data()}).ok());
    CHECK(std::memcmp(buf.data(), "0123", 4) == 0);
    CHECK(server.requests().size() == 2);
    REQUIRE(c->read({"k", "", 0, 4, buf.data()}).ok());  // the same client: straight to eu-west-3
    CHECK(server.requests().size() == 3);
  }
  auto again = signed_client(server.port(), "regional-bucket");  // a later client of the same bucket
  CHECK(again->stat("k").ok());
  CHECK(server.requests().back().find("/eu-west-3/s3/aws4_request") != std::string::npos);
  CHECK(server.requests().size() == 4);
}

TEST_CASE("a 301 with x-amz-bucket-region on HEAD is followed; a region that does not help is not followed twice") {
  FakeServer moved([](const std::string& req, int) {
    if (req.find("/ap-south-1/s3/aws4_request") != std::string::npos)
      return response("200 OK", "", "ETag: \"v\"\r\n");
    return std::string("HTTP/1.1 301 Moved Permanently\r\nx-amz-bucket-region: ap-south-1\r\nContent-Length: 0\r\n\r\n");
  });
  auto c = signed_client(moved.port(), "moved-bucket");
  auto st = c->stat("k");
  CHECK(st.ok());
  CHECK(moved.requests().size() == 2);
  CHECK(moved.requests()[1].find("/ap-south-1/s3/aws4_request") != std::string::npos);

  FakeServer stubborn([](const std::string&, int) {
    return response("400 Bad Request", "<Error><Code>AuthorizationHeaderMalformed</Code><Region>eu-north-1</Region></Error>");
  });
  auto s = signed_client(stubborn.port(), "stubborn-bucket");
  std::vector<std::byte> buf(4);
  auto r = s->read({"k", "", 0, 4, buf.data()});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("AuthorizationHeaderMalformed") != std::string::npos);
  CHECK(stubborn.requests().size() == 2);
}
