// Each fault of modelfetch-s3emu as the modelfetch client sees it: resets, 500/503 SlowDown, stalls and short
// bodies are retried (the client's retry counter rises, the emulator's fault counter too) and every byte read
// still matches the file; an object replaced mid-load (POST /_emu/replace) fails an If-Match read with
// ESTALE. The emulator (path in $MF_S3EMU) is started by the test on a free port.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <curl/curl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/remote/client.hpp"
#include "core/util/env.hpp"

using namespace mf;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kSize = 6 << 20;
constexpr uint64_t kPart = 256 << 10;

struct Emulator {
  fs::path dir;
  pid_t pid = -1;
  int port = 0;
  std::string data;

  explicit Emulator(std::vector<std::string> extra) {
    char tmpl[] = "/tmp/mf-s3emu-faults.XXXXXX";
    dir = ::mkdtemp(tmpl);
    fs::create_directories(dir / "data" / "m");
    std::mt19937 g(42);
    data.resize(kSize);
    for (auto& c : data) c = static_cast<char>(g());
    std::ofstream(dir / "data" / "m" / "w.bin", std::ios::binary).write(data.data(), static_cast<long>(data.size()));
    std::vector<std::string> args = {std::getenv("MF_S3EMU"), "--dir", (dir / "data").string(), "--bucket",
                                     "faulty", "--port-file", (dir / "port").string(), "--quiet", "--latency-ms",
                                     "1", "--conn-rate", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid = ::fork();
    if (pid == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    for (int i = 0; i < 200 && !fs::exists(dir / "port"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    std::ifstream(dir / "port") >> port;
  }
  ~Emulator() {
    ::kill(pid, SIGTERM);
    ::waitpid(pid, nullptr, 0);
    fs::remove_all(dir);
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port); }

  // A request to the control endpoint; returns the body.
  std::string control(const std::string& method, const std::string& path) const {
    CURL* e = curl_easy_init();
    std::string body;
    std::string url = endpoint() + path;
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, +[](char* p, size_t s, size_t n, void* u) {
      static_cast<std::string*>(u)->append(p, s * n);
      return s * n;
    });
    curl_easy_perform(e);
    curl_easy_cleanup(e);
    return body;
  }
  uint64_t stat_counter(const std::string& name) const {
    std::string s = control("GET", "/_emu/stats");
    size_t at = s.find("\"" + name + "\":");
    return at == std::string::npos ? UINT64_MAX : std::stoull(s.substr(at + name.size() + 3));
  }
};

std::unique_ptr<Client> client_for(const Emulator& emu) {
  auto cfg = RemoteConfig::from_env(map_env({{"AWS_ENDPOINT_URL", emu.endpoint()},
                                             {"AWS_ACCESS_KEY_ID", "emu-key"},
                                             {"AWS_SECRET_ACCESS_KEY", "emu-secret"},
                                             {"MODELFETCH_RETRY_BASE_MS", "10"},
                                             {"MODELFETCH_RETRIES", "10"},
                                             {"MODELFETCH_LOW_SPEED_TIME_S", "1"},
                                             {"MODELFETCH_MAX_CONNECTIONS", "8"}}));
  REQUIRE(cfg.ok());
  auto url = parse_remote_url("s3://faulty/");
  REQUIRE(url.ok());
  auto c = make_client(*url, *cfg);
  REQUIRE(c.ok());
  return std::move(*c);
}

// Reads the whole object in kPart ranges, all in flight at once; checks every byte.
void read_all_and_check(Client& c, const Emulator& emu) {
  auto info = c.stat("m/w.bin");
  REQUIRE(info.ok());
  REQUIRE(info->size == kSize);
  std::string out(kSize, '\0');
  std::vector<RangeRequest> reqs;
  for (uint64_t off = 0; off < kSize; off += kPart)
    reqs.push_back({"m/w.bin", info->etag, off, kPart, reinterpret_cast<std::byte*>(out.data() + off)});
  auto results = c.read_many(std::move(reqs));
  for (auto& r : results) CHECK_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  CHECK(out == emu.data);
}

void check_fault(const char* option, const char* rate, const char* counter) {
  Emulator emu({option, rate, "--fault-seed", "7"});
  REQUIRE(emu.port > 0);
  auto c = client_for(emu);
  read_all_and_check(*c, emu);
  auto s = c->stats();
  CHECK(s.retries > 0);
  CHECK(s.errors == 0);
  CHECK(s.get_requests == kSize / kPart + s.retries);
  uint64_t faults = emu.stat_counter(counter);
  CHECK(faults > 0);
  CHECK(faults <= s.retries);  // every fault cost the client one retry (a stall also counts as one)
  MESSAGE(std::string(option) << ": " << faults << " faults, " << s.retries << " client retries");
}

}  // namespace

TEST_CASE("reset mid-body: retried, right bytes") { check_fault("--fault-reset", "0.3", "fault_reset"); }
TEST_CASE("500 / 503 SlowDown with Retry-After: retried, right bytes") { check_fault("--fault-5xx", "0.3", "fault_5xx"); }
TEST_CASE("short body then close: retried, right bytes") { check_fault("--fault-short", "0.3", "fault_short"); }
TEST_CASE("stall after headers: aborted by the low-speed limit, retried, right bytes") {
  check_fault("--fault-stall", "0.1", "fault_stall");
}

TEST_CASE("object replaced mid-load: the If-Match read fails with ESTALE, a fresh stat reads again") {
  Emulator emu({});
  auto c = client_for(emu);
  auto before = c->stat("m/w.bin");
  REQUIRE(before.ok());
  std::string buf(4096, '\0');
  REQUIRE(c->read({"m/w.bin", before->etag, 0, 4096, reinterpret_cast<std::byte*>(buf.data())}).ok());
  std::string reply = emu.control("POST", "/_emu/replace?key=m/w.bin");
  CHECK(reply.find("etag") != std::string::npos);
  auto r = c->read({"m/w.bin", before->etag, 4096, 4096, reinterpret_cast<std::byte*>(buf.data())});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ESTALE);
  auto after = c->stat("m/w.bin");
  REQUIRE(after.ok());
  CHECK(after->etag != before->etag);
  CHECK(c->read({"m/w.bin", after->etag, 4096, 4096, reinterpret_cast<std::byte*>(buf.data())}).ok());
  CHECK(buf == emu.data.substr(4096, 4096));
}

int main(int argc, char** argv) {
  if (!std::getenv("MF_S3EMU")) {
    std::fprintf(stderr, "MF_S3EMU (the emulator's path) is not set\n");
    return 1;
  }
  ::signal(SIGPIPE, SIG_IGN);
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
