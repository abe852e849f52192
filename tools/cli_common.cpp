#include <cstdio>
#include <cstring>
#include <string>

#include "core/remote/config.hpp"
#include "core/remote/url.hpp"
#include "core/util/env.hpp"
#include "tools/cli.hpp"

namespace mf::cli {

void print_error(std::string_view cmd, std::string_view message) {
  std::string line = "modelfetch";
  if (!cmd.empty()) {
    line += ' ';
    line += cmd;
  }
  line += ": ";
  for (char c : message) line += (c == '\n' || c == '\r') ? ' ' : c;  // always one line
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
}

int usage_error(std::string_view cmd, std::string_view message) {
  print_error(cmd, message);
  return kExitUsage;
}

int remote_error(const Error& e) {
  print_error("", e.message);
  return kExitRemote;
}

bool wants_help(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) return true;
  return false;
}

Result<std::unique_ptr<Client>> open_remote(std::string_view url, std::string* prefix) {
  auto parsed = parse_remote_url(url);
  if (!parsed) return parsed.error();
  auto config = RemoteConfig::from_env(process_env());
  if (!config) return config.error();
  auto [root, key] = split_object_url(*parsed);
  if (prefix != nullptr) *prefix = key;
  return make_client(root, *config);
}

Result<Opened> open_object(std::string_view url) {
  Opened o;
  auto client = open_remote(url, &o.key);
  if (!client) return client.error();
  if (o.key.empty()) return make_error(EINVAL, "'" + std::string(url.substr(0, url.find('?'))) + "' names no object");
  o.client = std::move(*client);
  return o;
}

}  // namespace mf::cli
