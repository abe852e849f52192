// Remote URLs: `s3://BUCKET/PREFIX` and `http(s)://HOST[:PORT]/PATH[?QUERY]`.
//
// An s3 remote names a bucket and a key prefix; the client turns keys into requests with the endpoint and
// addressing style from RemoteConfig. An http(s) remote names a base URL (a public bucket, a mirror, or a
// presigned URL): keys are URL paths below it, already percent-encoded, and only HEAD and ranged GET work.
// The query of an http(s) URL may be a presigned signature: it is kept apart and never printed.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "core/util/result.hpp"

namespace mf {

enum class Scheme { s3, http, https };

struct RemoteUrl {
  Scheme scheme = Scheme::s3;
  std::string bucket;     // s3 only
  std::string authority;  // http(s) only: "host" or "host:port" (user info is rejected)
  std::string path;       // no leading '/': the s3 key or prefix, or the http path (percent-encoded as given)
  std::string query;      // http(s) only, without '?'; may hold a signature: never logged

  bool is_s3() const { return scheme == Scheme::s3; }
  // The URL without its query: what messages may show.
  std::string display() const;
};

// Parses a remote URL. Errors (EINVAL) quote the input without its query and name the expected forms.
Result<RemoteUrl> parse_remote_url(std::string_view text);

// For a URL naming one object: the remote rooted at its folder and the key below it
// ("s3://b/d/f" → ("s3://b/", "d/f") since s3 keys are absolute; "http://h/d/f" → ("http://h/d/", "f")).
std::pair<RemoteUrl, std::string> split_object_url(const RemoteUrl& url);

}  // namespace mf
