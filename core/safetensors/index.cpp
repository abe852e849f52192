// model.safetensors.index.json parsing: see index.hpp.
#include "core/safetensors/index.hpp"

#include <rapidjson/document.h>
#include <rapidjson/encodedstream.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>

#include <algorithm>
#include <set>

namespace mf::safetensors {
namespace {

Error invalid(std::string message) { return make_error(EINVAL, "safetensors index: " + std::move(message)); }

bool safe_shard_name(std::string_view name) {
  if (name.empty() || name.front() == '/') return false;
  size_t pos = 0;
  while (pos <= name.size()) {
    size_t slash = name.find('/', pos);
    if (slash == std::string_view::npos) slash = name.size();
    std::string_view part = name.substr(pos, slash - pos);
    if (part == ".." || part == "." || part.empty()) return false;
    pos = slash + 1;
  }
  return true;
}

}  // namespace

Result<Index> parse_index(std::string_view json) {
  rapidjson::Document doc;
  rapidjson::MemoryStream ms(json.data(), json.size());
  rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> is(ms);
  doc.ParseStream<rapidjson::kParseValidateEncodingFlag, rapidjson::UTF8<>>(is);
  if (doc.HasParseError())
    return invalid(std::string("invalid JSON at byte ") + std::to_string(doc.GetErrorOffset()) + ": " +
                   rapidjson::GetParseError_En(doc.GetParseError()));
  if (!doc.IsObject()) return invalid("JSON is not an object");

  Index index;
  auto md = doc.FindMember("metadata");
  if (md != doc.MemberEnd()) {
    if (!md->value.IsObject()) return invalid("metadata is not an object");
    auto ts = md->value.FindMember("total_size");
    if (ts != md->value.MemberEnd()) {
      // transformers writes an integer; json.dump of a float total (seen in some old checkpoints) is
      // tolerated when it is integral.
      if (ts->value.IsUint64()) {
        index.total_size = ts->value.GetUint64();
      } else if (ts->value.IsDouble() && ts->value.GetDouble() >= 0 && ts->value.GetDouble() < 1.8e19 &&
                 ts->value.GetDouble() == static_cast<double>(static_cast<uint64_t>(ts->value.GetDouble()))) {
        index.total_size = static_cast<uint64_t>(ts->value.GetDouble());
      } else {
        return invalid("metadata.total_size is not a non-negative integer");
      }
    }
  }
  auto wm = doc.FindMember("weight_map");
  if (wm == doc.MemberEnd()) return invalid("no weight_map");
  if (!wm->value.IsObject()) return invalid("weight_map is not an object");
  std::set<std::string> shards;
  for (const auto& m : wm->value.GetObject()) {
    std::string name(m.name.GetString(), m.name.GetStringLength());
    if (!m.value.IsString()) return invalid("weight_map['" + name + "'] is not a string");
    std::string shard(m.value.GetString(), m.value.GetStringLength());
    if (!safe_shard_name(shard)) return invalid("weight_map['" + name + "'] = '" + shard + "' is not a relative file name");
    if (!index.weight_map.emplace(name, shard).second) return invalid("duplicate tensor '" + name + "'");
    shards.insert(std::move(shard));
  }
  index.shards.assign(shards.begin(), shards.end());
  return index;
}

}  // namespace mf::safetensors
