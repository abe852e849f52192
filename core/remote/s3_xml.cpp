#include "core/remote/s3_xml.hpp"

#include <pugixml.hpp>

#include "core/util/env.hpp"

namespace mf {

namespace {

bool load(pugi::xml_document* doc, std::string_view xml) {
  // parse_default minus nothing: entity decoding matters for keys with '&'. No DOCTYPE/external entities:
  // pugixml never fetches them.
  return doc->load_buffer(xml.data(), xml.size(), pugi::parse_default, pugi::encoding_utf8);
}

// One line, at most 200 characters: server text goes into our one-line error messages.
std::string one_line(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (out.size() >= 200) break;
    out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  }
  return out;
}

}  // namespace

Result<ListPage> parse_list_page(std::string_view xml) {
  pugi::xml_document doc;
  if (!load(&doc, xml)) return make_error(EIO, "ListObjectsV2: malformed XML");
  pugi::xml_node root = doc.child("ListBucketResult");
  if (!root) return make_error(EIO, "ListObjectsV2: no ListBucketResult in the response");
  ListPage page;
  for (pugi::xml_node c : root.children("Contents")) {
    ObjectInfo info;
    info.key = c.child_value("Key");
    auto size = parse_uint(c.child_value("Size"));
    if (info.key.empty() || !size)
      return make_error(EIO, "ListObjectsV2: an entry without a key or with a bad size");
    info.size = *size;
    info.etag = c.child_value("ETag");
    info.last_modified = c.child_value("LastModified");  // ISO 8601 here, an HTTP date from HEAD
    page.entries.objects.push_back(std::move(info));
  }
  for (pugi::xml_node p : root.children("CommonPrefixes")) {
    std::string prefix = p.child_value("Prefix");
    if (!prefix.empty()) page.entries.common_prefixes.push_back(std::move(prefix));
  }
  std::string_view truncated = root.child_value("IsTruncated");
  page.truncated = truncated == "true";
  page.next_token = root.child_value("NextContinuationToken");
  if (page.truncated && page.next_token.empty())
    return make_error(EIO, "ListObjectsV2: truncated page without NextContinuationToken");
  return page;
}

S3ErrorBody parse_error_body(std::string_view xml) {
  S3ErrorBody out;
  pugi::xml_document doc;
  if (xml.empty() || !load(&doc, xml)) return out;
  pugi::xml_node err = doc.child("Error");
  if (!err) return out;
  out.code = one_line(err.child_value("Code"));
  out.message = one_line(err.child_value("Message"));
  out.region = one_line(err.child_value("Region"));
  return out;
}

}  // namespace mf
