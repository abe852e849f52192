// The AWS default credential chain, without the SDK (docs/DESIGN.md "Credentials"): libcurl for HTTP,
// RapidJSON for the container/IMDS/credential_process JSON, pugixml for STS's XML. Order, first answer wins:
//
//   1. environment  AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN
//   2. profile      AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials) and AWS_CONFIG_FILE (~/.aws/config),
//                   AWS_PROFILE (default "default"): static keys, credential_process, or
//                   role_arn + web_identity_token_file
//   3. web-identity AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE [+ AWS_ROLE_SESSION_NAME]: STS
//                   AssumeRoleWithWebIdentity, an unsigned form POST to https://sts.REGION.amazonaws.com or
//                   AWS_ENDPOINT_URL_STS; the token file is read again at every refresh (Kubernetes rotates it)
//   4. container    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (http://169.254.170.2 + it, ECS) or
//                   AWS_CONTAINER_CREDENTIALS_FULL_URI with AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE) (EKS
//                   Pod Identity). Plain http only to loopback, 169.254.170.2, 169.254.170.23, fd00:ec2::23.
//   5. imds         IMDSv2 at AWS_EC2_METADATA_SERVICE_ENDPOINT (http://169.254.169.254): PUT a token, GET
//                   the role name, GET its credentials; AWS_EC2_METADATA_DISABLED=true skips it. Each
//                   request is bounded by MODELFETCH_IMDS_TIMEOUT_MS (1000), connect included, no retry:
//                   a machine off EC2 gives up in about a second.
//
// Skipped entirely with AWS_NO_SIGN_REQUEST=true or MODELFETCH_NO_SIGN=1 (requests go unsigned).
//
// Nothing here reads the environment: RemoteConfig::from_env snapshots the variables into
// CredentialSettings. Fetching blocks (HTTP, a child process): it runs on the CredentialManager's own thread,
// never on a caller's. Messages name providers, files, variables and HTTP statuses, never a key, secret,
// token or the output of credential_process.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/remote/aws_profile.hpp"
#include "core/util/result.hpp"

namespace mf {

struct Credentials {
  std::string access_key;
  std::string secret_key;     // never logged
  std::string session_token;  // never logged; sent as x-amz-security-token
  bool present() const { return !access_key.empty(); }
};

using SystemClock = std::chrono::system_clock;

struct TimedCredentials {
  Credentials keys;
  std::optional<SystemClock::time_point> expiration;  // none: static keys
};

struct CredentialSettings {
  std::map<std::string, std::string, std::less<>> env;  // the variables the chain reads (AWS_*, MODELFETCH_*)
  AwsProfile profile;                                   // loaded by from_env (region/endpoint need it early)
  std::string region = "us-east-1";                     // for the regional STS endpoint
  std::string ca_bundle;
  bool insecure_tls = false;
  uint64_t imds_timeout_ms = 1000;
  uint64_t container_timeout_ms = 2000;
  uint64_t sts_timeout_ms = 10000;
  uint64_t process_timeout_ms = 30000;
  std::string get(std::string_view name) const {
    auto it = env.find(name);
    return it == env.end() ? std::string() : it->second;
  }
};

// The environment variables CredentialSettings::env holds.
const std::vector<std::string>& credential_variables();

// One provider of the chain.
struct CredentialProvider {
  std::string name;        // "environment", "profile NAME (credential_process)", "web-identity", ...
  bool configured = false;  // false: skipped; `why_not` says which variable is missing
  std::string why_not;
  std::function<Result<TimedCredentials>()> fetch;  // blocking; re-run for each refresh
};

std::vector<CredentialProvider> build_chain(const CredentialSettings& settings);

struct ChainAnswer {
  CredentialProvider provider;
  TimedCredentials credentials;
};

// Runs the chain: the first configured provider that answers. When none does, EACCES with one line naming
// each provider and why it did not answer.
Result<ChainAnswer> resolve_chain(const CredentialSettings& settings);

// Parsers, exposed for unit tests.
// "2026-01-02T03:04:05Z", with optional fractional seconds, "Z" or "+00:00".
std::optional<SystemClock::time_point> parse_iso8601(std::string_view text);
// credential_process output (JSON, Version 1).
Result<TimedCredentials> parse_process_json(std::string_view json);
// The container endpoint and IMDS role JSON (AccessKeyId, SecretAccessKey, Token, Expiration).
Result<TimedCredentials> parse_metadata_json(std::string_view json, std::string_view source);
// STS AssumeRoleWithWebIdentity response (or its ErrorResponse: EACCES naming the Code).
Result<TimedCredentials> parse_sts_response(std::string_view xml, long http_status);
// The container endpoint: http://169.254.170.2 + AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (ECS; it wins), else
// AWS_CONTAINER_CREDENTIALS_FULL_URI; "" when neither is set.
std::string container_credentials_url(const CredentialSettings& settings);
// Whether plain http to this URL's host is allowed for container credentials.
bool container_host_allowed(std::string_view url);

// curl_global_init, once per process for the client and the providers alike (it is not thread-safe itself).
bool curl_global_ready();

// Blocking HTTP exchange for the providers (libcurl easy handle, no proxy for metadata endpoints).
struct HttpExchange {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value" (may carry tokens: never logged)
  std::string body;
  uint64_t timeout_ms = 1000;
  bool no_proxy = false;
  std::string ca_bundle;
  bool insecure_tls = false;
};
struct HttpAnswer {
  long status = 0;
  std::string body;
};
// Errors are transport failures (curl's message, never the URL's query or a header); any HTTP status is an
// answer.
Result<HttpAnswer> http_exchange(const HttpExchange& x);

}  // namespace mf
