// Retry policy: a pure function from (attempt number, what happened, Retry-After, a random number) to
// "retry after D ms" or "fail with errno E". No clock, no curl handle: unit-testable.
//
// Retried (transient): curl connection errors, timeouts (including the low-speed abort), resets, empty
// replies; HTTP 408, 429, 5xx (503 SlowDown included); a body that is short or whose Content-Range is not
// the requested range. Not retried: a 2xx whose ETag differs from the If-Match value → ESTALE (some servers,
// s3rver among them, ignore If-Match; checking the response's ETag catches a replaced object anyway),
// 401/403 → EACCES, 404 → ENOENT, 412 → ESTALE (If-Match failed: the object
// was replaced), 416 → EINVAL (range past the end), other 4xx → EIO, TLS certificate problems → EIO.
//
// Delay: "full jitter" (AWS Architecture Blog, "Exponential Backoff and Jitter"): uniform in
// [0, min(cap, base·2^attempt)]. It spreads a burst of clients that failed together, which a fixed backoff
// would resynchronise. A Retry-After header (seconds) is a floor on the delay, capped at `cap`.
#pragma once

#include <cstdint>
#include <optional>

namespace mf {

struct RetryPolicy {
  uint32_t max_retries = 5;
  uint64_t base_ms = 200;
  uint64_t cap_ms = 20000;
};

struct AttemptOutcome {
  int curl_code = 0;                      // a CURLcode; 0 = the exchange completed
  long http_status = 0;                   // 0 when no response
  bool body_mismatch = false;             // short body or wrong Content-Range on a 2xx
  bool etag_mismatch = false;             // a 2xx whose ETag is not the If-Match one (server ignored If-Match)
  std::optional<uint64_t> retry_after_s;  // from a Retry-After header in seconds
};

struct RetryDecision {
  enum class Kind { success, retry, fail } kind = Kind::fail;
  uint64_t delay_ms = 0;  // for retry
  int error = 0;          // errno for fail (and what a retry would end with if out of attempts)
};

// Classifies one attempt. `attempt` counts from 0 (the first try); `random` is any uniformly distributed
// 64-bit number (the caller's PRNG). A retryable outcome fails with its errno once attempt >= max_retries.
RetryDecision decide_retry(const RetryPolicy& policy, uint32_t attempt, const AttemptOutcome& outcome,
                           uint64_t random);

// The errno a final HTTP status maps to (2xx → 0).
int errno_for_status(long http_status);
// Whether a curl error is transient (worth another attempt).
bool curl_code_retryable(int curl_code);
// Parses a Retry-After value in seconds ("120"); an HTTP-date or junk → nullopt (fall back to backoff).
std::optional<uint64_t> parse_retry_after(const char* value, unsigned long length);

}  // namespace mf
