// RemoteConfig: everything the client needs besides the URL, read once from the environment through
// EnvLookup (never getenv: the shim reads `environ` itself, tests pass a map).
//
// AWS variables follow the AWS CLI: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (no
// credentials at all → unsigned requests, for public buckets), AWS_REGION then AWS_DEFAULT_REGION (default
// us-east-1), AWS_ENDPOINT_URL (an S3-compatible server: path-style addressing by default, since such servers
// rarely have wildcard DNS), AWS_CA_BUNDLE. MODELFETCH_S3_ADDRESSING=path|virtual overrides the style.
//
// TLS: curl's defaults (peer certificate and host name verified against the system CAs or AWS_CA_BUNDLE);
// MODELFETCH_INSECURE_TLS=1 turns both checks off (a test endpoint with a self-signed certificate); the first
// Client made with it logs one warning per process; any value but 0 or 1 is a configuration error.
//
// Tuning (MODELFETCH_*), with why each default:
//  - MAX_CONNECTIONS 16: parallel HTTP/1.1 keep-alive connections, one range in flight on each. Measured on
//    loopback nginx (docs/DESIGN.md): 8 already saturate two cores; 16 covers the per-connection throughput
//    limit of real S3 (~80-100 MB/s each) up to ~1.5 GB/s; more costs memory (one part buffer each).
//  - RETRIES 5, RETRY_BASE_MS 200: full-jitter backoff ceilings 0.2, 0.4, 0.8, 1.6, 3.2 s: ~6 s worst case,
//    which rides out an S3 503 SlowDown burst or a connection reset without stalling a loader for long.
//  - CONNECT_TIMEOUT_MS 5000: a TCP+TLS handshake to S3 takes tens of ms; 5 s means the host is unreachable.
//  - LOW_SPEED_TIME_S 10: a transfer below 16 KiB/s for 10 s is stalled (a healthy one moves MB/s); abort
//    and retry it on a fresh connection.
//  - TIMEOUT_MS 300000: bound on one request including its retries, so nothing waits forever.
#pragma once

#include <cstdint>
#include <string>

#include "core/remote/credentials.hpp"
#include "core/util/env.hpp"
#include "core/util/result.hpp"

namespace mf {

enum class Addressing { path, virtual_host };

struct RemoteConfig {
  Credentials credentials;  // AWS_ACCESS_KEY_ID/...: used as given when `use_chain` is false
  // from_env sets use_chain (unless AWS_NO_SIGN_REQUEST=true or MODELFETCH_NO_SIGN=1): the client then signs
  // with what the default chain finds (credentials.hpp), refreshed by a CredentialManager. A RemoteConfig
  // built by hand keeps the old rule: `credentials` if present, else unsigned.
  bool use_chain = false;
  bool no_sign = false;  // AWS_NO_SIGN_REQUEST=true / MODELFETCH_NO_SIGN=1
  CredentialSettings credential_settings;
  uint64_t refresh_ahead_s = 300;  // MODELFETCH_CREDENTIAL_REFRESH_AHEAD_S
  std::string region = "us-east-1";
  std::string endpoint;  // empty: AWS (https://s3.REGION.amazonaws.com); else "scheme://host[:port][/path]", no trailing '/'
  Addressing addressing = Addressing::virtual_host;
  std::string ca_bundle;  // empty: the system's
  bool insecure_tls = false;  // MODELFETCH_INSECURE_TLS=1: no peer or host name verification

  uint32_t max_connections = 16;
  uint32_t retries = 5;
  uint64_t retry_base_ms = 200;
  uint64_t retry_max_delay_ms = 20000;  // cap of one backoff delay (and of an honoured Retry-After)
  uint64_t connect_timeout_ms = 5000;
  uint64_t low_speed_time_s = 10;
  uint64_t low_speed_limit = 16384;  // bytes/s under which a transfer counts as stalled
  uint64_t timeout_ms = 300000;      // 0: no overall bound

  static Result<RemoteConfig> from_env(const EnvLookup& env);
};

}  // namespace mf
