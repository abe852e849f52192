// S3 XML bodies, parsed with pugixml: one ListObjectsV2 page, and the <Error> body of a failed request.
// Only the fields modelfetch uses are read; unknown elements are ignored (S3 adds fields over time).
#pragma once

#include <string>
#include <string_view>

#include "core/remote/store.hpp"
#include "core/util/result.hpp"

namespace mf {

struct ListPage {
  Listing entries;
  bool truncated = false;
  std::string next_token;  // NextContinuationToken, when truncated
};

// Parses a ListBucketResult. EIO with a message on malformed XML, a missing root, a <Size> that is not a
// number, or IsTruncated=true without a NextContinuationToken (which would loop forever).
Result<ListPage> parse_list_page(std::string_view xml);

struct S3ErrorBody {
  std::string code;     // e.g. "NoSuchKey", "SignatureDoesNotMatch", "SlowDown"
  std::string message;  // S3's human text
  std::string region;   // <Region> (AuthorizationHeaderMalformed, PermanentRedirect): the bucket's region
};
// Parses <Error><Code/><Message/></Error>. Returns empty fields when the body is not such a document
// (HEAD responses have no body; proxies send HTML).
S3ErrorBody parse_error_body(std::string_view xml);

}  // namespace mf
