#include <doctest/doctest.h>
#include <curl/curl.h>

#include <cerrno>
#include <cstring>

#include "core/remote/retry.hpp"

using namespace mf;
using Kind = RetryDecision::Kind;

namespace {
AttemptOutcome http(long status) {
  AttemptOutcome o;
  o.http_status = status;
  return o;
}
AttemptOutcome curl(int code) {
  AttemptOutcome o;
  o.curl_code = code;
  return o;
}
}  // namespace

TEST_CASE("classification: table") {
  struct Case {
    AttemptOutcome o;
    Kind kind;
    int error;
  };
  AttemptOutcome short_body = http(206);
  short_body.body_mismatch = true;
  const Case cases[] = {
      {http(200), Kind::success, 0},
      {http(206), Kind::success, 0},
      {short_body, Kind::retry, EIO},
      {http(403), Kind::fail, EACCES},
      {http(401), Kind::fail, EACCES},
      {http(404), Kind::fail, ENOENT},
      {http(412), Kind::fail, ESTALE},
      {http(416), Kind::fail, EINVAL},
      {http(400), Kind::fail, EIO},
      {http(408), Kind::retry, EIO},
      {http(429), Kind::retry, EIO},
      {http(500), Kind::retry, EIO},
      {http(503), Kind::retry, EIO},
      {curl(CURLE_COULDNT_CONNECT), Kind::retry, EIO},
      {curl(CURLE_OPERATION_TIMEDOUT), Kind::retry, ETIMEDOUT},
      {curl(CURLE_RECV_ERROR), Kind::retry, EIO},
      {curl(CURLE_PARTIAL_FILE), Kind::retry, EIO},
      {curl(CURLE_GOT_NOTHING), Kind::retry, EIO},
      {curl(CURLE_PEER_FAILED_VERIFICATION), Kind::fail, EIO},
      {curl(CURLE_URL_MALFORMAT), Kind::fail, EIO},
      {curl(CURLE_RANGE_ERROR), Kind::fail, EIO},
  };
  RetryPolicy p;
  for (const Case& c : cases) {
    CAPTURE(c.o.http_status);
    CAPTURE(c.o.curl_code);
    RetryDecision d = decide_retry(p, 0, c.o, 12345);
    CHECK(d.kind == c.kind);
    if (c.kind != Kind::success) CHECK(d.error == c.error);
  }
}

TEST_CASE("out of attempts: a retryable outcome fails with its errno") {
  RetryPolicy p{3, 100, 10000};
  CHECK(decide_retry(p, 2, http(503), 0).kind == Kind::retry);
  RetryDecision last = decide_retry(p, 3, http(503), 0);
  CHECK(last.kind == Kind::fail);
  CHECK(last.error == EIO);
  RetryPolicy none{0, 100, 10000};
  CHECK(decide_retry(none, 0, curl(CURLE_OPERATION_TIMEDOUT), 0).error == ETIMEDOUT);
}

TEST_CASE("full jitter: delay uniform in [0, min(cap, base*2^attempt)]") {
  RetryPolicy p{10, 100, 1000};
  struct Case {
    uint32_t attempt;
    uint64_t ceiling;
  };
  const Case cases[] = {{0, 100}, {1, 200}, {2, 400}, {3, 800}, {4, 1000}, {9, 1000}};
  for (const Case& c : cases) {
    CAPTURE(c.attempt);
    CHECK(decide_retry(p, c.attempt, http(500), 0).delay_ms == 0);
    CHECK(decide_retry(p, c.attempt, http(500), c.ceiling).delay_ms == c.ceiling);  // r % (ceiling+1)
    CHECK(decide_retry(p, c.attempt, http(500), c.ceiling + 1).delay_ms == 0);
    for (uint64_t r = 0; r < 5000; r += 97) CHECK(decide_retry(p, c.attempt, http(500), r * 7919).delay_ms <= c.ceiling);
  }
  RetryPolicy huge{100, 1000, 20000};  // a big attempt number must not shift past 64 bits
  CHECK(decide_retry(huge, 70, http(500), 20000).delay_ms == 20000);
}

TEST_CASE("Retry-After is a floor, capped") {
  RetryPolicy p{5, 100, 20000};
  AttemptOutcome slow = http(503);
  slow.retry_after_s = 3;
  RetryDecision d = decide_retry(p, 0, slow, 0);
  CHECK(d.kind == Kind::retry);
  CHECK(d.delay_ms == 3000);
  slow.retry_after_s = 3600;
  CHECK(decide_retry(p, 0, slow, 0).delay_ms == 20000);
  AttemptOutcome gone = http(404);
  gone.retry_after_s = 1;
  CHECK(decide_retry(p, 0, gone, 0).kind == Kind::fail);
}

TEST_CASE("parse_retry_after") {
  auto p = [](const char* s) { return parse_retry_after(s, std::strlen(s)); };
  CHECK(p("120") == 120u);
  CHECK(p(" 5\r\n") == 5u);
  CHECK_FALSE(p("Wed, 21 Oct 2015 07:28:00 GMT").has_value());
  CHECK_FALSE(p("").has_value());
  CHECK_FALSE(p("-1").has_value());
}

TEST_CASE("a 2xx with another ETag (If-Match ignored by the server) is ESTALE, not retried") {
  AttemptOutcome o = http(206);
  o.etag_mismatch = true;
  RetryDecision d = decide_retry(RetryPolicy{}, 0, o, 0);
  CHECK(d.kind == Kind::fail);
  CHECK(d.error == ESTALE);
}
