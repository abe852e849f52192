// One HTTP exchange of the client (a HEAD, a ranged GET or a ListObjectsV2 page) and its curl easy handle.
// Owned by the client's I/O thread from submission to completion; nothing here locks.
//
// A ranged GET is written straight into the caller's buffer by the write callback, bounds-checked: bytes
// beyond the requested length abort the transfer (a server bug or a wrong range, retried), and a 2xx is only
// success when exactly `length` bytes arrived under a Content-Range equal to the request. A 200 (the server
// ignored Range) is accepted only when it is the whole request (offset 0, Content-Length == length).
// Error bodies are kept up to 64 KiB to read S3's <Code>; list pages up to 16 MiB (a 1000-key page of long
// keys is well under 1 MiB).
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/remote/config.hpp"
#include "core/remote/retry.hpp"
#include "core/remote/url.hpp"
#include "core/util/result.hpp"

namespace mf {

using Clock = std::chrono::steady_clock;

struct Transfer {
  enum class Kind { head, get, list };
  Kind kind = Kind::get;
  std::string where;  // "s3://bucket/key" or the http URL without query: what messages show
  std::string url;    // what curl requests (may carry a presigned query: never logged)
  std::string if_match;
  uint64_t offset = 0;
  uint64_t length = 0;
  std::byte* dest = nullptr;
  std::optional<Error> preset_error;  // a request invalid on arrival: completed at once with this
  std::function<void(Transfer&, Result<void>)> on_done;
  std::function<std::string(std::string_view region)> url_for;  // s3: the URL again for another region
  std::string region;            // signing region of the current attempt
  bool region_redirected = false;  // the one move to the bucket's real region is spent

  uint32_t attempt = 0;
  uint64_t cred_generation = 0;  // of the credentials the current attempt is signed with
  uint64_t cred_wait_mark = 0;   // CredentialManager::attempts() when it started waiting for a refresh
  bool cred_retried = false;     // the one retry after a refusal for expired credentials is spent
  Clock::time_point deadline = Clock::time_point::max();
  Clock::time_point due;  // when a delayed retry may start

  // Per attempt (reset by begin_attempt).
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  long status = 0;
  uint64_t received = 0;
  bool overflow = false;       // more body than requested
  bool range_ignored = false;  // a 200 to a ranged GET that is not the whole request
  std::string body;            // list page, or the error body
  std::string etag, last_modified, content_range, bucket_region;  // bucket_region: x-amz-bucket-region
  std::optional<uint64_t> content_length, retry_after_s;

  ~Transfer();
  // Creates and configures the easy handle for the next attempt, signed with `creds` (nullptr: unsigned).
  // False if curl could not allocate.
  bool begin_attempt(const RemoteUrl& remote, const RemoteConfig& config, const Credentials* creds);
  // The S3 error code of the body (an error answer), e.g. "ExpiredToken"; "" if none.
  std::string error_code() const;
  void end_attempt();  // frees the easy handle and header list (after curl_multi_remove_handle)
  // What happened in the attempt that just finished with `code`, for the retry policy.
  AttemptOutcome outcome(CURLcode code) const;
  // One-line message for a failure that is final; never contains the URL's query or any header.
  std::string failure_message(const AttemptOutcome& o, int error) const;
};

}  // namespace mf
