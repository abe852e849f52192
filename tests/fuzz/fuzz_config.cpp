// libFuzzer target for the configuration parsers: core/util/env (parse_size, parse_uint, parse_bool),
// core/remote/url (parse_remote_url), core/vfs/config (parse_config) and core/remote/config
// (RemoteConfig::from_env). The input is lines NAME=VALUE (a name without '=' is used as a bare value);
// each value also goes through the scalar parsers. Invariants: no crash or sanitizer report; a parsed
// plain decimal size equals its digits; a URL's display() never shows its query (may be a signature); no
// error message carries the AWS secret (when it is long and distinctive enough to recognise).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include "core/remote/config.hpp"
#include "core/remote/url.hpp"
#include "core/util/env.hpp"
#include "core/vfs/config.hpp"

namespace {

void scalars(std::string_view v) {
  auto s = mf::parse_size(v);
  auto u = mf::parse_uint(v);
  if (u && (!s || *s != *u)) std::abort();  // plain digits mean bytes
  (void)mf::parse_bool(v);
  auto url = mf::parse_remote_url(v);
  if (url && !url->query.empty() && url->display().find('?') != std::string::npos) std::abort();
}

using Vars = std::map<std::string, std::string, std::less<>>;

// The error messages of both configuration parsers for `vars`, one per line.
std::string errors(const Vars& vars) {
  auto env = mf::map_env(vars);
  std::string out;
  auto vc = mf::parse_config(env, uint64_t{8} << 30);
  if (!vc) out += vc.error().message + "\n";
  auto rc = mf::RemoteConfig::from_env(env);
  if (!rc) out += rc.error().message + "\n";
  return out;
}

// Aborts if the secret's value reached a message. A secret that is found in the messages is checked again
// with the value replaced by one of the same length that shares no character with it: if the messages
// still contain it, it is text of the message itself (the fuzzer made a secret like "s not: set both o"
// out of "... is not set: set both or neither"), not the value leaking.
void no_secret(const Vars& vars, const std::string& msgs, const std::string& secret) {
  if (secret.size() < 12 || msgs.find(secret) == std::string::npos) return;
  char fill = 'x';
  for (char c : std::string_view("xyzXYZ0123456789"))
    if (secret.find(c) == std::string::npos) { fill = c; break; }
  Vars masked = vars;
  masked["AWS_SECRET_ACCESS_KEY"] = std::string(secret.size(), fill);
  if (errors(masked).find(secret) == std::string::npos) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  Vars vars;
  while (!in.empty()) {
    size_t nl = in.find('\n');
    std::string_view line = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    size_t eq = line.find('=');
    std::string_view value = eq == std::string_view::npos ? line : line.substr(eq + 1);
    scalars(value);
    if (eq != std::string_view::npos) vars[std::string(line.substr(0, eq))] = std::string(value);
  }
  std::string secret;
  if (auto it = vars.find("AWS_SECRET_ACCESS_KEY"); it != vars.end()) {
    secret = it->second;
    for (const auto& [k, v] : vars)  // the secret must be distinctive: not part of another variable
      if (k != "AWS_SECRET_ACCESS_KEY" && (k.find(secret) != std::string::npos || v.find(secret) != std::string::npos))
        secret.clear();
  }
  no_secret(vars, errors(vars), secret);
  return 0;
}
