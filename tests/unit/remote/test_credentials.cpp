// The AWS default credential chain (core/remote/credentials.hpp, credential_manager.hpp): the shared files'
// parser, the JSON/XML answers, each provider against a loopback fake (STS, container endpoint, IMDSv2),
// precedence, credential_process failures, token file rotation, refresh and the client's one retry after
// an expired-token refusal. No test leaves loopback: IMDS is always pointed at 127.0.0.1 or disabled.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include "core/remote/aws_profile.hpp"
#include "core/remote/client.hpp"
#include "core/remote/config.hpp"
#include "core/remote/credential_manager.hpp"
#include "core/remote/credentials.hpp"
#include "core/remote/subprocess.hpp"
#include "tests/unit/remote/fake_server.hpp"

using namespace mf;
using mf::testing::FakeServer;
using Vars = std::map<std::string, std::string, std::less<>>;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/mf-creds-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string write(const std::string& name, const std::string& text, mode_t mode = 0600) const {
    std::string p = path + "/" + name;
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
    return p;
  }
};

std::string iso_in(std::chrono::seconds s) {
  std::time_t t = SystemClock::to_time_t(SystemClock::now() + s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string http(const std::string& status, const std::string& body, const std::string& headers = "") {
  return "HTTP/1.1 " + status + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + headers + "\r\n" + body;
}

std::string creds_json(const std::string& key, const std::string& token, std::chrono::seconds life) {
  return "{\"AccessKeyId\":\"" + key + "\",\"SecretAccessKey\":\"SECRET-" + key + "\",\"Token\":\"" + token +
         "\",\"Expiration\":\"" + iso_in(life) + "\"}";
}

std::string sts_xml(const std::string& key, const std::string& token, std::chrono::seconds life) {
  return "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
         "<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>" + key +
         "</AccessKeyId><SecretAccessKey>SECRET-" + key + "</SecretAccessKey><SessionToken>" + token +
         "</SessionToken><Expiration>" + iso_in(life) +
         "</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
}

// Settings as from_env makes them, for these variables only (IMDS off unless the test points it somewhere).
CredentialSettings settings(Vars vars) {
  vars.try_emplace("AWS_EC2_METADATA_DISABLED", "true");
  vars.try_emplace("AWS_REGION", "us-east-1");
  auto c = RemoteConfig::from_env(map_env(vars));
  REQUIRE(c.ok());
  return c->credential_settings;
}

std::string url_of(const FakeServer& s) { return "http://127.0.0.1:" + std::to_string(s.port()); }

}  // namespace

TEST_CASE("ini: sections, comments, nested blocks, keys case-insensitive") {
  auto ini = parse_ini("# c\n[default]\nAWS_Access_Key_ID = AK\n; c\n\n[profile dev]\nregion=eu-west-1\n"
                       "s3 =\n  addressing_style = path\nx = y\n",
                       "f");
  REQUIRE(ini.ok());
  CHECK(ini->at("default").at("aws_access_key_id") == "AK");
  CHECK(ini->at("profile dev").at("region") == "eu-west-1");
  CHECK(ini->at("profile dev").at("s3.addressing_style") == "path");
  CHECK(ini->at("profile dev").at("x") == "y");
}

TEST_CASE("ini: a malformed line names the file and line, never the text") {
  auto a = parse_ini("[default]\naws_secret_access_key SUPERSECRET\n", "/x/credentials");
  REQUIRE_FALSE(a.ok());
  CHECK(a.error().message == "/x/credentials line 2: expected 'key = value' or '[section]'");
  CHECK_FALSE(parse_ini("[default\n", "f").ok());
  CHECK_FALSE(parse_ini("k = v\n", "f").ok());
}

TEST_CASE("profiles: credentials file over config file; [profile NAME] in config; missing files are fine") {
  TempDir d;
  std::string cr = d.write("credentials", "[dev]\naws_access_key_id = FROMCREDS\n[default]\naws_access_key_id = D\n");
  std::string cf = d.write("config", "[profile dev]\naws_access_key_id = FROMCONFIG\nregion = ap-south-1\n"
                                     "[dev]\nregion = ignored\n[default]\nregion = eu-west-2\n");
  auto dev = load_aws_profile(cr, cf, "dev");
  CHECK(dev.found);
  CHECK(dev.get("aws_access_key_id") == "FROMCREDS");
  CHECK(dev.get("region") == "ap-south-1");
  CHECK(load_aws_profile(cr, cf, "default").get("region") == "eu-west-2");
  auto none = load_aws_profile(d.path + "/nope", d.path + "/nope2", "default");
  CHECK_FALSE(none.found);
  CHECK(none.error.empty());
  // region and endpoint_url from the profile reach the config; the environment wins over them
  auto c = RemoteConfig::from_env(map_env({{"AWS_SHARED_CREDENTIALS_FILE", cr}, {"AWS_CONFIG_FILE", cf},
                                           {"AWS_PROFILE", "dev"}}));
  REQUIRE(c.ok());
  CHECK(c->region == "ap-south-1");
  auto e = RemoteConfig::from_env(map_env({{"AWS_SHARED_CREDENTIALS_FILE", cr}, {"AWS_CONFIG_FILE", cf},
                                           {"AWS_PROFILE", "dev"}, {"AWS_REGION", "us-west-2"}}));
  CHECK(e->region == "us-west-2");
  std::string cf2 = d.write("config2", "[default]\nendpoint_url = http://127.0.0.1:9/\n");
  auto f = RemoteConfig::from_env(map_env({{"AWS_CONFIG_FILE", cf2}}));
  REQUIRE(f.ok());
  CHECK(f->endpoint == "http://127.0.0.1:9");
  CHECK(f->addressing == Addressing::path);
}

TEST_CASE("iso8601") {
  auto a = parse_iso8601("2026-01-02T03:04:05Z");
  REQUIRE(a);
  CHECK(SystemClock::to_time_t(*a) == 1767323045);
  CHECK(parse_iso8601("2026-01-02T03:04:05.123Z") == a);
  CHECK(parse_iso8601("2026-01-02T04:04:05+01:00") == a);
  CHECK_FALSE(parse_iso8601("2026-01-02"));
  CHECK_FALSE(parse_iso8601("2026-13-02T03:04:05Z"));
  CHECK_FALSE(parse_iso8601("2026-01-02T03:04:05"));
}

TEST_CASE("credential_process JSON, container/IMDS JSON and STS XML") {
  auto p = parse_process_json(R"({"Version":1,"AccessKeyId":"AK","SecretAccessKey":"SK","SessionToken":"T",)"
                              R"("Expiration":"2030-01-01T00:00:00Z"})");
  REQUIRE(p.ok());
  CHECK(p->keys.access_key == "AK");
  CHECK(p->keys.session_token == "T");
  CHECK(p->expiration.has_value());
  auto nov = parse_process_json(R"({"AccessKeyId":"AK","SecretAccessKey":"SK"})");
  CHECK_FALSE(nov.ok());
  CHECK(nov.error().message.find("Version") != std::string::npos);
  auto bad = parse_process_json("AK SUPERSECRET");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("SUPERSECRET") == std::string::npos);
  CHECK_FALSE(parse_process_json(R"({"Version":1,"AccessKeyId":"AK"})").ok());
  CHECK_FALSE(parse_process_json(R"({"Version":1,"AccessKeyId":"AK","SecretAccessKey":"S","Expiration":"soon"})").ok());
  auto m = parse_metadata_json(creds_json("AK", "TOK", std::chrono::seconds(60)), "IMDS");
  REQUIRE(m.ok());
  CHECK(m->keys.session_token == "TOK");
  CHECK_FALSE(parse_metadata_json(R"({"Code":"Failure"})", "IMDS").ok());
  auto s = parse_sts_response(sts_xml("ASIA", "STOK", std::chrono::seconds(60)), 200);
  REQUIRE(s.ok());
  CHECK(s->keys.access_key == "ASIA");
  CHECK(s->keys.session_token == "STOK");
  auto e = parse_sts_response("<ErrorResponse><Error><Code>InvalidIdentityToken</Code><Message>tok SECRET</Message>"
                              "</Error></ErrorResponse>", 400);
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().message.find("InvalidIdentityToken") != std::string::npos);
  CHECK(e.error().message.find("SECRET") == std::string::npos);
}

TEST_CASE("container endpoint: plain http only to loopback and the documented link-local hosts") {
  CHECK(container_host_allowed("http://127.0.0.1:8080/creds"));
  CHECK(container_host_allowed("http://127.1.2.3/creds"));
  CHECK(container_host_allowed("http://localhost/creds"));
  CHECK(container_host_allowed("http://[::1]:80/creds"));
  CHECK(container_host_allowed("http://169.254.170.2/v2/credentials/x"));
  CHECK(container_host_allowed("http://169.254.170.23/v1/credentials"));
  CHECK(container_host_allowed("http://[fd00:ec2::23]/v1/credentials"));
  CHECK(container_host_allowed("https://example.com/creds"));
  CHECK_FALSE(container_host_allowed("http://example.com/creds"));
  CHECK_FALSE(container_host_allowed("http://127.0.0.1.example.com/creds"));
  CHECK_FALSE(container_host_allowed("http://10.0.0.1/creds"));
  CHECK_FALSE(container_host_allowed("ftp://127.0.0.1/creds"));
  // ECS's relative URI goes to 169.254.170.2 and wins over a full URI (built, never contacted here)
  CHECK(container_credentials_url(settings({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc"},
                                            {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1/x"}})) ==
        "http://169.254.170.2/v2/credentials/abc");
  CHECK(container_credentials_url(settings({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1/x"}})) ==
        "http://127.0.0.1/x");
  CHECK(container_credentials_url(settings({})).empty());
  auto r = resolve_chain(settings({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.1/creds"}}));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("plain http is only allowed") != std::string::npos);
}

TEST_CASE("precedence: environment, then profile, then web identity, then container, then IMDS") {
  TempDir d;
  FakeServer sts([](const std::string&, int) { return http("200 OK", sts_xml("FROMSTS", "t", std::chrono::seconds(900))); });
  FakeServer container([](const std::string&, int) {
    return http("200 OK", creds_json("FROMCONTAINER", "t", std::chrono::seconds(900)));
  });
  FakeServer imds([](const std::string& req, int) {
    if (req.starts_with("PUT /latest/api/token")) return http("200 OK", "IMDSTOKEN");
    if (req.find("security-credentials/ HTTP") != std::string::npos) return http("200 OK", "role");
    return http("200 OK", creds_json("FROMIMDS", "t", std::chrono::seconds(900)));
  });
  std::string token = d.write("token", "jwt\n");
  std::string creds = d.write("credentials", "[default]\naws_access_key_id = FROMPROFILE\naws_secret_access_key = s\n");
  Vars all = {{"AWS_ACCESS_KEY_ID", "FROMENV"}, {"AWS_SECRET_ACCESS_KEY", "s"},
              {"AWS_SHARED_CREDENTIALS_FILE", creds}, {"AWS_CONFIG_FILE", d.path + "/none"},
              {"AWS_ROLE_ARN", "arn:aws:iam::1:role/r"}, {"AWS_WEB_IDENTITY_TOKEN_FILE", token},
              {"AWS_ENDPOINT_URL_STS", url_of(sts)},
              {"AWS_CONTAINER_CREDENTIALS_FULL_URI", url_of(container) + "/creds"},
              {"AWS_EC2_METADATA_SERVICE_ENDPOINT", url_of(imds)}, {"AWS_EC2_METADATA_DISABLED", "false"}};
  const char* order[][2] = {{"AWS_ACCESS_KEY_ID", "FROMENV"},
                            {"AWS_SHARED_CREDENTIALS_FILE", "FROMPROFILE"},
                            {"AWS_ROLE_ARN", "FROMSTS"},
                            {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "FROMCONTAINER"},
                            {"AWS_EC2_METADATA_SERVICE_ENDPOINT", "FROMIMDS"}};
  Vars vars = all;
  for (auto& [var, want] : order) {
    CAPTURE(want);
    auto r = resolve_chain(settings(vars));
    REQUIRE(r.ok());
    CHECK(r->credentials.keys.access_key == want);
    vars.erase(var);  // take this provider away: the next one answers
    if (std::string(var) == "AWS_ACCESS_KEY_ID") vars.erase("AWS_SECRET_ACCESS_KEY");
    if (std::string(var) == "AWS_EC2_METADATA_SERVICE_ENDPOINT") vars["AWS_EC2_METADATA_DISABLED"] = "true";
  }
  auto none = resolve_chain(settings(vars));
  REQUIRE_FALSE(none.ok());
}

TEST_CASE("each provider's answer: names and the requests they make") {
  TempDir d;
  SUBCASE("profile static keys with a session token") {
    std::string cr = d.write("c", "[p]\naws_access_key_id = AK\naws_secret_access_key = SK\naws_session_token = ST\n");
    auto r = resolve_chain(settings({{"AWS_SHARED_CREDENTIALS_FILE", cr}, {"AWS_PROFILE", "p"}}));
    REQUIRE(r.ok());
    CHECK(r->provider.name == "profile p (static keys)");
    CHECK(r->credentials.keys.session_token == "ST");
    CHECK_FALSE(r->credentials.expiration);
  }
  SUBCASE("profile credential_process") {
    std::string script = d.write("proc.sh", "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"PROCAK\", "
                                            "\"SecretAccessKey\": \"PROCSK\", \"SessionToken\": \"PT\", "
                                            "\"Expiration\": \"2099-01-01T00:00:00Z\"}'\n", 0700);
    std::string cf = d.write("config", "[profile proc]\ncredential_process = " + script + " --arg\n");
    auto r = resolve_chain(settings({{"AWS_CONFIG_FILE", cf}, {"AWS_PROFILE", "proc"}}));
    REQUIRE(r.ok());
    CHECK(r->provider.name == "profile proc (credential_process)");
    CHECK(r->credentials.keys.access_key == "PROCAK");
    CHECK(r->credentials.expiration.has_value());
  }
  SUBCASE("profile web identity") {
    std::string got;
    FakeServer sts([&](const std::string& req, int) {
      got = req;
      return http("200 OK", sts_xml("PROFSTS", "t", std::chrono::seconds(900)));
    });
    std::string token = d.write("token", "PROFILEJWT");
    std::string cf = d.write("config", "[default]\nrole_arn = arn:aws:iam::1:role/p\nweb_identity_token_file = " +
                                           token + "\nrole_session_name = sess\n");
    auto r = resolve_chain(settings({{"AWS_CONFIG_FILE", cf}, {"AWS_ENDPOINT_URL_STS", url_of(sts)}}));
    REQUIRE(r.ok());
    CHECK(r->provider.name == "profile default (web identity)");
    CHECK(got.find("WebIdentityToken=PROFILEJWT") != std::string::npos);
    CHECK(got.find("RoleSessionName=sess") != std::string::npos);
  }
  SUBCASE("web identity: an unsigned form POST") {
    std::string got;
    FakeServer sts([&](const std::string& req, int) {
      got = req;
      return http("200 OK", sts_xml("ENVSTS", "t", std::chrono::seconds(900)));
    });
    std::string token = d.write("token", "ENVJWT\n");
    auto r = resolve_chain(settings({{"AWS_ROLE_ARN", "arn:aws:iam::123:role/x"},
                                     {"AWS_WEB_IDENTITY_TOKEN_FILE", token},
                                     {"AWS_ENDPOINT_URL_STS", url_of(sts)}}));
    REQUIRE(r.ok());
    CHECK(r->provider.name == "web-identity");
    CHECK(got.starts_with("POST / HTTP/1.1"));
    CHECK(got.find("Authorization") == std::string::npos);
    CHECK(got.find("Action=AssumeRoleWithWebIdentity") != std::string::npos);
    CHECK(got.find("RoleArn=arn%3Aaws%3Aiam%3A%3A123%3Arole%2Fx") != std::string::npos);
    CHECK(got.find("WebIdentityToken=ENVJWT&") == std::string::npos);  // it is the last field
    CHECK(got.ends_with("WebIdentityToken=ENVJWT"));
    CHECK(got.find("RoleSessionName=modelfetch-") != std::string::npos);
  }
  SUBCASE("container: full URI with a token file (read first) or a token") {
    std::string got;
    FakeServer c([&](const std::string& req, int) {
      got = req;
      return http("200 OK", creds_json("CONT", "t", std::chrono::seconds(900)));
    });
    std::string tf = d.write("auth", "PODTOKEN\n");
    auto r = resolve_chain(settings({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", url_of(c) + "/v1/credentials"},
                                     {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tf},
                                     {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "IGNORED"}}));
    REQUIRE(r.ok());
    CHECK(r->provider.name == "container");
    CHECK(got.starts_with("GET /v1/credentials HTTP/1.1"));
    CHECK(got.find("Authorization: PODTOKEN\r\n") != std::string::npos);
    auto t = resolve_chain(settings({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", url_of(c) + "/v1/credentials"},
                                     {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "ENVTOKEN"}}));
    REQUIRE(t.ok());
    CHECK(got.find("Authorization: ENVTOKEN\r\n") != std::string::npos);
  }
  SUBCASE("IMDSv2: token, role, credentials") {
    std::vector<std::string> got;
    FakeServer imds([&](const std::string& req, int) {
      got.push_back(req);
      if (req.starts_with("PUT /latest/api/token HTTP/1.1") &&
          req.find("X-aws-ec2-metadata-token-ttl-seconds: 21600") != std::string::npos)
        return http("200 OK", "SESSIONTOKEN42");
      if (req.find("X-aws-ec2-metadata-token: SESSIONTOKEN42") == std::string::npos) return http("401 Unauthorized", "");
      if (req.starts_with("GET /latest/meta-data/iam/security-credentials/ HTTP")) return http("200 OK", "my-role\n");
      if (req.starts_with("GET /latest/meta-data/iam/security-credentials/my-role HTTP"))
        return http("200 OK", R"({"Code":"Success","Type":"AWS-HMAC",)" + creds_json("IMDSAK", "t", std::chrono::seconds(900)).substr(1));
      return http("404 Not Found", "");
    });
    auto r = resolve_chain(settings({{"AWS_EC2_METADATA_DISABLED", "false"},
                                     {"AWS_EC2_METADATA_SERVICE_ENDPOINT", url_of(imds) + "/"}}));
    REQUIRE(r.ok());
    CHECK(r->provider.name == "imds");
    CHECK(r->credentials.keys.access_key == "IMDSAK");
    CHECK(got.size() == 3);
  }
}

TEST_CASE("credential_process that fails, hangs or prints bad JSON: clear errors, no output quoted") {
  TempDir d;
  auto run = [&](const std::string& body, Vars extra = {}) {
    std::string script = d.write("p.sh", "#!/bin/sh\n" + body, 0700);
    std::string cf = d.write("config", "[default]\ncredential_process = " + script + "\n");
    extra["AWS_CONFIG_FILE"] = cf;
    return resolve_chain(settings(extra));
  };
  auto fails = run("echo SUPERSECRET; exit 3\n");
  REQUIRE_FALSE(fails.ok());
  CHECK(fails.error().message.find("credential_process exited with status 3") != std::string::npos);
  CHECK(fails.error().message.find("SUPERSECRET") == std::string::npos);
  auto t0 = std::chrono::steady_clock::now();
  auto hangs = run("sleep 10\n", {{"MODELFETCH_CREDENTIAL_PROCESS_TIMEOUT_MS", "300"}});
  auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(hangs.ok());
  CHECK(hangs.error().message.find("did not finish within 300 ms") != std::string::npos);
  CHECK(took < std::chrono::seconds(3));
  auto bad = run("echo '{\"Version\": 1, \"AccessKeyId\": \"AK\", \"SecretAccessKey\": SUPERSECRET'\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("not a JSON object") != std::string::npos);
  CHECK(bad.error().message.find("SUPERSECRET") == std::string::npos);
}

TEST_CASE("a malformed profile file is reported by the chain, with file and line; others still answer") {
  TempDir d;
  std::string cr = d.write("credentials", "[default]\naws_access_key_id = AK\nthis line is wrong SECRETLINE\n");
  auto r = resolve_chain(settings({{"AWS_SHARED_CREDENTIALS_FILE", cr}}));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find(cr + " line 3") != std::string::npos);
  CHECK(r.error().message.find("SECRETLINE") == std::string::npos);
  auto env = resolve_chain(settings({{"AWS_SHARED_CREDENTIALS_FILE", cr}, {"AWS_ACCESS_KEY_ID", "E"},
                                     {"AWS_SECRET_ACCESS_KEY", "S"}}));
  REQUIRE(env.ok());
  CHECK(env->provider.name == "environment");
  std::string good = d.write("good", "[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n");
  auto missing = resolve_chain(settings({{"AWS_SHARED_CREDENTIALS_FILE", good}, {"AWS_PROFILE", "nope"}}));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("no profile 'nope'") != std::string::npos);
}

TEST_CASE("no provider answers: one line naming each, no secret; IMDS unreachable gives up within 2 s") {
  TempDir d;
  // A listening socket that never accepts: connections complete in the kernel, no answer ever comes.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::listen(fd, 1);
  std::string token = d.write("token", "SECRETJWT");
  FakeServer sts([](const std::string&, int) {
    return http("403 Forbidden", "<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>");
  });
  auto t0 = std::chrono::steady_clock::now();
  auto r = resolve_chain(settings({{"AWS_EC2_METADATA_DISABLED", "false"},
                                   {"AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port))},
                                   {"AWS_ROLE_ARN", "arn:aws:iam::1:role/r"}, {"AWS_WEB_IDENTITY_TOKEN_FILE", token},
                                   {"AWS_ENDPOINT_URL_STS", url_of(sts)},
                                   {"AWS_SHARED_CREDENTIALS_FILE", d.path + "/none"},
                                   {"AWS_CONFIG_FILE", d.path + "/none"}}));
  auto took = std::chrono::steady_clock::now() - t0;
  ::close(fd);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == EACCES);
  CHECK(took < std::chrono::seconds(2));
  const std::string& m = r.error().message;
  CAPTURE(m);
  CHECK(m.find('\n') == std::string::npos);
  for (const char* part : {"environment: AWS_ACCESS_KEY_ID", "profile default:", "web-identity: STS",
                           "AccessDenied", "container: AWS_CONTAINER", "imds: http://127.0.0.1:",
                           "AWS_NO_SIGN_REQUEST"})
    CHECK(m.find(part) != std::string::npos);
  CHECK(m.find("SECRETJWT") == std::string::npos);
}

TEST_CASE("web identity: the token file is read again at each refresh (Kubernetes rotates it)") {
  TempDir d;
  std::vector<std::string> tokens;
  std::mutex mu;
  FakeServer sts([&](const std::string& req, int n) {
    std::lock_guard l(mu);
    tokens.push_back(req.substr(req.find("WebIdentityToken=") + 17));
    return http("200 OK", sts_xml("AK" + std::to_string(n), "T" + std::to_string(n), std::chrono::seconds(2)));
  });
  std::string token = d.write("token", "FIRSTJWT");
  auto s = settings({{"AWS_ROLE_ARN", "arn:aws:iam::1:role/r"}, {"AWS_WEB_IDENTITY_TOKEN_FILE", token},
                     {"AWS_ENDPOINT_URL_STS", url_of(sts)}});
  CredentialManager m(s, 300, nullptr);
  m.start();
  for (int i = 0; i < 100 && m.current().state == CredentialManager::State::resolving; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(m.current().state == CredentialManager::State::ready);
  CHECK(m.source() == "web-identity");
  uint64_t g = m.current().generation;
  d.write("token", "SECONDJWT");  // rotated; the 2 s credentials are refreshed a second before they expire
  for (int i = 0; i < 150 && m.current().generation == g; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(m.current().generation > g);
  std::lock_guard l(mu);
  REQUIRE(tokens.size() >= 2);
  CHECK(tokens[0] == "FIRSTJWT");
  CHECK(tokens[1] == "SECONDJWT");
}

TEST_CASE("manager: static credentials are never refreshed; reject() refreshes temporary ones at once") {
  CredentialManager st(settings({{"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SECRET_ACCESS_KEY", "SK"}}), 300, nullptr);
  st.start();
  for (int i = 0; i < 100 && st.current().state == CredentialManager::State::resolving; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(st.current().state == CredentialManager::State::ready);
  CHECK_FALSE(st.reject(st.current().generation));

  std::atomic<int> served{0};
  FakeServer c([&](const std::string&, int n) {
    served++;
    return http("200 OK", creds_json("AK" + std::to_string(n), "T", std::chrono::seconds(3600)));
  });
  CredentialManager m(settings({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", url_of(c)}}), 300, nullptr);
  m.start();
  for (int i = 0; i < 100 && m.current().state == CredentialManager::State::resolving; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(m.current().state == CredentialManager::State::ready);
  CHECK(m.current().credentials->keys.access_key == "AK0");
  uint64_t g = m.current().generation;
  CHECK(m.reject(g));
  for (int i = 0; i < 100 && m.current().generation == g; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(m.current().credentials->keys.access_key == "AK1");
  CHECK(served == 2);
}

TEST_CASE("client: a read refused with ExpiredToken gets one refresh and one retry; a second refusal fails") {
  std::atomic<int> issued{0};
  FakeServer container([&](const std::string&, int n) {
    issued++;
    return http("200 OK", creds_json("AK" + std::to_string(n), "TOKEN" + std::to_string(n), std::chrono::seconds(3600)));
  });
  std::atomic<bool> always_refuse{false};
  FakeServer s3([&](const std::string& req, int) {
    // Only the second token is good (the first "expired" early, as when a role session is revoked).
    if (always_refuse || req.find("x-amz-security-token: TOKEN1\r\n") == std::string::npos)
      return http("403 Forbidden", "<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>");
    return http("206 Partial Content", "abcd", "Content-Range: bytes 0-3/10\r\nETag: \"e\"\r\n");
  });
  auto cfg = RemoteConfig::from_env(map_env({{"AWS_ENDPOINT_URL", url_of(s3)}, {"AWS_EC2_METADATA_DISABLED", "true"},
                                             {"AWS_CONTAINER_CREDENTIALS_FULL_URI", url_of(container)}}));
  REQUIRE(cfg.ok());
  auto c = make_client(*parse_remote_url("s3://bucket/"), *cfg);
  REQUIRE(c.ok());
  CHECK((*c)->credential_source() == "not resolved yet");
  std::vector<std::byte> buf(4);
  auto r = (*c)->read({"k", "", 0, 4, buf.data()});
  REQUIRE(r.ok());
  CHECK(std::memcmp(buf.data(), "abcd", 4) == 0);
  CHECK((*c)->stats().credential_retries == 1);
  CHECK(issued == 2);
  CHECK((*c)->credential_source() == "container, temporary");
  always_refuse = true;
  auto f = (*c)->read({"k", "", 0, 4, buf.data()});
  REQUIRE_FALSE(f.ok());
  CHECK(f.error().code == EACCES);
  CHECK(f.error().message.find("ExpiredToken") != std::string::npos);
  CHECK(f.error().message.find("TOKEN") == std::string::npos);
  CHECK(f.error().message.find("SECRET") == std::string::npos);
  CHECK((*c)->stats().credential_retries == 2);  // one retry for this read too, then it fails
  CHECK(issued == 3);
}

TEST_CASE("client: no provider answers: requests fail with the chain's line; anonymous never asks") {
  FakeServer s3([](const std::string& req, int) {
    if (req.find("Authorization") != std::string::npos) return http("400 Bad Request", "signed");
    return http("206 Partial Content", "abcd", "Content-Range: bytes 0-3/10\r\n");
  });
  TempDir d;
  Vars base = {{"AWS_ENDPOINT_URL", url_of(s3)}, {"AWS_EC2_METADATA_DISABLED", "true"},
               {"HOME", d.path}};
  auto cfg = RemoteConfig::from_env(map_env(base));
  auto c = make_client(*parse_remote_url("s3://bucket/"), *cfg);
  std::vector<std::byte> buf(4);
  auto r = (*c)->read({"k", "", 0, 4, buf.data()});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == EACCES);
  CHECK(r.error().message.starts_with("GET s3://bucket/k: no AWS credentials found: environment:"));
  CHECK(s3.requests().empty());
  for (const char* var : {"AWS_NO_SIGN_REQUEST", "MODELFETCH_NO_SIGN"}) {
    Vars anon = base;
    anon[var] = std::string(var) == "MODELFETCH_NO_SIGN" ? "1" : "true";
    anon["AWS_ACCESS_KEY_ID"] = "AK";  // anonymous wins over keys too
    anon["AWS_SECRET_ACCESS_KEY"] = "SK";
    auto a = make_client(*parse_remote_url("s3://bucket/"), *RemoteConfig::from_env(map_env(anon)));
    REQUIRE((*a)->read({"k", "", 0, 4, buf.data()}).ok());
    CHECK((*a)->credential_source().starts_with("none (anonymous"));
  }
  CHECK_FALSE(RemoteConfig::from_env(map_env({{"AWS_NO_SIGN_REQUEST", "maybe"}})).ok());
}

TEST_CASE("client: requests wait for a slow chain without spinning, then go out signed") {
  TempDir d;
  std::string script = d.write("slow.sh", "#!/bin/sh\nsleep 1\necho '{\"Version\": 1, \"AccessKeyId\": \"AK\", "
                                          "\"SecretAccessKey\": \"SK\"}'\n", 0700);
  std::string cf = d.write("config", "[default]\ncredential_process = " + script + "\n");
  FakeServer s3([](const std::string& req, int) {
    if (req.find("Credential=AK/") == std::string::npos) return http("403 Forbidden", "");
    return http("206 Partial Content", "abcd", "Content-Range: bytes 0-3/10\r\n");
  });
  auto cfg = RemoteConfig::from_env(map_env({{"AWS_ENDPOINT_URL", url_of(s3)}, {"AWS_EC2_METADATA_DISABLED", "true"},
                                             {"AWS_CONFIG_FILE", cf}}));
  REQUIRE(cfg.ok());
  auto c = make_client(*parse_remote_url("s3://bucket/"), *cfg);
  std::vector<std::byte> buf(4);
  std::clock_t cpu0 = std::clock();
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE((*c)->read({"k", "", 0, 4, buf.data()}).ok());
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(900));
  CHECK(double(std::clock() - cpu0) / CLOCKS_PER_SEC < 0.3);  // a busy I/O loop would burn the whole second
  CHECK((*c)->credential_source() == "profile default (credential_process)");
}
