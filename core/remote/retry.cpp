#include "core/remote/retry.hpp"

#include <curl/curl.h>

#include <cerrno>
#include <string_view>

#include "core/util/env.hpp"

namespace mf {

int errno_for_status(long s) {
  if (s >= 200 && s < 300) return 0;
  switch (s) {
    case 401:
    case 403: return EACCES;
    case 404: return ENOENT;
    case 412: return ESTALE;
    case 416: return EINVAL;
    default: return EIO;
  }
}

bool curl_code_retryable(int code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:  // DNS hiccups are transient; a typo keeps failing and ends as EIO
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:  // also the low-speed abort
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_WRITE_ERROR:  // our write callback refused extra bytes: a wrong body, retried
    case CURLE_BAD_CONTENT_ENCODING:
      return true;
    default:
      return false;
  }
}

static bool status_retryable(long s) { return s == 408 || s == 429 || (s >= 500 && s <= 599); }

RetryDecision decide_retry(const RetryPolicy& policy, uint32_t attempt, const AttemptOutcome& o,
                           uint64_t random) {
  RetryDecision d;
  bool transient;
  if (o.curl_code != 0) {
    transient = curl_code_retryable(o.curl_code);
    d.error = o.curl_code == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT : EIO;
  } else if (o.http_status >= 200 && o.http_status < 300 && o.etag_mismatch) {
    transient = false;
    d.error = ESTALE;
  } else if (o.http_status >= 200 && o.http_status < 300) {
    if (!o.body_mismatch) {
      d.kind = RetryDecision::Kind::success;
      return d;
    }
    transient = true;
    d.error = EIO;
  } else {
    transient = status_retryable(o.http_status);
    d.error = errno_for_status(o.http_status);
  }
  if (!transient || attempt >= policy.max_retries) {
    d.kind = RetryDecision::Kind::fail;
    return d;
  }
  uint64_t ceiling = policy.cap_ms;
  if (attempt < 40 && policy.base_ms <= (policy.cap_ms >> attempt)) ceiling = policy.base_ms << attempt;
  d.kind = RetryDecision::Kind::retry;
  d.delay_ms = random % (ceiling + 1);
  if (o.retry_after_s) {
    uint64_t floor_ms = *o.retry_after_s > policy.cap_ms / 1000 ? policy.cap_ms : *o.retry_after_s * 1000;
    if (d.delay_ms < floor_ms) d.delay_ms = floor_ms;
  }
  return d;
}

std::optional<uint64_t> parse_retry_after(const char* value, unsigned long length) {
  std::string_view v(value, length);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r' || v.back() == '\n'))
    v.remove_suffix(1);
  auto n = parse_uint(v);
  if (!n) return std::nullopt;
  return *n;
}

}  // namespace mf
