#include <doctest/doctest.h>

#include "core/remote/config.hpp"

using namespace mf;

TEST_CASE("defaults with an empty environment: unsigned, us-east-1, virtual-hosted") {
  auto c = RemoteConfig::from_env(map_env({}));
  REQUIRE(c.ok());
  CHECK_FALSE(c->credentials.present());
  CHECK(c->region == "us-east-1");
  CHECK(c->endpoint.empty());
  CHECK(c->addressing == Addressing::virtual_host);
  CHECK(c->max_connections == 16);
  CHECK(c->retries == 5);
  CHECK_FALSE(c->insecure_tls);  // TLS is verified unless asked otherwise
}

TEST_CASE("MODELFETCH_INSECURE_TLS: 0 or 1") {
  CHECK_FALSE(RemoteConfig::from_env(map_env({{"MODELFETCH_INSECURE_TLS", "0"}}))->insecure_tls);
  CHECK_FALSE(RemoteConfig::from_env(map_env({{"MODELFETCH_INSECURE_TLS", ""}}))->insecure_tls);
  CHECK(RemoteConfig::from_env(map_env({{"MODELFETCH_INSECURE_TLS", "1"}}))->insecure_tls);
}

TEST_CASE("AWS variables") {
  auto c = RemoteConfig::from_env(map_env({{"AWS_ACCESS_KEY_ID", "AKID"},
                                           {"AWS_SECRET_ACCESS_KEY", "sec"},
                                           {"AWS_SESSION_TOKEN", "tok"},
                                           {"AWS_DEFAULT_REGION", "eu-west-1"},
                                           {"AWS_ENDPOINT_URL", "http://127.0.0.1:9000/"},
                                           {"AWS_CA_BUNDLE", "/etc/ca.pem"}}));
  REQUIRE(c.ok());
  CHECK(c->credentials.present());
  CHECK(c->credentials.session_token == "tok");
  CHECK(c->region == "eu-west-1");
  CHECK(c->endpoint == "http://127.0.0.1:9000");
  CHECK(c->addressing == Addressing::path);  // an endpoint means path style
  CHECK(c->ca_bundle == "/etc/ca.pem");
  auto r = RemoteConfig::from_env(map_env({{"AWS_REGION", "ap-south-1"}, {"AWS_DEFAULT_REGION", "eu-west-1"}}));
  CHECK(r->region == "ap-south-1");  // AWS_REGION wins
  auto v = RemoteConfig::from_env(
      map_env({{"AWS_ENDPOINT_URL", "https://s3.example"}, {"MODELFETCH_S3_ADDRESSING", "virtual"}}));
  CHECK(v->addressing == Addressing::virtual_host);
  auto p = RemoteConfig::from_env(map_env({{"MODELFETCH_S3_ADDRESSING", "path"}}));
  CHECK(p->addressing == Addressing::path);
}

TEST_CASE("tuning variables and their bounds") {
  auto c = RemoteConfig::from_env(map_env({{"MODELFETCH_MAX_CONNECTIONS", "8"},
                                           {"MODELFETCH_RETRIES", "0"},
                                           {"MODELFETCH_RETRY_BASE_MS", "50"},
                                           {"MODELFETCH_CONNECT_TIMEOUT_MS", "1000"},
                                           {"MODELFETCH_LOW_SPEED_TIME_S", "3"},
                                           {"MODELFETCH_TIMEOUT_MS", "0"}}));
  REQUIRE(c.ok());
  CHECK(c->max_connections == 8);
  CHECK(c->retries == 0);
  CHECK(c->retry_base_ms == 50);
  CHECK(c->connect_timeout_ms == 1000);
  CHECK(c->low_speed_time_s == 3);
  CHECK(c->timeout_ms == 0);
}

TEST_CASE("bad values: one line naming the variable and the expected form") {
  struct Case {
    const char* var;
    const char* value;
    const char* expected;
  };
  const Case cases[] = {
      {"AWS_REGION", "US East", "expected a region like us-east-1"},
      {"AWS_REGION", "us:east", "expected a region"},
      {"AWS_ENDPOINT_URL", "localhost:9000", "expected an URL like http://HOST:PORT"},
      {"AWS_ENDPOINT_URL", "http://u:p@h", "expected an URL"},
      {"AWS_ENDPOINT_URL", "http://", "expected an URL"},
      {"MODELFETCH_S3_ADDRESSING", "dns", "expected path or virtual"},
      {"MODELFETCH_MAX_CONNECTIONS", "0", "expected an integer from 1 to 256"},
      {"MODELFETCH_MAX_CONNECTIONS", "lots", "expected an integer"},
      {"MODELFETCH_RETRIES", "-1", "expected an integer"},
      {"MODELFETCH_TIMEOUT_MS", "1e3", "expected an integer"},
      {"MODELFETCH_INSECURE_TLS", "yes", "expected 0 or 1"},
      {"MODELFETCH_INSECURE_TLS", "true", "expected 0 or 1"},
      {"MODELFETCH_INSECURE_TLS", "2", "expected 0 or 1"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.var);
    CAPTURE(c.value);
    auto r = RemoteConfig::from_env(map_env({{c.var, c.value}}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == EINVAL);
    CHECK(r.error().message.starts_with(c.var));
    CHECK(r.error().message.find(c.expected) != std::string::npos);
    CHECK(r.error().message.find('\n') == std::string::npos);
  }
}

TEST_CASE("half-set credentials are an error that never quotes the secret") {
  auto a = RemoteConfig::from_env(map_env({{"AWS_SECRET_ACCESS_KEY", "TOPSECRET"}}));
  REQUIRE_FALSE(a.ok());
  CHECK(a.error().message.find("AWS_ACCESS_KEY_ID") != std::string::npos);
  CHECK(a.error().message.find("TOPSECRET") == std::string::npos);
  auto b = RemoteConfig::from_env(map_env({{"AWS_ACCESS_KEY_ID", "AKID"}}));
  REQUIRE_FALSE(b.ok());
  CHECK(b.error().message.find("AWS_SECRET_ACCESS_KEY") != std::string::npos);
  auto t = RemoteConfig::from_env(map_env({{"AWS_SESSION_TOKEN", "TOKENSECRET"}}));
  REQUIRE_FALSE(t.ok());
  CHECK(t.error().message.find("TOKENSECRET") == std::string::npos);
  auto ctl = RemoteConfig::from_env(map_env({{"AWS_ACCESS_KEY_ID", "AKID"}, {"AWS_SECRET_ACCESS_KEY", "x\ny"}}));
  REQUIRE_FALSE(ctl.ok());
  CHECK(ctl.error().message.find("x\ny") == std::string::npos);
}
