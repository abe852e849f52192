// Builds safetensors files in memory for the tests: 8-byte LE length, the JSON padded with spaces to a
// multiple of 8 (as the crate writes it), then `data_len` data bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace mf::safetensors::test {

inline std::vector<std::byte> make_file(std::string json, uint64_t data_len, bool pad = true) {
  if (pad)
    while (json.size() % 8 != 0) json.push_back(' ');
  std::vector<std::byte> out(8 + json.size() + data_len, std::byte{0});
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::byte>((n >> (8 * i)) & 0xff);
  std::memcpy(out.data() + 8, json.data(), json.size());
  return out;
}

// One tensor entry: "name":{"dtype":..,"shape":[..],"data_offsets":[b,e]}
inline std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t b,
                         uint64_t e) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":[" + shape + "],\"data_offsets\":[" +
         std::to_string(b) + "," + std::to_string(e) + "]}";
}

}  // namespace mf::safetensors::test
