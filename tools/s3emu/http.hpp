// HTTP/1.1 pieces of modelfetch-s3emu: reading one request head from a blocking socket, percent-decoding the
// target into a path and a query map, the Range header (RFC 9110 §14.1.2, as S3 applies it), and writing a
// response head. Only what S3 clients send is understood: no chunked request bodies (GET/HEAD carry none; a
// Content-Length body is read and dropped), no multi-range (S3 ignores it and answers 200, so do we).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mf::s3emu {

struct Request {
  std::string method;
  std::string path;                              // percent-decoded, starts with '/'
  std::map<std::string, std::string> query;      // decoded names and values ('+' is a space in values)
  std::map<std::string, std::string> headers;    // names lower-cased
  bool keep_alive = true;

  const std::string* header(const std::string& lower_name) const;
  bool has_query(const std::string& name) const { return query.count(name) != 0; }
  std::string query_or(const std::string& name, std::string fallback = "") const;
};

// Reads from `fd` into `buf` (kept between requests: keep-alive pipelines leave bytes there) until a whole
// head has arrived, parses it and consumes it (and its Content-Length body) from `buf`. nullopt: the peer
// closed, a read failed or timed out, or the head is malformed / larger than 64 KiB (then *bad is set so the
// caller can answer 400 before closing).
std::optional<Request> read_request(int fd, std::string& buf, bool* bad);

std::string percent_decode(std::string_view s, bool plus_is_space);
std::string percent_encode(std::string_view s, bool keep_slash);  // RFC 3986 unreserved kept

// Result of applying a Range header to an object of `size` bytes.
struct RangeResult {
  enum Kind { whole, partial, unsatisfiable } kind = whole;
  uint64_t first = 0;  // partial: inclusive byte range [first, last]
  uint64_t last = 0;
};
// `bytes=a-b` (b clamped to size-1), `bytes=a-`, `bytes=-n` (the last n bytes; n > size means the whole
// object, still as a 206). a >= size, n == 0, or any range of an empty object → unsatisfiable (416). A
// syntactically invalid header, a > b, another unit, or several ranges → whole (a server must ignore what
// it cannot parse).
RangeResult parse_range(std::string_view header, uint64_t size);

// "HTTP/1.1 <code> <reason>\r\n" + headers + "\r\n". Adds Content-Length, Server, Date, Connection.
std::string response_head(int code, const std::vector<std::pair<std::string, std::string>>& headers,
                          uint64_t content_length, bool keep_alive);
const char* reason_phrase(int code);
// unix_seconds as UTC through strftime's `format`.
std::string format_utc(int64_t unix_seconds, const char* format);
std::string http_date(int64_t unix_seconds);  // IMF-fixdate
std::string xml_escape(std::string_view s);

// Writes all of `data` (EINTR-safe). false when the peer is gone.
bool write_all(int fd, std::string_view data);

}  // namespace mf::s3emu
