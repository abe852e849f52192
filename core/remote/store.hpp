// ObjectStore: what the rest of core needs from a remote. The S3/HTTP client (client.hpp) implements it;
// tests implement it in memory. Keys are full object keys in the bucket (for http(s) remotes: the URL path
// below the remote's base, without a leading '/').
//
// Threading contract: read_async() may be called from any thread and never blocks on the network; the
// completion callback runs on the store's I/O thread and must not block or touch userfaultfd-registered
// memory (see docs/DESIGN.md: a fault there would deadlock the I/O thread). `dest` must stay valid until the
// callback ran. A request either fills exactly [offset, offset+length) of the object whose ETag is `etag`
// (when non-empty), or fails: never a short or mixed buffer reported as success.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/util/result.hpp"

namespace mf {

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
  std::string etag;           // as the server sent it, quotes included (If-Match wants it that way)
  std::string last_modified;  // HTTP date, as sent; empty when unknown
};

struct Listing {
  std::vector<ObjectInfo> objects;          // keys under the prefix (only the first level when delimited)
  std::vector<std::string> common_prefixes; // "dir/" entries when delimited, full keys ending in '/'
};

struct RangeRequest {
  std::string key;
  std::string etag;      // non-empty: the read is conditional (If-Match); a changed object fails with ESTALE
  uint64_t offset = 0;
  uint64_t length = 0;   // > 0
  std::byte* dest = nullptr;
};

using ReadCallback = std::function<void(Result<void>)>;

struct StoreStats {
  uint64_t get_requests = 0;   // range GETs sent, retries included
  uint64_t head_requests = 0;
  uint64_t list_requests = 0;
  uint64_t bytes_fetched = 0;  // body bytes received for range GETs, retries included
  uint64_t retries = 0;
  uint64_t errors = 0;         // requests that failed for good
  uint64_t credential_retries = 0;  // requests retried once after a refusal for expired credentials
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  virtual Result<ObjectInfo> stat(std::string_view key) = 0;
  // ListObjectsV2 with continuation. delimited=true lists one level ('/' delimiter).
  virtual Result<Listing> list(std::string_view prefix, bool delimited) = 0;
  virtual void read_async(RangeRequest request, ReadCallback done) = 0;
  virtual StoreStats stats() const = 0;

  // Blocking helpers over read_async.
  Result<void> read(RangeRequest request);
  // Issues all at once (the store bounds concurrency) and waits for all; one result per request, in order.
  std::vector<Result<void>> read_many(std::vector<RangeRequest> requests);
};

}  // namespace mf
