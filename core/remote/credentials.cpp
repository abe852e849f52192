#include "core/remote/credentials.hpp"

#include <curl/curl.h>
#include <rapidjson/document.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <mutex>
#include <pugixml.hpp>

#include "core/remote/request.hpp"
#include "core/remote/subprocess.hpp"

namespace mf {

namespace {

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<std::string*>(user);
  size_t len = size * n;
  if (s->size() + len > (1u << 20)) return 0;  // metadata answers are a few hundred bytes
  s->append(data, len);
  return len;
}

bool is_true(const std::string& v) { return v == "true" || v == "TRUE" || v == "True" || v == "1"; }

Error not_answered(std::string what) { return make_error(EACCES, std::move(what)); }

// Pulls a string member, or "" when absent or not a string.
std::string member(const rapidjson::Value& o, const char* name) {
  auto it = o.FindMember(name);
  if (it == o.MemberEnd() || !it->value.IsString()) return {};
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

Result<TimedCredentials> from_json_fields(const rapidjson::Value& o, const char* token_field,
                                          std::string_view source) {
  TimedCredentials c;
  c.keys.access_key = member(o, "AccessKeyId");
  c.keys.secret_key = member(o, "SecretAccessKey");
  c.keys.session_token = member(o, token_field);
  if (c.keys.access_key.empty() || c.keys.secret_key.empty())
    return not_answered(std::string(source) + ": the answer has no AccessKeyId/SecretAccessKey");
  std::string exp = member(o, "Expiration");
  if (!exp.empty()) {
    c.expiration = parse_iso8601(exp);
    if (!c.expiration) return not_answered(std::string(source) + ": Expiration is not an ISO 8601 time");
  }
  return c;
}

std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [k, v] : fields) {
    if (!out.empty()) out += '&';
    out += uri_encode(k, false);
    out += '=';
    out += uri_encode(v, false);
  }
  return out;
}

std::string default_session_name() {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(SystemClock::now().time_since_epoch()).count();
  return "modelfetch-" + std::to_string(ms);
}

// STS AssumeRoleWithWebIdentity with the token read from `token_file` now.
Result<TimedCredentials> assume_role_with_web_identity(const CredentialSettings& s, const std::string& role_arn,
                                                       const std::string& token_file,
                                                       const std::string& session_name) {
  auto token = read_small_file(token_file, 64 << 10);
  if (!token) return not_answered("cannot read the web identity token file " + token_file + ": " +
                                  std::string(std::strerror(token.error().code)));
  std::string t = *token;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  if (t.empty()) return not_answered("the web identity token file " + token_file + " is empty");
  std::string endpoint = s.get("AWS_ENDPOINT_URL_STS");
  if (endpoint.empty()) endpoint = "https://sts." + s.region + ".amazonaws.com";
  while (endpoint.ends_with('/')) endpoint.pop_back();
  HttpExchange x;
  x.method = "POST";
  x.url = endpoint + "/";
  x.headers = {"Content-Type: application/x-www-form-urlencoded", "Accept: application/xml"};
  x.body = form_encode({{"Action", "AssumeRoleWithWebIdentity"},
                        {"RoleArn", role_arn},
                        {"RoleSessionName", session_name.empty() ? default_session_name() : session_name},
                        {"Version", "2011-06-15"},
                        {"WebIdentityToken", t}});
  x.timeout_ms = s.sts_timeout_ms;
  x.ca_bundle = s.ca_bundle;
  x.insecure_tls = s.insecure_tls;
  Result<HttpAnswer> a = make_error(EIO, "");
  for (int attempt = 0; attempt < 3; ++attempt) {  // STS throttles and has 5xx days: two more tries
    a = http_exchange(x);
    if (a && a->status < 500 && a->status != 429) break;
  }
  if (!a) return not_answered("STS " + endpoint + ": " + a.error().message);
  return parse_sts_response(a->body, a->status);
}

Result<TimedCredentials> run_credential_process(const CredentialSettings& s, const std::string& command) {
  auto out = run_shell_command(command, s.process_timeout_ms);
  if (!out) return not_answered(out.error().message);
  if (out->exit_status != 0)
    return not_answered("credential_process exited with status " + std::to_string(out->exit_status));
  return parse_process_json(out->out);
}

std::string host_of(std::string_view url) {
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) return {};
  std::string_view rest = url.substr(sep + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) rest = rest.substr(at + 1);
  if (rest.starts_with('[')) return std::string(rest.substr(1, rest.find(']') - 1));
  return std::string(rest.substr(0, rest.find(':')));
}

Result<TimedCredentials> fetch_container(const CredentialSettings& s, const std::string& url) {
  HttpExchange x;
  x.url = url;
  x.timeout_ms = s.container_timeout_ms;
  x.no_proxy = true;
  x.ca_bundle = s.ca_bundle;
  std::string token_file = s.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
  std::string token = s.get("AWS_CONTAINER_AUTHORIZATION_TOKEN");
  if (!token_file.empty()) {  // read at every refresh: EKS Pod Identity rotates it
    auto t = read_small_file(token_file, 64 << 10);
    if (!t) return not_answered("cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE " + token_file + ": " +
                                std::string(std::strerror(t.error().code)));
    token = *t;
  }
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  if (token.find_first_of("\r\n") != std::string::npos)
    return not_answered("the container authorization token has a line break in it");
  if (!token.empty()) x.headers.push_back("Authorization: " + token);
  Result<HttpAnswer> a = make_error(EIO, "");
  for (int attempt = 0; attempt < 2; ++attempt) {
    a = http_exchange(x);
    if (a && a->status < 500) break;
  }
  std::string shown = url.substr(0, url.find('?'));
  if (!a) return not_answered(shown + ": " + a.error().message);
  if (a->status != 200) return not_answered(shown + ": HTTP " + std::to_string(a->status));
  return parse_metadata_json(a->body, "the container endpoint");
}

Result<TimedCredentials> fetch_imds(const CredentialSettings& s) {
  std::string endpoint = s.get("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  if (endpoint.empty()) endpoint = "http://169.254.169.254";
  while (endpoint.ends_with('/')) endpoint.pop_back();
  HttpExchange x;
  x.timeout_ms = s.imds_timeout_ms;
  x.no_proxy = true;
  x.method = "PUT";
  x.url = endpoint + "/latest/api/token";
  x.headers = {"X-aws-ec2-metadata-token-ttl-seconds: 21600"};
  auto tok = http_exchange(x);
  if (!tok) return not_answered(endpoint + ": " + tok.error().message);
  if (tok->status != 200) return not_answered(endpoint + ": token request answered HTTP " + std::to_string(tok->status));
  for (char ch : tok->body)  // it goes into a header line
    if (static_cast<unsigned char>(ch) < ' ' || ch == 127) return not_answered(endpoint + ": malformed IMDS token");
  x.method = "GET";
  x.headers = {"X-aws-ec2-metadata-token: " + tok->body};
  x.url = endpoint + "/latest/meta-data/iam/security-credentials/";
  auto role = http_exchange(x);
  if (!role) return not_answered(endpoint + ": " + role.error().message);
  if (role->status == 404) return not_answered(endpoint + ": this instance has no IAM role");
  if (role->status != 200) return not_answered(endpoint + ": role name request answered HTTP " + std::to_string(role->status));
  std::string name = role->body.substr(0, role->body.find('\n'));
  while (!name.empty() && (name.back() == '\r' || name.back() == ' ')) name.pop_back();
  if (name.empty()) return not_answered(endpoint + ": this instance has no IAM role");
  x.url += uri_encode(name, false);
  auto creds = http_exchange(x);
  if (!creds) return not_answered(endpoint + ": " + creds.error().message);
  if (creds->status != 200) return not_answered(endpoint + ": credentials request answered HTTP " + std::to_string(creds->status));
  return parse_metadata_json(creds->body, "IMDS");
}

}  // namespace

const std::vector<std::string>& credential_variables() {
  static const std::vector<std::string> names = {
      "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
      "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
      "AWS_ROLE_SESSION_NAME", "AWS_ENDPOINT_URL_STS", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
      "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
      "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_SERVICE_ENDPOINT",
      "AWS_NO_SIGN_REQUEST", "MODELFETCH_NO_SIGN", "HOME"};
  return names;
}

std::optional<SystemClock::time_point> parse_iso8601(std::string_view t) {
  // YYYY-MM-DDTHH:MM:SS[.fff](Z|+00:00)
  auto num = [&](size_t pos, size_t len, int* out) {
    if (pos + len > t.size()) return false;
    int v = 0;
    for (size_t i = pos; i < pos + len; ++i) {
      if (t[i] < '0' || t[i] > '9') return false;
      v = v * 10 + (t[i] - '0');
    }
    *out = v;
    return true;
  };
  std::tm tm{};
  int y, mo, d, h, mi, s;
  if (!num(0, 4, &y) || t.size() < 19 || t[4] != '-' || !num(5, 2, &mo) || t[7] != '-' || !num(8, 2, &d) ||
      (t[10] != 'T' && t[10] != 't' && t[10] != ' ') || !num(11, 2, &h) || t[13] != ':' || !num(14, 2, &mi) ||
      t[16] != ':' || !num(17, 2, &s))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return std::nullopt;
  std::string_view rest = t.substr(19);
  if (rest.starts_with('.')) {
    size_t i = 1;
    while (i < rest.size() && rest[i] >= '0' && rest[i] <= '9') ++i;
    if (i == 1) return std::nullopt;
    rest.remove_prefix(i);
  }
  long offset_s = 0;
  if (rest == "Z" || rest == "z") {
  } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
    int oh, om;
    std::string_view r = rest;
    t = r;  // reuse num() on the offset
    if (!num(1, 2, &oh) || !num(4, 2, &om)) return std::nullopt;
    offset_s = (oh * 3600L + om * 60L) * (r[0] == '+' ? 1 : -1);
  } else {
    return std::nullopt;
  }
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  time_t epoch = timegm(&tm);
  return SystemClock::from_time_t(epoch - offset_s);
}

Result<TimedCredentials> parse_process_json(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject())
    return not_answered("credential_process printed something that is not a JSON object");
  auto v = doc.FindMember("Version");
  if (v == doc.MemberEnd() || !v->value.IsInt() || v->value.GetInt() != 1)
    return not_answered("credential_process output: expected \"Version\": 1");
  return from_json_fields(doc, "SessionToken", "credential_process output");
}

Result<TimedCredentials> parse_metadata_json(std::string_view json, std::string_view source) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject())
    return not_answered(std::string(source) + " answered something that is not a JSON object");
  std::string code = member(doc, "Code");
  if (!code.empty() && code != "Success") return not_answered(std::string(source) + " answered Code " + code);
  return from_json_fields(doc, "Token", source);
}

Result<TimedCredentials> parse_sts_response(std::string_view xml, long http_status) {
  pugi::xml_document doc;
  auto ok = doc.load_buffer(xml.data(), xml.size());
  if (http_status != 200) {
    std::string code = ok ? doc.select_node("//Error/Code").node().text().as_string() : "";
    return not_answered("STS AssumeRoleWithWebIdentity answered HTTP " + std::to_string(http_status) +
                        (code.empty() ? std::string() : " " + code));
  }
  if (!ok) return not_answered("STS AssumeRoleWithWebIdentity: the answer is not XML");
  pugi::xml_node c = doc.child("AssumeRoleWithWebIdentityResponse")
                         .child("AssumeRoleWithWebIdentityResult")
                         .child("Credentials");
  TimedCredentials t;
  t.keys.access_key = c.child("AccessKeyId").text().as_string();
  t.keys.secret_key = c.child("SecretAccessKey").text().as_string();
  t.keys.session_token = c.child("SessionToken").text().as_string();
  if (t.keys.access_key.empty() || t.keys.secret_key.empty())
    return not_answered("STS AssumeRoleWithWebIdentity: the answer has no Credentials");
  std::string exp = c.child("Expiration").text().as_string();
  if (!exp.empty()) {
    t.expiration = parse_iso8601(exp);
    if (!t.expiration) return not_answered("STS AssumeRoleWithWebIdentity: Expiration is not an ISO 8601 time");
  }
  return t;
}

std::string container_credentials_url(const CredentialSettings& s) {
  std::string relative = s.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  if (!relative.empty()) return "http://169.254.170.2" + std::string(relative.starts_with('/') ? "" : "/") + relative;
  return s.get("AWS_CONTAINER_CREDENTIALS_FULL_URI");
}

bool container_host_allowed(std::string_view url) {
  if (url.starts_with("https://")) return true;
  if (!url.starts_with("http://")) return false;
  std::string host = host_of(url);
  if (host == "localhost" || host == "::1" || host == "169.254.170.2" || host == "169.254.170.23" ||
      host == "fd00:ec2::23")
    return true;
  // 127.0.0.0/8
  if (!host.starts_with("127.")) return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.') ++dots;
    else if (c < '0' || c > '9') return false;
  }
  return dots == 3;
}

bool curl_global_ready() {
  static std::once_flag once;
  static CURLcode init = CURLE_OK;
  std::call_once(once, [] { init = curl_global_init(CURL_GLOBAL_DEFAULT); });
  return init == CURLE_OK;
}

Result<HttpAnswer> http_exchange(const HttpExchange& x) {
  if (!curl_global_ready()) return make_error(EIO, "curl_global_init failed");
  CURL* easy = curl_easy_init();
  if (easy == nullptr) return make_error(ENOMEM, "curl_easy_init failed");
  HttpAnswer a;
  curl_slist* headers = nullptr;
  for (const std::string& h : x.headers) headers = curl_slist_append(headers, h.c_str());
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip for a small POST
  curl_easy_setopt(easy, CURLOPT_URL, x.url.c_str());
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(x.timeout_ms));
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(x.timeout_ms));
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &a.body);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  if (x.no_proxy) curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");
  if (!x.ca_bundle.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, x.ca_bundle.c_str());
  if (x.insecure_tls) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (x.method == "POST") {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, x.body.c_str());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(x.body.size()));
  } else if (x.method != "GET") {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, x.method.c_str());
    if (x.method == "PUT") curl_easy_setopt(easy, CURLOPT_POSTFIELDS, "");
  }
  CURLcode code = curl_easy_perform(easy);
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &a.status);
  curl_easy_cleanup(easy);
  curl_slist_free_all(headers);
  if (code != CURLE_OK) return make_error(code == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT : EIO, curl_easy_strerror(code));
  return a;
}

std::vector<CredentialProvider> build_chain(const CredentialSettings& s) {
  std::vector<CredentialProvider> chain;
  {  // 1. environment
    CredentialProvider p;
    p.name = "environment";
    TimedCredentials c;
    c.keys.access_key = s.get("AWS_ACCESS_KEY_ID");
    c.keys.secret_key = s.get("AWS_SECRET_ACCESS_KEY");
    c.keys.session_token = s.get("AWS_SESSION_TOKEN");
    p.configured = !c.keys.access_key.empty() && !c.keys.secret_key.empty();
    p.why_not = "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY not set";
    p.fetch = [c] { return Result<TimedCredentials>(c); };
    chain.push_back(std::move(p));
  }
  {  // 2. profile
    const AwsProfile& prof = s.profile;
    CredentialProvider p;
    p.name = "profile " + prof.name;
    std::string key = prof.get("aws_access_key_id"), process = prof.get("credential_process"),
                role = prof.get("role_arn"), token_file = prof.get("web_identity_token_file");
    bool explicit_profile = !s.get("AWS_PROFILE").empty();
    if (!prof.error.empty()) {
      p.configured = true;
      p.fetch = [e = prof.error] { return Result<TimedCredentials>(not_answered(e)); };
    } else if (!key.empty()) {
      p.configured = true;
      p.name += " (static keys)";
      TimedCredentials c;
      c.keys.access_key = key;
      c.keys.secret_key = prof.get("aws_secret_access_key");
      c.keys.session_token = prof.get("aws_session_token");
      p.fetch = [c] {
        if (c.keys.secret_key.empty())
          return Result<TimedCredentials>(not_answered("aws_access_key_id without aws_secret_access_key"));
        return Result<TimedCredentials>(c);
      };
    } else if (!process.empty()) {
      p.configured = true;
      p.name += " (credential_process)";
      p.fetch = [&s, process] { return run_credential_process(s, process); };
    } else if (!role.empty() && !token_file.empty()) {
      p.configured = true;
      p.name += " (web identity)";
      std::string session = prof.get("role_session_name");
      p.fetch = [&s, role, token_file, session] { return assume_role_with_web_identity(s, role, token_file, session); };
    } else if (!role.empty()) {
      p.configured = true;
      p.fetch = [] {
        return Result<TimedCredentials>(not_answered(
            "role_arn without web_identity_token_file (source_profile/credential_source role chaining is not "
            "supported)"));
      };
    } else if (!prof.get("sso_session").empty() || !prof.get("sso_start_url").empty()) {
      p.configured = true;
      p.fetch = [] { return Result<TimedCredentials>(not_answered("AWS SSO profiles are not supported")); };
    } else if (explicit_profile && !prof.found) {
      p.configured = true;
      p.fetch = [files = prof.files, name = prof.name] {
        return Result<TimedCredentials>(not_answered("no profile '" + name + "' in " + files));
      };
    } else {
      p.why_not = prof.found ? "no credentials in it" : "no such profile in " + prof.files;
    }
    chain.push_back(std::move(p));
  }
  {  // 3. web identity from the environment
    CredentialProvider p;
    p.name = "web-identity";
    std::string role = s.get("AWS_ROLE_ARN"), token_file = s.get("AWS_WEB_IDENTITY_TOKEN_FILE"),
                session = s.get("AWS_ROLE_SESSION_NAME");
    if (!role.empty() && !token_file.empty()) {
      p.configured = true;
      p.fetch = [&s, role, token_file, session] { return assume_role_with_web_identity(s, role, token_file, session); };
    } else if (!token_file.empty()) {
      p.configured = true;
      p.fetch = [] { return Result<TimedCredentials>(not_answered("AWS_WEB_IDENTITY_TOKEN_FILE without AWS_ROLE_ARN")); };
    } else {
      p.why_not = "AWS_ROLE_ARN/AWS_WEB_IDENTITY_TOKEN_FILE not set";
    }
    chain.push_back(std::move(p));
  }
  {  // 4. container
    CredentialProvider p;
    p.name = "container";
    std::string url = container_credentials_url(s);
    if (!url.empty()) {
      p.configured = true;
      if (!container_host_allowed(url)) {
        p.fetch = [] {
          return Result<TimedCredentials>(not_answered(
              "AWS_CONTAINER_CREDENTIALS_FULL_URI: plain http is only allowed to loopback, 169.254.170.2, "
              "169.254.170.23 or fd00:ec2::23 (use https)"));
        };
      } else {
        p.fetch = [&s, url] { return fetch_container(s, url); };
      }
    } else {
      p.why_not = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI not set";
    }
    chain.push_back(std::move(p));
  }
  {  // 5. IMDSv2
    CredentialProvider p;
    p.name = "imds";
    if (is_true(s.get("AWS_EC2_METADATA_DISABLED"))) {
      p.why_not = "AWS_EC2_METADATA_DISABLED=true";
    } else {
      p.configured = true;
      p.fetch = [&s] { return fetch_imds(s); };
    }
    chain.push_back(std::move(p));
  }
  return chain;
}

Result<ChainAnswer> resolve_chain(const CredentialSettings& s) {
  std::string why = "no AWS credentials found:";
  for (CredentialProvider& p : build_chain(s)) {
    if (!p.configured) {
      why += " " + p.name + ": " + p.why_not + ";";
      continue;
    }
    auto c = p.fetch();
    if (c) return ChainAnswer{std::move(p), std::move(*c)};
    why += " " + p.name + ": " + c.error().message + ";";
  }
  why += " (a public bucket: set AWS_NO_SIGN_REQUEST=true)";
  return make_error(EACCES, std::move(why));
}

}  // namespace mf
