#include "core/remote/transfer.hpp"

#include <sys/socket.h>

#include <cstring>
#include <string_view>

#include "core/remote/range.hpp"
#include "core/remote/request.hpp"
#include "core/remote/s3_xml.hpp"
#include "core/util/env.hpp"
#include "core/util/own_fds.hpp"

namespace mf {

namespace {

constexpr size_t kErrorBodyCap = 64 << 10;
constexpr size_t kListBodyCap = 16 << 20;
// curl's receive buffer: the default 16 KiB means a write callback and a recv() per 16 KiB; 512 KiB (curl
// 7.88's maximum, CURL_MAX_READ_SIZE) cuts per-call overhead at GB/s rates.
constexpr long kBufferSize = 512 << 10;

bool header_is(std::string_view line, std::string_view name, std::string_view* value) {
  if (line.size() <= name.size() || line[name.size()] != ':') return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char a = line[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (a != name[i]) return false;
  }
  std::string_view v = line.substr(name.size() + 1);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.remove_suffix(1);
  *value = v;
  return true;
}

// curl's connections are the engine's own fds (core/util/own_fds.hpp): created at a high number, out of
// reach of the program's close/close_range/closefrom and dup2, and closed by us.
curl_socket_t open_socket(void*, curlsocktype, struct curl_sockaddr* a) {
  int fd = ::socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
  return fd < 0 ? CURL_SOCKET_BAD : own_fd(fd);
}
int close_socket(void*, curl_socket_t fd) { return close_own_fd(fd); }

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  std::string_view v;
  if (line.starts_with("HTTP/")) {  // a new response (after a redirect or a 100): forget the previous one
    size_t sp = line.find(' ');
    auto code = sp == std::string_view::npos ? Result<uint64_t>(make_error(EIO, ""))
                                             : parse_uint(line.substr(sp + 1, 3));
    t->status = code ? static_cast<long>(*code) : 0;
    t->etag.clear();
    t->last_modified.clear();
    t->content_range.clear();
    t->content_length.reset();
    t->retry_after_s.reset();
    t->bucket_region.clear();
  } else if (header_is(line, "x-amz-bucket-region", &v)) {
    t->bucket_region = std::string(v);
  } else if (header_is(line, "etag", &v)) {
    t->etag = std::string(v);
  } else if (header_is(line, "last-modified", &v)) {
    t->last_modified = std::string(v);
  } else if (header_is(line, "content-range", &v)) {
    t->content_range = std::string(v);
  } else if (header_is(line, "content-length", &v)) {
    auto len = parse_uint(v);
    if (len) t->content_length = *len;
  } else if (header_is(line, "retry-after", &v)) {
    t->retry_after_s = parse_retry_after(v.data(), v.size());
  }
  return size * n;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  bool success = t->status >= 200 && t->status < 300;
  if (t->kind == Transfer::Kind::get && success) {
    if (t->status == 200 && !(t->offset == 0 && t->content_length == t->length)) {
      t->range_ignored = true;
      return 0;  // aborts with CURLE_WRITE_ERROR
    }
    if (len > t->length - t->received) {
      t->overflow = true;
      return 0;
    }
    std::memcpy(t->dest + t->received, data, len);
    t->received += len;
    return len;
  }
  size_t cap = (t->kind == Transfer::Kind::list && success) ? kListBodyCap : kErrorBodyCap;
  if (t->body.size() + len > cap) {
    if (success) {
      t->overflow = true;
      return 0;
    }
    return len;  // an error body only needs its start
  }
  t->body.append(data, len);
  return len;
}

}  // namespace

Transfer::~Transfer() { end_attempt(); }

std::string Transfer::error_code() const { return parse_error_body(body).code; }

bool Transfer::begin_attempt(const RemoteUrl& remote, const RemoteConfig& config, const Credentials* creds) {
  end_attempt();
  status = 0;
  received = 0;
  overflow = range_ignored = false;
  body.clear();
  etag.clear();
  last_modified.clear();
  content_range.clear();
  bucket_region.clear();
  content_length.reset();
  retry_after_s.reset();
  easy = curl_easy_init();
  if (easy == nullptr) return false;
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_PRIVATE, this);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
  // HTTP/1.1: many keep-alive connections with large ranges; curl's HTTP/2 multiplexing is slower for this.
  curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, kBufferSize);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config.connect_timeout_ms));
  if (config.low_speed_time_s > 0) {
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, static_cast<long>(config.low_speed_limit));
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, static_cast<long>(config.low_speed_time_s));
  }
  if (deadline != Clock::time_point::max()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(left > 1 ? left : 1));
  }
  if (!config.ca_bundle.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, config.ca_bundle.c_str());
  // Verification is curl's default (peer 1, host 2); only MODELFETCH_INSECURE_TLS=1 turns it off.
  if (config.insecure_tls) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!remote.is_s3()) {  // mirrors redirect to CDNs; S3 signing would not survive a redirect
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 5L);
  }
  std::string sig = sigv4_param(remote, region.empty() ? std::string_view(config.region) : region, creds);
  if (!sig.empty()) {
    curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, sig.c_str());  // curl copies string options
    curl_easy_setopt(easy, CURLOPT_USERNAME, creds->access_key.c_str());
    curl_easy_setopt(easy, CURLOPT_PASSWORD, creds->secret_key.c_str());
  }
  for (const std::string& h : request_headers(remote, creds, if_match)) {
    curl_slist* next = curl_slist_append(headers, h.c_str());
    if (next == nullptr) return false;
    headers = next;
  }
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, this);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, this);
  if (kind == Kind::head) curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  if (kind == Kind::get) {
    auto range = http_range(offset, length);  // validated on submission
    if (range) curl_easy_setopt(easy, CURLOPT_RANGE, range->c_str());
  }
  return true;
}

void Transfer::end_attempt() {
  if (easy != nullptr) curl_easy_cleanup(easy);
  easy = nullptr;
  if (headers != nullptr) curl_slist_free_all(headers);
  headers = nullptr;
}

AttemptOutcome Transfer::outcome(CURLcode code) const {
  AttemptOutcome o;
  o.curl_code = static_cast<int>(code);
  o.http_status = status;
  o.retry_after_s = retry_after_s;
  if (code == CURLE_WRITE_ERROR && range_ignored) {  // a server without ranges: asking again will not help
    o.curl_code = CURLE_RANGE_ERROR;
    return o;
  }
  if (code == CURLE_WRITE_ERROR && overflow) {  // our callback refused extra bytes: a bad body, retried
    o.curl_code = 0;
    o.body_mismatch = true;
  }
  if (o.curl_code != 0 || status < 200 || status >= 300) return o;
  if (!if_match.empty() && !etag.empty()) {
    auto strong = [](std::string_view e) { return e.starts_with("W/") ? e.substr(2) : e; };
    o.etag_mismatch = strong(etag) != strong(if_match);
  }
  if (kind == Kind::get) {
    bool ok = received == length;
    if (ok && status == 206) {
      auto cr = parse_content_range(content_range);
      ok = cr && content_range_matches(*cr, offset, length);
    }
    o.body_mismatch = !ok;
  } else if (kind == Kind::head) {
    o.body_mismatch = !content_length.has_value();
  }
  return o;
}

std::string Transfer::failure_message(const AttemptOutcome& o, int error) const {
  std::string msg = kind == Kind::head ? "HEAD " : kind == Kind::list ? "LIST " : "GET ";
  msg += where;
  if (kind == Kind::get) msg += " [" + std::to_string(offset) + "+" + std::to_string(length) + "]";
  msg += ": ";
  if (range_ignored) {
    msg += "the server ignored the Range header (HTTP 200)";
  } else if (o.curl_code != 0) {
    msg += curl_easy_strerror(static_cast<CURLcode>(o.curl_code));  // static text: no URL, no header
  } else {
    msg += "HTTP " + std::to_string(o.http_status);
    S3ErrorBody e = parse_error_body(body);
    if (!e.code.empty()) msg += " " + e.code;
    if (e.code.empty() && (o.http_status == 401 || o.http_status == 403)) msg += " (access denied: check the credentials)";
    if (e.code.empty() && o.http_status == 404) msg += " (no such object)";
    if (o.body_mismatch) msg += " with a short body or a wrong Content-Range";
    if (o.etag_mismatch) msg += " with a different ETag";
    if (error == ESTALE) msg += " (the object changed: ETag no longer matches)";
    if (error == EINVAL && o.http_status == 416) msg += " (range past the end of the object)";
  }
  if (attempt > 0) msg += " after " + std::to_string(attempt + 1) + " attempts";
  return msg;
}

}  // namespace mf
