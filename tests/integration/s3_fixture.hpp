// Test-only helpers for the integration suite: the server's variables, and a PUT to upload fixtures (the
// client itself is read-only). PUT is signed by curl's SigV4 like the client's requests.
#pragma once

#include <curl/curl.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>

#include "core/remote/client.hpp"
#include "core/remote/request.hpp"

namespace mf::test {

inline std::string env_or(const char* name, const char* fallback = "") {
  const char* v = std::getenv(name);  // test code: the library never calls getenv
  return v ? v : fallback;
}

using Vars = std::map<std::string, std::string, std::less<>>;

inline Vars s3_vars(const std::string& secret_override = "") {
  return Vars{{"AWS_ENDPOINT_URL", env_or("MODELFETCH_TEST_ENDPOINT")},
              {"AWS_ACCESS_KEY_ID", env_or("MODELFETCH_TEST_KEY")},
              {"AWS_SECRET_ACCESS_KEY", secret_override.empty() ? env_or("MODELFETCH_TEST_SECRET") : secret_override},
              {"MODELFETCH_RETRY_BASE_MS", "10"}};
}

inline std::unique_ptr<Client> s3_client(Vars vars) {
  auto cfg = RemoteConfig::from_env(map_env(std::move(vars)));
  if (!cfg) return nullptr;
  auto url = parse_remote_url("s3://" + env_or("MODELFETCH_TEST_BUCKET") + "/");
  if (!url) return nullptr;
  auto c = make_client(*url, *cfg);
  return c ? std::move(*c) : nullptr;
}

// A prefix unique to this run, so reruns against the same server data never see old objects.
inline const std::string& run_prefix() {
  static const std::string p = [] {
    std::random_device rd;
    return "it-" + std::to_string(rd()) + "/";
  }();
  return p;
}

inline std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(g());
  return s;
}

// PUTs `data` at `key`; returns the HTTP status (0 on a curl error).
class Uploader {
 public:
  Uploader() : easy_(curl_easy_init()) {}
  ~Uploader() { curl_easy_cleanup(easy_); }
  long put(const std::string& key, const std::string& data) {
    auto cfg = RemoteConfig::from_env(map_env(s3_vars()));
    auto url = parse_remote_url("s3://" + env_or("MODELFETCH_TEST_BUCKET") + "/");
    std::string target = object_url(*url, *cfg, key);
    curl_easy_reset(easy_);
    curl_slist* h = curl_slist_append(nullptr, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    // No "Expect:" override: curl 7.88 would sign the empty header and the server would disagree.
    h = curl_slist_append(h, "Content-Type: application/octet-stream");
    std::string sig = sigv4_param(*url, *cfg);
    curl_easy_setopt(easy_, CURLOPT_URL, target.c_str());
    curl_easy_setopt(easy_, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, data.data());
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(data.size()));
    curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(easy_, CURLOPT_AWS_SIGV4, sig.c_str());
    curl_easy_setopt(easy_, CURLOPT_USERNAME, cfg->credentials.access_key.c_str());
    curl_easy_setopt(easy_, CURLOPT_PASSWORD, cfg->credentials.secret_key.c_str());
    curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, +[](char*, size_t s, size_t n, void*) { return s * n; });
    CURLcode rc = curl_easy_perform(easy_);
    curl_slist_free_all(h);
    long status = 0;
    if (rc == CURLE_OK) curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &status);
    return status;
  }

 private:
  CURL* easy_;
};

}  // namespace mf::test
