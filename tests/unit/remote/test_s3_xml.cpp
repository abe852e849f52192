#include <doctest/doctest.h>

#include "core/remote/s3_xml.hpp"

using namespace mf;

TEST_CASE("ListObjectsV2: a truncated page") {
  const char* xml = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix>m/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated><NextContinuationToken>tok/+=</NextContinuationToken>
  <Contents><Key>m/a &amp; b.bin</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>
    <ETag>&quot;abc&quot;</ETag><Size>12345678901</Size><StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>m/c</Key><Size>0</Size></Contents>
</ListBucketResult>)";
  auto r = parse_list_page(xml);
  REQUIRE(r.ok());
  CHECK(r->truncated);
  CHECK(r->next_token == "tok/+=");
  REQUIRE(r->entries.objects.size() == 2);
  CHECK(r->entries.objects[0].key == "m/a & b.bin");
  CHECK(r->entries.objects[0].size == 12345678901ull);
  CHECK(r->entries.objects[0].etag == "\"abc\"");
  CHECK(r->entries.objects[1].size == 0);
}

TEST_CASE("ListObjectsV2: the last page, with common prefixes") {
  const char* xml = R"(<ListBucketResult><IsTruncated>false</IsTruncated>
  <Contents><Key>m/x</Key><Size>1</Size></Contents>
  <CommonPrefixes><Prefix>m/sub/</Prefix></CommonPrefixes><CommonPrefixes><Prefix>m/t/</Prefix></CommonPrefixes>
</ListBucketResult>)";
  auto r = parse_list_page(xml);
  REQUIRE(r.ok());
  CHECK_FALSE(r->truncated);
  CHECK(r->entries.common_prefixes == std::vector<std::string>{"m/sub/", "m/t/"});
  auto empty = parse_list_page("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>");
  REQUIRE(empty.ok());
  CHECK(empty->entries.objects.empty());
}

TEST_CASE("ListObjectsV2: malformed input is EIO") {
  const char* cases[] = {
      "",
      "<ListBucketResult><Contents><Key>a</Key>",                          // truncated XML
      "<Error><Code>AccessDenied</Code></Error>",                          // wrong root
      "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>a</Key><Size>1x</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",  // no key
      "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",       // would loop forever
      "<html><body>502 Bad Gateway</body></html>",
  };
  for (const char* xml : cases) {
    CAPTURE(xml);
    auto r = parse_list_page(xml);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == EIO);
  }
}

TEST_CASE("error bodies") {
  auto e = parse_error_body(R"(<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match
the signature you provided.</Message><AWSAccessKeyId>AKID</AWSAccessKeyId>
<StringToSign>AWS4-HMAC-SHA256...</StringToSign></Error>)");
  CHECK(e.code == "SignatureDoesNotMatch");
  CHECK(e.message.find('\n') == std::string::npos);  // one line
  CHECK(parse_error_body("<Error><Code>SlowDown</Code></Error>").code == "SlowDown");
  CHECK(parse_error_body("").code.empty());
  CHECK(parse_error_body("<html>nope</html>").code.empty());
  CHECK(parse_error_body("<Error><Code>x").code.empty());
}
