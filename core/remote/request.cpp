#include "core/remote/request.hpp"

namespace mf {

namespace {

// "scheme://host[:port]" and the endpoint's own path (e.g. "/s3"), from the config or AWS's default host.
void endpoint_parts(const RemoteConfig& c, std::string_view region, std::string* scheme, std::string* host,
                    std::string* base_path) {
  if (c.endpoint.empty()) {
    *scheme = "https://";
    *host = "s3." + std::string(region.empty() ? std::string_view(c.region) : region) + ".amazonaws.com";
    base_path->clear();
    return;
  }
  size_t sep = c.endpoint.find("://") + 3;
  *scheme = c.endpoint.substr(0, sep);
  size_t slash = c.endpoint.find('/', sep);
  *host = c.endpoint.substr(sep, slash == std::string::npos ? std::string::npos : slash - sep);
  *base_path = slash == std::string::npos ? std::string() : c.endpoint.substr(slash);
}

// The bucket's URL with no trailing '/': "http://host:port/bucket" or "https://bucket.host".
std::string bucket_url(const RemoteUrl& r, const RemoteConfig& c, std::string_view region,
                       bool* path_style_out = nullptr) {
  std::string scheme, host, base;
  endpoint_parts(c, region, &scheme, &host, &base);
  // Virtual-hosted style cannot carry a bucket with dots over TLS (the wildcard certificate covers one label).
  bool path_style = c.addressing == Addressing::path || (scheme == "https://" && r.bucket.find('.') != std::string::npos);
  if (path_style_out) *path_style_out = path_style;
  if (path_style) return scheme + host + base + "/" + uri_encode(r.bucket, false);
  return scheme + r.bucket + "." + host + base;
}

}  // namespace

std::string uri_encode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3 / 2);
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                      c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
    if (unreserved) {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string object_url(const RemoteUrl& r, const RemoteConfig& c, std::string_view key, std::string_view region) {
  if (r.is_s3()) return bucket_url(r, c, region) + "/" + uri_encode(key, true);
  std::string url = r.scheme == Scheme::https ? "https://" : "http://";
  url += r.authority;
  url += '/';
  url += r.path;
  if (!r.path.empty() && r.path.back() != '/' && !key.empty()) url += '/';
  url += key;
  if (!r.query.empty()) {
    url += '?';
    url += r.query;
  }
  return url;
}

std::string list_url(const RemoteUrl& r, const RemoteConfig& c, std::string_view prefix, bool delimited,
                     std::string_view token, std::string_view region) {
  bool path_style = true;
  std::string url = bucket_url(r, c, region, &path_style);
  if (!path_style) url += '/';  // virtual-hosted: the bucket's root is "/"
  // Sorted by name: continuation-token < delimiter < list-type < prefix.
  char sep = '?';
  auto add = [&](std::string_view name, std::string_view value) {
    url += sep;
    url += name;
    url += '=';
    url += uri_encode(value, false);
    sep = '&';
  };
  if (!token.empty()) add("continuation-token", token);
  if (delimited) add("delimiter", "/");
  add("list-type", "2");
  if (!prefix.empty()) add("prefix", prefix);
  return url;
}

std::vector<std::string> request_headers(const RemoteUrl& r, const RemoteConfig& c, std::string_view if_match) {
  return request_headers(r, &c.credentials, if_match);
}

std::vector<std::string> request_headers(const RemoteUrl& r, const Credentials* creds, std::string_view if_match) {
  std::vector<std::string> h;
  if (r.is_s3()) {
    h.emplace_back("x-amz-content-sha256: UNSIGNED-PAYLOAD");
    if (creds != nullptr && creds->present() && !creds->session_token.empty())
      h.push_back("x-amz-security-token: " + creds->session_token);
  }
  if (!if_match.empty()) h.push_back("If-Match: " + std::string(if_match));
  return h;
}

std::string sigv4_param(const RemoteUrl& r, const RemoteConfig& c) {
  return sigv4_param(r, c.region, &c.credentials);
}

std::string sigv4_param(const RemoteUrl& r, std::string_view region, const Credentials* creds) {
  if (!r.is_s3() || creds == nullptr || !creds->present()) return {};
  return "aws:amz:" + std::string(region) + ":s3";
}

}  // namespace mf
