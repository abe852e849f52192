// S3 request handling for modelfetch-s3emu (the requests served and the ETag rule are described in s3.hpp).
// Listing walks the directory on every request and sorts keys by bytes, S3's order for UTF-8 keys; the
// served directories hold a few dozen files, so the walk costs microseconds and needs no index to keep fresh.
#include "tools/s3emu/s3.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <filesystem>

namespace mf::s3emu {

namespace {

constexpr uint64_t kMaxKeys = 1000;  // S3's page size cap

uint64_t mix64(uint64_t x) {  // splitmix64 finaliser: a stable, well-spread hash step
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::string hex_of(std::string_view s) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(hex[c >> 4]);
    out.push_back(hex[c & 15]);
  }
  return out;
}

std::string unhex(std::string_view s) {
  std::string out;
  for (size_t i = 0; i + 1 < s.size(); i += 2) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data() + i, s.data() + i + 2, v, 16);
    if (ec != std::errc() || p != s.data() + i + 2) return {};
    out.push_back(static_cast<char>(v));
  }
  return out;
}

std::string iso8601(int64_t unix_seconds) { return format_utc(unix_seconds, "%Y-%m-%dT%H:%M:%S.000Z"); }

// A key is served only when every '/'-separated segment is a plain name: no "", "." or "..", so a request can
// never leave --dir.
bool safe_key(std::string_view key) {
  if (key.empty()) return false;
  size_t start = 0;
  for (;;) {
    size_t slash = key.find('/', start);
    std::string_view seg = key.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (seg.empty() || seg == "." || seg == "..") return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

bool etag_matches(const std::string& header, const std::string& etag) {
  if (header == "*") return true;
  std::string bare = etag.substr(1, etag.size() - 2);
  size_t pos = 0;
  while (pos <= header.size()) {  // a comma-separated list of quoted or bare tags
    size_t comma = header.find(',', pos);
    std::string_view item(header.data() + pos, (comma == std::string::npos ? header.size() : comma) - pos);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.substr(0, 2) == "W/") item.remove_prefix(2);
    if (item == etag || item == bare) return true;
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return false;
}

uint64_t parse_max_keys(const std::string& s) {
  uint64_t v = kMaxKeys;
  if (!s.empty()) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) v = kMaxKeys;
  }
  return std::min(v, kMaxKeys);
}

Reply xml_reply(int code, std::string body) {
  Reply r;
  r.code = code;
  r.headers.emplace_back("Content-Type", "application/xml");
  r.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + body;
  return r;
}

}  // namespace

void Stats::reset() {
  for (auto* a : {&requests, &get_object, &head_object, &list, &other, &status_2xx, &status_4xx, &status_5xx,
                  &bytes_served, &connections, &fault_reset, &fault_5xx, &fault_stall, &fault_short})
    a->store(0);
}

std::string Stats::json() const {
  auto f = [](const char* name, const std::atomic<uint64_t>& v, bool last = false) {
    return std::string("\"") + name + "\":" + std::to_string(v.load()) + (last ? "" : ",");
  };
  return "{" + f("requests", requests) + f("get_object", get_object) + f("head_object", head_object) +
         f("list", list) + f("other", other) + f("status_2xx", status_2xx) + f("status_4xx", status_4xx) +
         f("status_5xx", status_5xx) + f("bytes_served", bytes_served) + f("connections", connections) +
         f("active_connections", active_connections) + f("fault_reset", fault_reset) +
         f("fault_5xx", fault_5xx) + f("fault_stall", fault_stall) + f("fault_short", fault_short, true) + "}\n";
}

Reply error_reply(int code, const std::string& s3_code, const std::string& message, const std::string& resource) {
  return xml_reply(code, "<Error><Code>" + s3_code + "</Code><Message>" + xml_escape(message) +
                             "</Message><Resource>" + xml_escape(resource) +
                             "</Resource><RequestId>s3emu</RequestId></Error>\n");
}

std::string Bucket::etag_of(const std::string& key, uint64_t size, int64_t mtime_ns, uint64_t inode) {
  uint64_t gen;
  {
    std::lock_guard<std::mutex> lock(generation_mutex_);
    auto it = generation_.find(key);
    gen = it == generation_.end() ? 0 : it->second;
  }
  gen += global_generation_.load() << 32;
  uint64_t h1 = mix64(size ^ mix64(static_cast<uint64_t>(mtime_ns) ^ mix64(inode ^ mix64(gen))));
  uint64_t h2 = mix64(h1 ^ 0x5bd1e995ULL);
  // The "-N" suffix of a multipart upload (N parts of 8 MiB, the AWS CLI's part size): large model files
  // are uploaded that way, and clients (rclone) then know the ETag is not an MD5 of the content and do not
  // verify it against the bytes, which a hash of (size, mtime, inode) would fail.
  uint64_t parts = size == 0 ? 1 : (size + (8 << 20) - 1) / (8 << 20);
  char buf[64];
  snprintf(buf, sizeof buf, "\"%016llx%016llx-%llu\"", static_cast<unsigned long long>(h1),
           static_cast<unsigned long long>(h2), static_cast<unsigned long long>(parts));
  return buf;
}

std::vector<std::string> Bucket::all_keys() const {
  std::vector<std::string> keys;
  std::error_code ec;
  namespace fs = std::filesystem;
  for (auto it = fs::recursive_directory_iterator(dir_, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_regular_file(ec)) keys.push_back(fs::relative(it->path(), dir_, ec).generic_string());
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

Reply Bucket::object(const Request& r, bool head) {
  std::string key = r.path.substr(name_.size() + 2);
  std::string resource = "/" + name_ + "/" + key;
  if (!safe_key(key)) return error_reply(404, "NoSuchKey", "The specified key does not exist.", resource);
  int fd = ::open((dir_ + "/" + key).c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0) ::close(fd);
    return error_reply(404, "NoSuchKey", "The specified key does not exist.", resource);
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  std::string etag = etag_of(key, size, mtime_ns, st.st_ino);
  std::vector<std::pair<std::string, std::string>> common = {
      {"ETag", etag}, {"Last-Modified", http_date(st.st_mtim.tv_sec)}, {"Accept-Ranges", "bytes"}};
  auto fail = [&](Reply e) {
    ::close(fd);
    for (auto& h : common) e.headers.push_back(h);
    e.head_only = head;
    return e;
  };
  if (const std::string* im = r.header("if-match"); im && !etag_matches(*im, etag))
    return fail(error_reply(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                            resource));
  if (const std::string* inm = r.header("if-none-match"); inm && etag_matches(*inm, etag)) {
    Reply nm;
    nm.code = 304;
    return fail(nm);
  }
  RangeResult range;
  if (const std::string* rh = r.header("range")) range = parse_range(*rh, size);
  if (range.kind == RangeResult::unsatisfiable) {
    Reply e = error_reply(416, "InvalidRange", "The requested range is not satisfiable", resource);
    e.headers.emplace_back("Content-Range", "bytes */" + std::to_string(size));
    return fail(e);
  }
  Reply ok;
  ok.headers = common;
  ok.headers.emplace_back("Content-Type", "application/octet-stream");
  ok.file_fd = fd;
  ok.head_only = head;
  ok.object_get = !head;
  if (range.kind == RangeResult::partial) {
    ok.code = 206;
    ok.file_offset = range.first;
    ok.file_length = range.last - range.first + 1;
    ok.headers.emplace_back("Content-Range", "bytes " + std::to_string(range.first) + "-" +
                                                 std::to_string(range.last) + "/" + std::to_string(size));
  } else {
    ok.file_length = size;
  }
  return ok;
}

Reply Bucket::list(const Request& r) {
  bool v2 = r.query_or("list-type") == "2";
  std::string prefix = r.query_or("prefix"), delimiter = r.query_or("delimiter");
  uint64_t max_keys = parse_max_keys(r.query_or("max-keys"));
  std::string after = v2 ? (r.has_query("continuation-token") ? unhex(r.query_or("continuation-token"))
                                                               : r.query_or("start-after"))
                         : r.query_or("marker");
  std::vector<std::string> keys = all_keys();
  std::string contents, prefixes, last_prefix, last_emitted;
  uint64_t count = 0;
  bool truncated = false;
  for (auto it = std::upper_bound(keys.begin(), keys.end(), after); it != keys.end(); ++it) {
    const std::string& k = *it;
    if (k.compare(0, prefix.size(), prefix) != 0) continue;
    size_t d = delimiter.empty() ? std::string::npos : k.find(delimiter, prefix.size());
    if (d != std::string::npos) {
      std::string cp = k.substr(0, d + delimiter.size());
      if (cp == last_prefix || (!after.empty() && cp <= after)) continue;  // already returned
      if (count == max_keys) { truncated = true; break; }
      prefixes += "<CommonPrefixes><Prefix>" + xml_escape(cp) + "</Prefix></CommonPrefixes>";
      last_prefix = last_emitted = cp;
    } else {
      if (count == max_keys) { truncated = true; break; }
      struct stat st {};
      if (::stat((dir_ + "/" + k).c_str(), &st) != 0) continue;  // removed since the walk
      int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
      std::string etag = etag_of(k, static_cast<uint64_t>(st.st_size), mtime_ns, st.st_ino);
      contents += "<Contents><Key>" + xml_escape(k) + "</Key><LastModified>" + iso8601(st.st_mtim.tv_sec) +
                  "</LastModified><ETag>" + xml_escape(etag) + "</ETag><Size>" + std::to_string(st.st_size) +
                  "</Size><StorageClass>STANDARD</StorageClass></Contents>";
      last_emitted = k;
    }
    ++count;
  }
  std::string x = "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>" + xml_escape(name_) +
                  "</Name><Prefix>" + xml_escape(prefix) + "</Prefix>";
  if (!delimiter.empty()) x += "<Delimiter>" + xml_escape(delimiter) + "</Delimiter>";
  x += "<MaxKeys>" + std::to_string(max_keys) + "</MaxKeys>";
  x += std::string("<IsTruncated>") + (truncated ? "true" : "false") + "</IsTruncated>";
  if (v2) {
    x += "<KeyCount>" + std::to_string(count) + "</KeyCount>";
    if (r.has_query("continuation-token"))
      x += "<ContinuationToken>" + xml_escape(r.query_or("continuation-token")) + "</ContinuationToken>";
    if (r.has_query("start-after")) x += "<StartAfter>" + xml_escape(r.query_or("start-after")) + "</StartAfter>";
    if (truncated) x += "<NextContinuationToken>" + hex_of(last_emitted) + "</NextContinuationToken>";
  } else {
    x += "<Marker>" + xml_escape(after) + "</Marker>";
    if (truncated) x += "<NextMarker>" + xml_escape(last_emitted) + "</NextMarker>";
  }
  return xml_reply(200, x + contents + prefixes + "</ListBucketResult>\n");
}

Reply Bucket::control(const Request& r, Stats& stats) {
  Reply out;
  out.s3_request = false;
  out.headers.emplace_back("Content-Type", "application/json");
  if (r.path == "/_emu/stats" && r.method == "GET") {
    out.body = stats.json();
  } else if (r.path == "/_emu/reset-stats" && r.method == "POST") {
    stats.reset();
    out.body = "{}\n";
  } else if (r.path == "/_emu/expire-credentials" && r.method == "POST") {
    credentials_expired_.store(true);
    out.body = "{}\n";
  } else if (r.path == "/_emu/replace" && r.method == "POST") {
    std::string key = r.query_or("key");
    struct stat st {};
    if (!safe_key(key) || ::stat((dir_ + "/" + key).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      out.code = 404;
      out.body = "{\"error\":\"no such key\"}\n";
      return out;
    }
    {
      std::lock_guard<std::mutex> lock(generation_mutex_);
      ++generation_[key];
    }
    int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    std::string etag = etag_of(key, static_cast<uint64_t>(st.st_size), mtime_ns, st.st_ino);
    out.body = "{\"etag\":\"\\\"" + etag.substr(1, etag.size() - 2) + "\\\"\"}\n";  // JSON-escaped quotes
  } else {
    out.code = 404;
    out.body = "{\"error\":\"unknown control request\"}\n";
  }
  return out;
}

Reply Bucket::handle(const Request& r, Stats& stats) {
  Reply rep = route(r, stats);
  if (r.method == "HEAD") rep.head_only = true;  // a HEAD answer never carries a body, errors included
  return rep;
}

Reply Bucket::route(const Request& r, Stats& stats) {
  stats.requests.fetch_add(1);
  if (r.path.rfind("/_emu/", 0) == 0) {
    stats.other.fetch_add(1);
    return control(r, stats);
  }
  if (credentials_expired_.load()) {  // what S3 answers a request signed with an expired session token
    stats.other.fetch_add(1);
    return error_reply(403, "ExpiredToken", "The provided token has expired.", r.path);
  }
  bool get = r.method == "GET", head = r.method == "HEAD";
  if (r.path == "/") {
    stats.other.fetch_add(1);
    if (!get) return error_reply(405, "MethodNotAllowed", "Only GET is served here", "/");
    return xml_reply(200, "<ListAllMyBucketsResult><Owner><ID>s3emu</ID></Owner><Buckets><Bucket><Name>" +
                              xml_escape(name_) + "</Name><CreationDate>2024-01-01T00:00:00.000Z</CreationDate>"
                              "</Bucket></Buckets></ListAllMyBucketsResult>\n");
  }
  std::string_view p(r.path);
  p.remove_prefix(1);
  size_t slash = p.find('/');
  std::string_view bucket = p.substr(0, slash);
  bool bucket_level = slash == std::string_view::npos || slash + 1 == p.size();
  if (bucket != name_) {
    stats.other.fetch_add(1);
    return error_reply(404, "NoSuchBucket", "The specified bucket does not exist", "/" + std::string(bucket));
  }
  if (!get && !head) {
    stats.other.fetch_add(1);
    return error_reply(501, "NotImplemented", "The emulator is read-only: only GET and HEAD are served", r.path);
  }
  if (!bucket_level) {
    (head ? stats.head_object : stats.get_object).fetch_add(1);
    return object(r, head);
  }
  if (head) {
    stats.other.fetch_add(1);
    Reply ok;
    ok.head_only = true;
    return ok;
  }
  if (r.has_query("location")) {
    stats.other.fetch_add(1);
    return xml_reply(200, "<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>\n");
  }
  stats.list.fetch_add(1);
  return list(r);
}

}  // namespace mf::s3emu
