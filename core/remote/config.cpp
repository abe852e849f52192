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

// AWS_NO_SIGN_REQUEST / MODELFETCH_NO_SIGN, the variables the chain reads, the profile files, and the
// chain's timeouts.
Result<void> read_chain_settings(const EnvLookup& env, RemoteConfig* c) {
  std::string no_sign = get(env, "AWS_NO_SIGN_REQUEST");
  if (!no_sign.empty()) {
    auto b = parse_bool(no_sign);
    if (!b) return bad_variable("AWS_NO_SIGN_REQUEST", no_sign, "true or false");
    c->no_sign = *b;
  }
  auto mf_no_sign = env_bool(env, "MODELFETCH_NO_SIGN", false);
  if (!mf_no_sign) return mf_no_sign.error();
  c->no_sign = c->no_sign || *mf_no_sign;
  c->use_chain = !c->no_sign;
  CredentialSettings& s = c->credential_settings;
  for (const std::string& name : credential_variables())
    if (auto v = env(name); v && !v->empty()) s.env[name] = *v;
  std::string home = s.get("HOME");
  std::string creds_file = s.get("AWS_SHARED_CREDENTIALS_FILE"), config_file = s.get("AWS_CONFIG_FILE");
  if (creds_file.empty() && !home.empty()) creds_file = home + "/.aws/credentials";
  if (config_file.empty() && !home.empty()) config_file = home + "/.aws/config";
  std::string profile = s.get("AWS_PROFILE");
  s.profile = load_aws_profile(creds_file, config_file, profile.empty() ? "default" : profile);
  auto imds = env_uint(env, "MODELFETCH_IMDS_TIMEOUT_MS", s.imds_timeout_ms, 1, 60000);
  if (!imds) return imds.error();
  auto process = env_uint(env, "MODELFETCH_CREDENTIAL_PROCESS_TIMEOUT_MS", s.process_timeout_ms, 1, 3600000);
  if (!process) return process.error();
  auto ahead = env_uint(env, "MODELFETCH_CREDENTIAL_REFRESH_AHEAD_S", c->refresh_ahead_s, 0, 3600);
  if (!ahead) return ahead.error();
  s.imds_timeout_ms = *imds;
  s.process_timeout_ms = *process;
  c->refresh_ahead_s = *ahead;
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
  if (auto r = read_chain_settings(env, &c); !r) return r.error();
  const AwsProfile& profile = c.credential_settings.profile;
  std::string region = get(env, "AWS_REGION");
  std::string region_var = "AWS_REGION";
  if (region.empty()) {
    region = get(env, "AWS_DEFAULT_REGION");
    region_var = "AWS_DEFAULT_REGION";
  }
  if (region.empty()) {  // then the profile's (a malformed file is reported by the chain, not here)
    region = profile.get("region");
    region_var = "region (profile " + profile.name + ")";
  }
  if (!region.empty()) {
    if (!valid_region(region)) return bad_variable(region_var, region, "a region like us-east-1");
    c.region = region;
  }
  c.credential_settings.region = c.region;
  std::string endpoint = get(env, "AWS_ENDPOINT_URL");
  if (endpoint.empty()) endpoint = profile.get("endpoint_url");
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
  c.credential_settings.ca_bundle = c.ca_bundle;
  c.credential_settings.insecure_tls = c.insecure_tls;
  return c;
}

}  // namespace mf
