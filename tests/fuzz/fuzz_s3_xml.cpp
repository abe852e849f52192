// libFuzzer target for core/remote/s3_xml: parse_list_page and parse_error_body on arbitrary bytes (the body
// of a ListObjectsV2 response or an S3 error comes from the network). Invariants: no crash, no sanitizer
// report; a page that says IsTruncated always carries a continuation token (else the lister loops forever);
// every listed entry has a non-empty key. Build and run: scripts/fuzz [seconds].
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/remote/s3_xml.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view xml(reinterpret_cast<const char*>(data), size);
  auto page = mf::parse_list_page(xml);
  if (page) {
    if (page->truncated && page->next_token.empty()) std::abort();
    for (const auto& o : page->entries.objects)
      if (o.key.empty()) std::abort();
  }
  (void)mf::parse_error_body(xml);
  return 0;
}
