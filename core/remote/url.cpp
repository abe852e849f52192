#include "core/remote/url.hpp"

namespace mf {

namespace {

constexpr std::string_view kExpected = "expected s3://BUCKET[/PREFIX] or http(s)://HOST[:PORT]/PATH";

Error bad_url(std::string_view shown, std::string_view why) {
  std::string msg = "bad remote URL '";
  msg += shown;
  msg += "': ";
  msg += why;
  msg += " (";
  msg += kExpected;
  msg += ")";
  return make_error(EINVAL, std::move(msg));
}

// S3 bucket names: 3-63 of [a-z0-9.-]; legacy buckets also have upper case and '_', so accept those too.
bool valid_bucket(std::string_view b) {
  if (b.size() < 3 || b.size() > 63) return false;
  for (char c : b) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

bool valid_authority(std::string_view a) {
  if (a.empty() || a.find('@') != std::string_view::npos) return false;
  size_t colon = a.rfind(':');
  std::string_view host = a, port;
  if (colon != std::string_view::npos && a.front() != '[') {
    host = a.substr(0, colon);
    port = a.substr(colon + 1);
  } else if (a.front() == '[') {  // IPv6 literal "[::1]:8080"
    size_t close = a.find(']');
    if (close == std::string_view::npos) return false;
    host = a.substr(0, close + 1);
    std::string_view rest = a.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
    }
  }
  if (host.empty()) return false;
  if (colon != std::string_view::npos || !port.empty()) {
    if (port.empty() || port.size() > 5) return false;
    unsigned n = 0;
    for (char c : port) {
      if (c < '0' || c > '9') return false;
      n = n * 10 + static_cast<unsigned>(c - '0');
    }
    if (n == 0 || n > 65535) return false;
  }
  for (char c : host)
    if (c <= ' ' || c == '/' || c == '?' || c == '#' || c == 0x7f) return false;
  return true;
}

}  // namespace

std::string RemoteUrl::display() const {
  if (is_s3()) return "s3://" + bucket + "/" + path;
  return std::string(scheme == Scheme::https ? "https://" : "http://") + authority + "/" + path;
}

Result<RemoteUrl> parse_remote_url(std::string_view text) {
  std::string_view shown = text.substr(0, text.find('?'));  // a query may be a presigned signature
  RemoteUrl url;
  std::string_view rest;
  if (text.starts_with("s3://")) {
    url.scheme = Scheme::s3;
    rest = text.substr(5);
  } else if (text.starts_with("http://")) {
    url.scheme = Scheme::http;
    rest = text.substr(7);
  } else if (text.starts_with("https://")) {
    url.scheme = Scheme::https;
    rest = text.substr(8);
  } else {
    return bad_url(shown, "unknown scheme");
  }
  for (char c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return bad_url(shown, "control character");
  if (text.find('#') != std::string_view::npos) return bad_url(shown, "fragment not allowed");
  size_t slash = rest.find('/');
  std::string_view host = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  if (url.is_s3()) {
    if (path.find('?') != std::string_view::npos) return bad_url(shown, "query not allowed in s3 URLs");
    if (!valid_bucket(host)) return bad_url(shown, "bad bucket name");
    url.bucket = std::string(host);
    url.path = std::string(path);
    return url;
  }
  // The query starts at the first '?', also when that comes before the first '/' ("http://host?a=/b?c":
  // no path, query "a=/b?c"; splitting at the '/' first put part of the query into the displayed path).
  if (size_t q = rest.find('?'); q != std::string_view::npos) {
    url.query = std::string(rest.substr(q + 1));
    rest = rest.substr(0, q);
    slash = rest.find('/');
    host = rest.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  }
  if (!valid_authority(host)) return bad_url(shown, "bad host");
  url.authority = std::string(host);
  url.path = std::string(path);
  return url;
}

std::pair<RemoteUrl, std::string> split_object_url(const RemoteUrl& url) {
  RemoteUrl root = url;
  if (url.is_s3()) {
    root.path.clear();
    return {root, url.path};
  }
  size_t slash = url.path.rfind('/');
  std::string key = slash == std::string::npos ? url.path : url.path.substr(slash + 1);
  root.path = slash == std::string::npos ? std::string() : url.path.substr(0, slash + 1);
  return {root, key};
}

}  // namespace mf
