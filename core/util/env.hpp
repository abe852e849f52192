// Configuration input. Core never calls getenv(): it takes an EnvLookup, so tests pass a map and the shim
// passes a reader of `environ` that is safe before libc is fully initialised (no allocation by libc, no
// locale, no recursion into our own hooks).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/util/result.hpp"

namespace mf {

using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

// Reads the process environment through `environ` directly.
EnvLookup process_env();
// For tests: a fixed set of variables.
EnvLookup map_env(std::map<std::string, std::string, std::less<>> vars);

// "8G", "512M", "4096", "1.5G" (binary units: K=1024). Rejects negatives, junk and overflow.
Result<uint64_t> parse_size(std::string_view text);
// A non-negative decimal integer that fits in uint64_t.
Result<uint64_t> parse_uint(std::string_view text);
// 1/0, true/false, yes/no, on/off.
Result<bool> parse_bool(std::string_view text);

// The one-line error for a malformed variable: "NAME='value': expected EXPECTED" (EINVAL).
Error bad_variable(std::string_view name, std::string_view value, std::string_view expected);

// Reads an optional variable with a parser; an unparsable value is an error naming the variable and the
// expected form, e.g. "MODELFETCH_CACHE_SIZE='abc': expected a size like 8G, 512M or 1048576".
Result<uint64_t> env_size(const EnvLookup& env, std::string_view name, uint64_t fallback);
Result<uint64_t> env_uint(const EnvLookup& env, std::string_view name, uint64_t fallback, uint64_t min_value,
                          uint64_t max_value);
Result<bool> env_bool(const EnvLookup& env, std::string_view name, bool fallback);

}  // namespace mf
