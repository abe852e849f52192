// The S3 side of modelfetch-s3emu: maps path-style requests on one bucket to files under --dir and decides the
// answer (status, headers, a small body or a file range to send). Sending, latency, pacing and the cuts that
// faults make are the server loop's job (server.cpp); this file only decides.
//
// Requests served:
//   GET|HEAD /BUCKET/KEY          object (Range, If-Match → 412, If-None-Match → 304), 404 NoSuchKey
//   GET /BUCKET?list-type=2&...   ListObjectsV2: prefix, delimiter (CommonPrefixes), max-keys (default and
//                                 cap 1000), continuation-token (opaque: hex of the last key or prefix
//                                 returned), start-after, KeyCount, IsTruncated, NextContinuationToken
//   GET /BUCKET?...               ListObjectsV1 (marker, NextMarker) — s3fs lists with V1
//   GET /BUCKET?location          GetBucketLocation; HEAD /BUCKET → 200
//   GET /_emu/stats               counters as JSON; POST /_emu/replace?key=K bumps K's ETag;
//   POST /_emu/reset-stats        zeroes the counters
// Anything else (PUT, DELETE, another bucket) → an S3 error. Authorization headers are accepted unverified,
// signed or not (s3rver is the verifying server in the tests).
//
// ETag: a 128-bit mix of (size, mtime in ns, inode, generation) as 32 hex digits plus a multipart "-N"
// suffix, in quotes (S3's form for multipart uploads: rclone verifies a plain 32-hex ETag as the content's
// MD5); stable across restarts for an unchanged file, and changes when the file is rewritten or when its generation is bumped (POST /_emu/replace, or SIGUSR1 for every object).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "tools/s3emu/http.hpp"
#include "tools/s3emu/pacing.hpp"

namespace mf::s3emu {

struct Stats {
  std::atomic<uint64_t> requests{0}, get_object{0}, head_object{0}, list{0}, other{0};
  std::atomic<uint64_t> status_2xx{0}, status_4xx{0}, status_5xx{0};
  std::atomic<uint64_t> bytes_served{0};  // object body bytes written to sockets
  std::atomic<uint64_t> connections{0}, active_connections{0};
  std::atomic<uint64_t> fault_reset{0}, fault_5xx{0}, fault_stall{0}, fault_short{0};
  void reset();
  std::string json() const;
};

// What to answer. `file_fd` >= 0: the body is file bytes [file_offset, file_offset + file_length) (the reply
// owns the fd); otherwise `body`. `object_get`: a GET of an object body, eligible for latency and faults.
struct Reply {
  int code = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  int file_fd = -1;
  uint64_t file_offset = 0;
  uint64_t file_length = 0;
  bool head_only = false;    // HEAD: headers with the GET's Content-Length, no body
  bool s3_request = true;    // false for /_emu/*: no latency
  bool object_get = false;
  uint64_t content_length() const { return file_fd >= 0 ? file_length : body.size(); }
};

class Bucket {
 public:
  Bucket(std::string dir, std::string name) : dir_(std::move(dir)), name_(std::move(name)) {}
  Reply handle(const Request& r, Stats& stats);
  void bump_all() { global_generation_.fetch_add(1); }  // async-signal-safe (lock-free atomic)

 private:
  Reply route(const Request& r, Stats& stats);
  Reply object(const Request& r, bool head);
  Reply list(const Request& r);
  Reply control(const Request& r, Stats& stats);
  std::string etag_of(const std::string& key, uint64_t size, int64_t mtime_ns, uint64_t inode);
  std::vector<std::string> all_keys() const;

  std::string dir_;
  std::string name_;
  std::mutex generation_mutex_;
  std::map<std::string, uint64_t> generation_;
  std::atomic<uint64_t> global_generation_{0};
  std::atomic<bool> credentials_expired_{false};  // POST /_emu/expire-credentials: every S3 request -> 403
};

Reply error_reply(int code, const std::string& s3_code, const std::string& message, const std::string& resource);

}  // namespace mf::s3emu
