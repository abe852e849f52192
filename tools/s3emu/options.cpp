// Command-line parsing of modelfetch-s3emu (options.hpp).
#include "tools/s3emu/options.hpp"

#include <charconv>
#include <cstdlib>
#include <filesystem>

namespace mf::s3emu {

namespace {

bool parse_u64(const std::string& s, uint64_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

bool parse_share(const std::string& s, double* out) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !(v >= 0.0 && v <= 1.0)) return false;
  *out = v;
  return true;
}

std::string rate_text(uint64_t r) {
  if (r == 0) return "off";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g MB/s", static_cast<double>(r) / 1e6);
  return buf;
}

}  // namespace

bool parse_rate(const std::string& s, uint64_t* out) {
  if (s.empty()) return false;
  uint64_t mult = 1;
  std::string digits = s;
  switch (s.back()) {
    case 'K': case 'k': mult = 1'000; break;
    case 'M': case 'm': mult = 1'000'000; break;
    case 'G': case 'g': mult = 1'000'000'000; break;
    default: break;
  }
  if (mult != 1) digits.pop_back();
  uint64_t v = 0;
  if (!parse_u64(digits, &v) || v > UINT64_MAX / mult) return false;
  *out = v * mult;
  return true;
}

const char* usage() {
  return "usage: modelfetch-s3emu --dir DIR [--bucket NAME] [--host 127.0.0.1] [--port N] [--port-file F]\n"
         "         [--latency-ms 20] [--conn-rate 100M] [--link-rate 0] [--fault-reset P] [--fault-5xx P]\n"
         "         [--fault-stall P] [--fault-short P] [--fault-seed S] [--quiet]\n"
         "Serves DIR as the S3 bucket NAME (default models), path-style, over HTTP/1.1. --port 0 (default)\n"
         "picks a free port and writes it to --port-file. Rates: bytes/s with K/M/G (10^3/6/9), 0 = off.\n"
         "Control: GET /_emu/stats, POST /_emu/reset-stats, POST /_emu/replace?key=K,\n"
         "         POST /_emu/expire-credentials (every later S3 request gets 403 ExpiredToken); SIGUSR1 bumps every ETag.\n";
}

ParsedOptions parse_options(int argc, char** argv) {
  ParsedOptions r;
  Options& o = r.value;
  auto fail = [&](std::string m) {
    r.message = std::move(m);
    return r;
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      o.help = true;
      r.ok = true;
      return r;
    }
    if (a == "--quiet") {
      o.quiet = true;
      continue;
    }
    if (i + 1 >= argc) return fail(a + " needs a value (or is unknown)");
    std::string v = argv[++i];
    uint64_t n = 0;
    bool ok = true;
    if (a == "--dir") o.dir = v;
    else if (a == "--bucket") o.bucket = v;
    else if (a == "--host") o.host = v;
    else if (a == "--port-file") o.port_file = v;
    else if (a == "--port") { ok = parse_u64(v, &n) && n <= 65535; o.port = static_cast<uint16_t>(n); }
    else if (a == "--latency-ms") ok = parse_u64(v, &o.latency_ms);
    else if (a == "--conn-rate") ok = parse_rate(v, &o.conn_rate);
    else if (a == "--link-rate") ok = parse_rate(v, &o.link_rate);
    else if (a == "--fault-reset") ok = parse_share(v, &o.faults.reset);
    else if (a == "--fault-5xx") ok = parse_share(v, &o.faults.error_5xx);
    else if (a == "--fault-stall") ok = parse_share(v, &o.faults.stall);
    else if (a == "--fault-short") ok = parse_share(v, &o.faults.short_body);
    else if (a == "--fault-seed") ok = parse_u64(v, &o.fault_seed);
    else return fail("unknown option " + a);
    if (!ok) return fail("bad value for " + a + ": " + v);
  }
  if (o.dir.empty()) return fail("--dir is required");
  std::error_code ec;
  if (!std::filesystem::is_directory(o.dir, ec)) return fail("--dir " + o.dir + " is not a directory");
  if (o.bucket.empty() || o.bucket.find('/') != std::string::npos) return fail("bad --bucket");
  r.ok = true;
  return r;
}

std::string describe(const Options& o) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "latency %llu ms, conn-rate %s, link-rate %s, faults reset %g 5xx %g stall %g short %g",
                static_cast<unsigned long long>(o.latency_ms), rate_text(o.conn_rate).c_str(),
                rate_text(o.link_rate).c_str(), o.faults.reset, o.faults.error_5xx, o.faults.stall,
                o.faults.short_body);
  return buf;
}

}  // namespace mf::s3emu
