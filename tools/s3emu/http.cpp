// HTTP/1.1 request parsing and response heads for modelfetch-s3emu (see http.hpp). Reads go straight to a
// blocking socket with a receive timeout set by the server loop; 64 KiB bounds a request head (S3's own limit
// is 8 KiB of headers, SigV4 clients send ~1 KiB).
#include "tools/s3emu/http.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <ctime>

namespace mf::s3emu {

namespace {

constexpr size_t kMaxHead = 64 * 1024;
constexpr size_t kMaxBody = 1 << 20;  // a control POST or an unexpected PUT: read and dropped

std::string lower(std::string_view s) {
  std::string r(s);
  for (auto& c : r) c = static_cast<char>((c >= 'A' && c <= 'Z') ? c + 32 : c);
  return r;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool parse_u64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

void parse_query(std::string_view q, std::map<std::string, std::string>* out) {
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view item = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    std::string name = percent_decode(item.substr(0, eq), true);
    std::string value = eq == std::string_view::npos ? "" : percent_decode(item.substr(eq + 1), true);
    (*out)[name] = value;
  }
}

bool parse_head(std::string_view head, Request* r) {
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  size_t sp1 = line.find(' ');
  size_t sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return false;
  r->method = std::string(line.substr(0, sp1));
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (target.empty() || target[0] != '/' || version.substr(0, 5) != "HTTP/") return false;
  size_t qm = target.find('?');
  r->path = percent_decode(target.substr(0, qm), false);
  if (qm != std::string_view::npos) parse_query(target.substr(qm + 1), &r->query);
  r->keep_alive = version != "HTTP/1.0";
  std::string_view rest = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
  while (!rest.empty()) {
    size_t e = rest.find("\r\n");
    std::string_view h = rest.substr(0, e);
    rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 2);
    if (h.empty()) continue;
    size_t colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    r->headers[lower(h.substr(0, colon))] = std::string(trim(h.substr(colon + 1)));
  }
  if (const std::string* c = r->header("connection")) {
    std::string v = lower(*c);
    if (v == "close") r->keep_alive = false;
    if (v == "keep-alive") r->keep_alive = true;
  }
  return true;
}

// Reads more bytes into buf; false on EOF, error or timeout.
bool fill(int fd, std::string& buf) {
  char tmp[16384];
  for (;;) {
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n > 0) {
      buf.append(tmp, static_cast<size_t>(n));
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

}  // namespace

const std::string* Request::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? nullptr : &it->second;
}

std::string Request::query_or(const std::string& name, std::string fallback) const {
  auto it = query.find(name);
  return it == query.end() ? fallback : it->second;
}

std::optional<Request> read_request(int fd, std::string& buf, bool* bad) {
  *bad = false;
  size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (buf.size() > kMaxHead) {
      *bad = true;
      return std::nullopt;
    }
    if (!fill(fd, buf)) return std::nullopt;
  }
  Request r;
  if (!parse_head(std::string_view(buf).substr(0, end), &r)) {
    *bad = true;
    return std::nullopt;
  }
  buf.erase(0, end + 4);
  uint64_t body = 0;
  if (const std::string* cl = r.header("content-length")) {
    if (!parse_u64(*cl, &body) || body > kMaxBody) {
      *bad = true;
      return std::nullopt;
    }
  }
  if (r.header("transfer-encoding")) {  // chunked uploads are not served: refuse rather than misparse
    *bad = true;
    return std::nullopt;
  }
  while (buf.size() < body)
    if (!fill(fd, buf)) return std::nullopt;
  buf.erase(0, body);
  return r;
}

std::string percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

std::string percent_encode(std::string_view s, bool keep_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                c == '_' || c == '.' || c == '~' || (keep_slash && c == '/');
    if (keep) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

RangeResult parse_range(std::string_view header, uint64_t size) {
  RangeResult whole;
  header = trim(header);
  if (header.substr(0, 6) != "bytes=") return whole;
  std::string_view spec = trim(header.substr(6));
  if (spec.find(',') != std::string_view::npos) return whole;
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return whole;
  std::string_view a = trim(spec.substr(0, dash)), b = trim(spec.substr(dash + 1));
  RangeResult r{RangeResult::partial, 0, 0};
  uint64_t first = 0, last = 0;
  if (a.empty()) {  // suffix: the last n bytes
    uint64_t n = 0;
    if (!parse_u64(b, &n)) return whole;
    if (n == 0 || size == 0) return {RangeResult::unsatisfiable, 0, 0};
    r.first = n >= size ? 0 : size - n;
    r.last = size - 1;
    return r;
  }
  if (!parse_u64(a, &first)) return whole;
  if (b.empty()) {
    last = UINT64_MAX;
  } else if (!parse_u64(b, &last) || last < first) {
    return whole;
  }
  if (first >= size) return {RangeResult::unsatisfiable, 0, 0};
  r.first = first;
  r.last = last >= size ? size - 1 : last;
  return r;
}

const char* reason_phrase(int code) {
  switch (code) {
    case 200: return "OK";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 412: return "Precondition Failed";
    case 416: return "Range Not Satisfiable";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

std::string format_utc(int64_t unix_seconds, const char* format) {
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof buf, format, &tm);
  return buf;
}

std::string http_date(int64_t unix_seconds) { return format_utc(unix_seconds, "%a, %d %b %Y %H:%M:%S GMT"); }

std::string response_head(int code, const std::vector<std::pair<std::string, std::string>>& headers,
                          uint64_t content_length, bool keep_alive) {
  std::string h = "HTTP/1.1 " + std::to_string(code) + " " + reason_phrase(code) + "\r\n";
  h += "Server: modelfetch-s3emu\r\n";
  h += "Date: " + http_date(::time(nullptr)) + "\r\n";
  h += "x-amz-request-id: s3emu\r\n";
  for (const auto& [k, v] : headers) h += k + ": " + v + "\r\n";
  h += "Content-Length: " + std::to_string(content_length) + "\r\n";
  h += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  h += "\r\n";
  return h;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace mf::s3emu
