// Request construction, pure: the URL of an object or a ListObjectsV2 page for a remote and config, and the
// extra headers. The client hands these to curl; SigV4 itself is curl's (CURLOPT_AWS_SIGV4), never ours.
//
// S3 addressing: path style "ENDPOINT/BUCKET/KEY" or virtual-hosted "scheme://BUCKET.HOST/KEY". Keys are
// URI-encoded the way SigV4 canonicalises them (RFC 3986 unreserved characters kept, '/' kept in paths), so
// the path curl signs is the path S3 recomputes. Query parameters are encoded and emitted in sorted order
// because curl 7.88 signs the query string as given rather than canonicalising it.
// s3rver quirk: a bucket listing must be "/BUCKET?list-type=2" — "/BUCKET/?..." answers 403.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/remote/config.hpp"
#include "core/remote/url.hpp"

namespace mf {

// RFC 3986 percent-encoding of everything but A-Z a-z 0-9 - . _ ~ (and '/' when keep_slash).
std::string uri_encode(std::string_view s, bool keep_slash);

// Full URL of `key`: an s3 key (raw, encoded here) or, for http(s), a path below the remote's path (used as
// given: it is already URL text); the presigned query, if any, is appended.
// `region`, when not empty, replaces config.region (a bucket's region learned from a redirect).
std::string object_url(const RemoteUrl& remote, const RemoteConfig& config, std::string_view key,
                       std::string_view region = {});

// URL of one ListObjectsV2 page (s3 only).
std::string list_url(const RemoteUrl& remote, const RemoteConfig& config, std::string_view prefix, bool delimited,
                     std::string_view continuation_token, std::string_view region = {});

// Extra request headers ("Name: value"). S3: x-amz-content-sha256: UNSIGNED-PAYLOAD on every request (S3
// requires the header with SigV4, s3rver on every request, and curl 7.88 does not add it), and
// x-amz-security-token with session credentials. Both: If-Match when `if_match` is non-empty.
std::vector<std::string> request_headers(const RemoteUrl& remote, const RemoteConfig& config,
                                         std::string_view if_match);
// The same with the credentials to sign with given (the chain's current ones; nullptr: unsigned).
std::vector<std::string> request_headers(const RemoteUrl& remote, const Credentials* credentials,
                                         std::string_view if_match);

// The CURLOPT_AWS_SIGV4 parameter, "aws:amz:REGION:s3"; empty when requests go unsigned (no credentials, or
// an http(s) remote).
std::string sigv4_param(const RemoteUrl& remote, const RemoteConfig& config);
std::string sigv4_param(const RemoteUrl& remote, std::string_view region, const Credentials* credentials);

}  // namespace mf
