// safetensors header parsing: see header.hpp for the format and the validation rules.
#include "core/safetensors/header.hpp"

#include <rapidjson/document.h>
#include <rapidjson/encodedstream.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "core/util/checked.hpp"

namespace mf::safetensors {
namespace {

struct DtypeEntry {
  Dtype dtype;
  std::string_view name;
  uint32_t bits;
};

constexpr std::array<DtypeEntry, 20> kDtypes = {{
    {Dtype::BOOL, "BOOL", 8},        {Dtype::F4, "F4", 4},
    {Dtype::F6_E2M3, "F6_E2M3", 6},  {Dtype::F6_E3M2, "F6_E3M2", 6},
    {Dtype::U8, "U8", 8},            {Dtype::I8, "I8", 8},
    {Dtype::F8_E5M2, "F8_E5M2", 8},  {Dtype::F8_E4M3, "F8_E4M3", 8},
    {Dtype::F8_E8M0, "F8_E8M0", 8},  {Dtype::I16, "I16", 16},
    {Dtype::U16, "U16", 16},         {Dtype::F16, "F16", 16},
    {Dtype::BF16, "BF16", 16},       {Dtype::I32, "I32", 32},
    {Dtype::U32, "U32", 32},         {Dtype::F32, "F32", 32},
    {Dtype::F64, "F64", 64},         {Dtype::I64, "I64", 64},
    {Dtype::U64, "U64", 64},         {Dtype::C64, "C64", 64},
}};

Error invalid(std::string message) { return make_error(EINVAL, "safetensors header: " + std::move(message)); }

uint64_t read_le64(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// Byte length of a tensor of this dtype and shape; error on overflow or a sub-byte total that is not whole.
Result<uint64_t> tensor_bytes(const std::string& name, Dtype dtype, const std::vector<uint64_t>& shape) {
  uint64_t elements = 1;
  for (uint64_t d : shape) {
    if (!checked_mul(elements, d, &elements)) return invalid("shape of '" + name + "' overflows");
  }
  uint64_t bits = 0;
  if (!checked_mul(elements, dtype_bits(dtype), &bits)) return invalid("size of '" + name + "' overflows");
  if (bits % 8 != 0) return invalid("'" + name + "' is not a whole number of bytes");
  return bits / 8;
}

Result<TensorInfo> parse_tensor(const std::string& name, const rapidjson::Value& v) {
  if (!v.IsObject()) return invalid("entry '" + name + "' is not an object");
  auto dt = v.FindMember("dtype");
  auto sh = v.FindMember("shape");
  auto off = v.FindMember("data_offsets");
  if (dt == v.MemberEnd() || sh == v.MemberEnd() || off == v.MemberEnd())
    return invalid("entry '" + name + "' lacks dtype, shape or data_offsets");
  if (!dt->value.IsString()) return invalid("dtype of '" + name + "' is not a string");
  auto dtype = parse_dtype(std::string_view(dt->value.GetString(), dt->value.GetStringLength()));
  if (!dtype) return invalid("unknown dtype '" + std::string(dt->value.GetString()) + "' for '" + name + "'");
  TensorInfo t;
  t.name = name;
  t.dtype = *dtype;
  if (!sh->value.IsArray()) return invalid("shape of '" + name + "' is not an array");
  for (const auto& d : sh->value.GetArray()) {
    if (!d.IsUint64()) return invalid("shape of '" + name + "' holds a non-integer or negative value");
    t.shape.push_back(d.GetUint64());
  }
  const auto& o = off->value;
  if (!o.IsArray() || o.Size() != 2 || !o[0].IsUint64() || !o[1].IsUint64())
    return invalid("data_offsets of '" + name + "' is not [begin, end]");
  t.begin = o[0].GetUint64();
  t.end = o[1].GetUint64();
  if (t.end < t.begin) return invalid("data_offsets of '" + name + "' end before they begin");
  auto bytes = tensor_bytes(name, t.dtype, t.shape);
  if (!bytes) return bytes.error();
  if (*bytes != t.end - t.begin)
    return invalid("'" + name + "': shape and dtype give " + std::to_string(*bytes) + " bytes, data_offsets " +
                   std::to_string(t.end - t.begin));
  return t;
}

Result<std::map<std::string, std::string>> parse_metadata(const rapidjson::Value& v) {
  if (!v.IsObject()) return invalid("__metadata__ is not an object");
  std::map<std::string, std::string> out;
  for (const auto& m : v.GetObject()) {
    if (!m.value.IsString()) return invalid("__metadata__ value is not a string");
    out.emplace(std::string(m.name.GetString(), m.name.GetStringLength()),
                std::string(m.value.GetString(), m.value.GetStringLength()));
  }
  return out;
}

// Offsets must lie inside [0, file_size - data_start) and must not overlap one another.
Result<void> check_layout(Header& h) {
  const uint64_t data_len = h.file_size - h.data_start;
  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(h.tensors.size());
  for (const auto& t : h.tensors) {
    if (t.end > data_len)
      return invalid("'" + t.name + "' ends at " + std::to_string(t.end) + ", past the data section (" +
                     std::to_string(data_len) + " bytes)");
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;  // end of the data seen so far in offset order
  const TensorInfo* last = nullptr;
  for (const TensorInfo* t : by_offset) {
    // Empty tensors own no bytes; they may sit anywhere in range, even inside another tensor.
    if (t->size() == 0) continue;
    if (t->begin < covered) return invalid("'" + t->name + "' overlaps '" + last->name + "'");
    covered = t->end;
    last = t;
  }
  h.data_end = h.data_start + covered;
  return {};
}

}  // namespace

std::optional<Dtype> parse_dtype(std::string_view text) {
  for (const auto& e : kDtypes)
    if (e.name == text) return e.dtype;
  return std::nullopt;
}

std::string_view dtype_name(Dtype dtype) {
  for (const auto& e : kDtypes)
    if (e.dtype == dtype) return e.name;
  return "?";
}

uint32_t dtype_bits(Dtype dtype) {
  for (const auto& e : kDtypes)
    if (e.dtype == dtype) return e.bits;
  return 0;
}

const TensorInfo* Header::find(std::string_view name) const {
  auto it = std::lower_bound(tensors.begin(), tensors.end(), name,
                             [](const TensorInfo& t, std::string_view n) { return t.name < n; });
  return it != tensors.end() && it->name == name ? &*it : nullptr;
}

Result<uint64_t> header_prefix_length(std::span<const std::byte> first_bytes, uint64_t file_size) {
  if (first_bytes.size() < kLengthPrefix) return invalid("fewer than 8 bytes");
  const uint64_t n = read_le64(first_bytes.data());
  if (n > kMaxHeaderSize) return invalid("length " + std::to_string(n) + " exceeds 100 MB");
  // n ≤ 1e8, so 8 + n cannot overflow.
  if (kLengthPrefix + n > file_size)
    return invalid("length " + std::to_string(n) + " exceeds the file size " + std::to_string(file_size));
  return kLengthPrefix + n;
}

Result<Header> parse_header(std::span<const std::byte> bytes, uint64_t file_size) {
  auto prefix = header_prefix_length(bytes, file_size);
  if (!prefix) return prefix.error();
  if (bytes.size() < *prefix) return invalid("buffer holds " + std::to_string(bytes.size()) + " of " +
                                             std::to_string(*prefix) + " header bytes");
  Header h;
  h.header_size = *prefix - kLengthPrefix;
  h.data_start = *prefix;
  h.file_size = file_size;
  const char* json = reinterpret_cast<const char*>(bytes.data() + kLengthPrefix);
  if (h.header_size == 0 || json[0] != '{') return invalid("JSON does not start with '{'");

  rapidjson::Document doc;
  // The JSON is not NUL-terminated (the data section follows it): parse from a bounded stream. Trailing
  // padding spaces are whitespace to RapidJSON; anything else after the object is kParseErrorDocumentRootNotSingular.
  rapidjson::MemoryStream ms(json, h.header_size);
  rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> is(ms);
  doc.ParseStream<rapidjson::kParseValidateEncodingFlag, rapidjson::UTF8<>>(is);
  if (doc.HasParseError())
    return invalid(std::string("invalid JSON at byte ") + std::to_string(doc.GetErrorOffset()) + ": " +
                   rapidjson::GetParseError_En(doc.GetParseError()));
  if (!doc.IsObject()) return invalid("JSON is not an object");

  for (const auto& m : doc.GetObject()) {
    std::string name(m.name.GetString(), m.name.GetStringLength());
    if (name == "__metadata__") {
      auto md = parse_metadata(m.value);
      if (!md) return md.error();
      h.metadata = std::move(*md);
      continue;
    }
    auto t = parse_tensor(name, m.value);
    if (!t) return t.error();
    h.tensors.push_back(std::move(*t));
  }
  std::sort(h.tensors.begin(), h.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  for (size_t i = 1; i < h.tensors.size(); ++i)
    if (h.tensors[i].name == h.tensors[i - 1].name) return invalid("duplicate tensor '" + h.tensors[i].name + "'");
  auto layout = check_layout(h);
  if (!layout) return layout.error();
  return h;
}

}  // namespace mf::safetensors
