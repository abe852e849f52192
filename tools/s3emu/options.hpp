// Command line of modelfetch-s3emu. Rates take a decimal suffix K/M/G (10^3/10^6/10^9 bytes per second, as
// network links are quoted): --conn-rate 100M is 100 MB/s. Probabilities are shares in [0, 1].
//
// Defaults, and why: --latency-ms 20 is a typical first-byte latency of an in-region S3 GET of a large object;
// --conn-rate 100M is what one S3 connection sustains (~80-100 MB/s, docs/DESIGN.md remote client section);
// --link-rate 0 (off) lets the benchmark choose the instance's NIC cap explicitly (it passes 2G).
#pragma once

#include <cstdint>
#include <string>

#include "tools/s3emu/pacing.hpp"

namespace mf::s3emu {

struct Options {
  std::string dir;
  std::string bucket = "models";
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string port_file;
  uint64_t latency_ms = 20;
  uint64_t conn_rate = 100'000'000;
  uint64_t link_rate = 0;
  FaultRates faults;
  uint64_t fault_seed = 1;
  bool quiet = false;
  bool help = false;
};

// Parsed options, or a one-line message.
struct ParsedOptions {
  bool ok = false;
  Options value;
  std::string message;
  explicit operator bool() const { return ok; }
  const Options& operator*() const { return value; }
  const Options* operator->() const { return &value; }
  const std::string& error() const { return message; }
};

ParsedOptions parse_options(int argc, char** argv);
bool parse_rate(const std::string& s, uint64_t* out);  // "0", "100M", "2G", "1500000"
const char* usage();
std::string describe(const Options& o);  // one line: latency, rates, faults

}  // namespace mf::s3emu
