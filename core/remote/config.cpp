#include "core/remote/config.hpp"

#include <string_view>


namespace mf {

namespace {

std::string get(const EnvLookup& env, std::string_view name) {
  auto v = env(name);
  return v ? *v : std::string();
}

bool valid_region(std::string_view r) {
  if (r.empty() || r.size() > 64) return false;
  for (char c : r)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

// "http(s)://host[:port][/path]": no user info, query or fragment. Returns it without a trailing '/'.
Result<std::string> parse_endpoint(std::string_view v) {
  constexpr std::string_view kForm = "an URL like http://HOST:PORT or https://HOST";
  std::string_view rest;
  if (v.starts_with("http://")) rest = v.substr(7);
  else if (v.starts_with("https://")) rest = v.substr(8);
  else return bad_variable("AWS_ENDPOINT_URL", v, kForm);
  std::string_view host = rest.substr(0, rest.find('/'));
  if (host.empty() || v.find_first_of("@?# \t\r\n") != std::string_view::npos)
    return bad_variable("AWS_ENDPOINT_URL", v, kForm);
  while (v.ends_with('/')) v.remove_suffix(1);
  return std::string(v);
}

Result<void> read_credentials(const EnvLookup& env, Credentials* c) {
  c->access_key = get(env, "AWS_ACCESS_KEY_ID");
  c->secret_key = get(env, "AWS_SECRET_ACCESS_KEY");
  c->session_token = get(env, "AWS_SESSION_TOKEN");
  // Values are never quoted back: they are secrets.
  if (c->access_key.empty() && !c->secret_key.empty())
    return make_error(EINVAL, "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both or neither");
  if (!c->access_key.empty() && c->secret_key.empty())
    return make_error(EINVAL, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both or neither");
  if (c->access_key.empty() && !c->session_token.empty())
    return make_error(EINVAL, "AWS_SESSION_TOKEN is set without AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
  for (char ch : c->access_key)  // the key travels in the Authorization header; ':' would split USERPWD
    if (ch == ':' || static_cast<unsigned char>(ch) <= ' ')
      return make_error(EINVAL, "AWS_ACCESS_KEY_ID: expected an access key id (letters and digits)");
  for (const std::string* s : {&c->secret_key, &c->session_token})
    for (char ch : *s)
      if (static_cast<unsigned char>(ch) < ' ')
        return make_error(EINVAL, "AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN: control character in the value");
  return {};
}

Result<void> read_tuning(const EnvLookup& env, RemoteConfig* c) {
  auto conns = env_uint(env, "MODELFETCH_MAX_CONNECTIONS", c->max_connections, 1, 256);
  if (!conns) return conns.error();
  auto retries = env_uint(env, "MODELFETCH_RETRIES", c->retries, 0, 100);
  if (!retries) return retries.error();
  auto base = env_uint(env, "MODELFETCH_RETRY_BASE_MS", c->retry_base_ms, 1, 60000);
  if (!base) return base.error();
  auto connect = env_uint(env, "MODELFETCH_CONNECT_TIMEOUT_MS", c->connect_timeout_ms, 1, 600000);
  if (!connect) return connect.error();
  auto low = env_uint(env, "MODELFETCH_LOW_SPEED_TIME_S", c->low_speed_time_s, 0, 3600);
  if (!low) return low.error();
  auto total = env_uint(env, "MODELFETCH_TIMEOUT_MS", c->timeout_ms, 0, 86400000);
  if (!total) return total.error();
  c->max_connections = static_cast<uint32_t>(*conns);
  c->retries = static_cast<uint32_t>(*retries);
  c->retry_base_ms = *base;
  c->connect_timeout_ms = *connect;
  c->low_speed_time_s = *low;
  c->timeout_ms = *total;
  return {};
}

}  // namespace

Result<RemoteConfig> RemoteConfig::from_env(const EnvLookup& env) {
  RemoteConfig c;
  if (auto r = read_credentials(env, &c.credentials); !r) return r.error();
  std::string region = get(env, "AWS_REGION");
  std::string_view region_var = "AWS_REGION";
  if (region.empty()) {
    region = get(env, "AWS_DEFAULT_REGION");
    region_var = "AWS_DEFAULT_REGION";
  }
  if (!region.empty()) {
    if (!valid_region(region)) return bad_variable(region_var, region, "a region like us-east-1");
    c.region = region;
  }
  std::string endpoint = get(env, "AWS_ENDPOINT_URL");
  if (!endpoint.empty()) {
    auto e = parse_endpoint(endpoint);
    if (!e) return e.error();
    c.endpoint = *e;
    c.addressing = Addressing::path;
  }
  std::string addressing = get(env, "MODELFETCH_S3_ADDRESSING");
  if (addressing == "path") c.addressing = Addressing::path;
  else if (addressing == "virtual") c.addressing = Addressing::virtual_host;
  else if (!addressing.empty()) return bad_variable("MODELFETCH_S3_ADDRESSING", addressing, "path or virtual");
  c.ca_bundle = get(env, "AWS_CA_BUNDLE");
  std::string insecure = get(env, "MODELFETCH_INSECURE_TLS");
  if (insecure == "1") c.insecure_tls = true;
  else if (!insecure.empty() && insecure != "0") return bad_variable("MODELFETCH_INSECURE_TLS", insecure, "0 or 1");
  if (auto r = read_tuning(env, &c); !r) return r.error();
  return c;
}

}  // namespace mf
