#include "core/util/env.hpp"

#include <cmath>
#include <cstring>

#include "core/util/checked.hpp"

extern char** environ;

namespace mf {

EnvLookup process_env() {
  return [](std::string_view name) -> std::optional<std::string> {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      std::string_view entry(*e);
      if (entry.size() > name.size() && entry.compare(0, name.size(), name) == 0 && entry[name.size()] == '=')
        return std::string(entry.substr(name.size() + 1));
    }
    return std::nullopt;
  };
}

EnvLookup map_env(std::map<std::string, std::string, std::less<>> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

Result<uint64_t> parse_uint(std::string_view text) {
  if (text.empty()) return make_error(EINVAL, "empty number");
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return make_error(EINVAL, "not a non-negative integer");
    if (!checked_mul(v, 10, &v) || !checked_add(v, static_cast<uint64_t>(c - '0'), &v))
      return make_error(EINVAL, "number too large");
  }
  return v;
}

Result<uint64_t> parse_size(std::string_view text) {
  if (text.empty()) return make_error(EINVAL, "empty size");
  uint64_t unit = 1;
  char last = text.back();
  if (last == 'B' || last == 'b') {  // "8GB" and "8GiB" mean the same as "8G" (binary units)
    text.remove_suffix(1);
    if (!text.empty() && (text.back() == 'i')) text.remove_suffix(1);
    if (text.empty()) return make_error(EINVAL, "empty size");
    last = text.back();
  }
  switch (last) {
    case 'k': case 'K': unit = 1ull << 10; break;
    case 'm': case 'M': unit = 1ull << 20; break;
    case 'g': case 'G': unit = 1ull << 30; break;
    case 't': case 'T': unit = 1ull << 40; break;
    default: break;
  }
  if (unit != 1) text.remove_suffix(1);
  auto dot = text.find('.');
  if (dot == std::string_view::npos) {
    auto n = parse_uint(text);
    if (!n) return n.error();
    uint64_t out;
    if (!checked_mul(*n, unit, &out)) return make_error(EINVAL, "size too large");
    return out;
  }
  // A fraction is only meaningful with a unit ("1.5G"); parse digits exactly, no locale-dependent strtod.
  auto whole = parse_uint(text.substr(0, dot));
  std::string_view frac = text.substr(dot + 1);
  if (!whole || frac.empty() || frac.size() > 9 || unit == 1) return make_error(EINVAL, "bad size");
  auto f = parse_uint(frac);
  if (!f) return f.error();
  uint64_t scale = 1;
  for (size_t i = 0; i < frac.size(); ++i) scale *= 10;
  uint64_t w, fpart;
  if (!checked_mul(*whole, unit, &w) || !checked_mul(*f, unit, &fpart))
    return make_error(EINVAL, "size too large");
  uint64_t out;
  if (!checked_add(w, fpart / scale, &out)) return make_error(EINVAL, "size too large");
  return out;
}

Result<bool> parse_bool(std::string_view text) {
  if (text == "1" || text == "true" || text == "yes" || text == "on") return true;
  if (text == "0" || text == "false" || text == "no" || text == "off") return false;
  return make_error(EINVAL, "not a boolean");
}

Error bad_variable(std::string_view name, std::string_view value, std::string_view expected) {
  std::string msg(name);
  msg += "='";
  msg += value;
  msg += "': expected ";
  msg += expected;
  return make_error(EINVAL, std::move(msg));
}

Result<uint64_t> env_size(const EnvLookup& env, std::string_view name, uint64_t fallback) {
  auto v = env(name);
  if (!v || v->empty()) return fallback;
  auto r = parse_size(*v);
  if (!r) return bad_variable(name, *v, "a size like 8G, 512M or 1048576");
  return r;
}

Result<uint64_t> env_uint(const EnvLookup& env, std::string_view name, uint64_t fallback, uint64_t min_value,
                          uint64_t max_value) {
  auto v = env(name);
  if (!v || v->empty()) return fallback;
  auto r = parse_uint(*v);
  if (!r || *r < min_value || *r > max_value)
    return bad_variable(name, *v,
                   "an integer from " + std::to_string(min_value) + " to " + std::to_string(max_value));
  return r;
}

Result<bool> env_bool(const EnvLookup& env, std::string_view name, bool fallback) {
  auto v = env(name);
  if (!v || v->empty()) return fallback;
  auto r = parse_bool(*v);
  if (!r) return bad_variable(name, *v, "1/0, true/false, yes/no or on/off");
  return r;
}

}  // namespace mf
