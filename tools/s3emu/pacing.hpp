// Bandwidth pacing and fault injection for modelfetch-s3emu.
//
// Pacer: a token bucket kept as a virtual clock. Sending n bytes at rate r reserves the interval
// [start, start + n/r) where start = max(now, end of the previous reservation); the caller sleeps until
// `start` and then sends. Idle time earns credit of at most `burst` bytes (start may lie up to burst/r in the
// past), like a bucket of depth `burst`. The body is sent in slices (server.cpp: 1 MiB, i.e. 10 ms at
// 100 MB/s) so a paced connection streams smoothly instead of bursting a whole range then sleeping. One
// Pacer per connection (--conn-rate, no lock needed) and one shared by all (--link-rate, behind a mutex: a
// reservation is a few arithmetic operations, so contention is negligible at 16-64 connections).
//
// Faults: each object GET draws once from a seeded generator (--fault-seed) and gets at most one fault, with
// the probabilities given (--fault-reset/-5xx/-stall/-short, checked in that order, each an independent
// share of GETs). The offset at which a reset or short body cuts is uniform over the body, so clients see
// cuts at arbitrary (not page-aligned) byte positions. The generator is shared behind a mutex: with a fixed
// seed and one connection the sequence of faults is reproducible.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>

namespace mf::s3emu {

class Pacer {
 public:
  // rate in bytes/s; 0 = unlimited (acquire returns at once).
  explicit Pacer(uint64_t rate = 0, uint64_t burst = 1 << 20) : rate_(rate), burst_(burst) {}
  bool limited() const { return rate_ != 0; }
  // Reserves n bytes and sleeps until they may be sent. Thread-safe when `shared` (the link pacer).
  void acquire(uint64_t n);
  void set_shared(bool shared) { shared_ = shared; }

 private:
  using Clock = std::chrono::steady_clock;
  uint64_t rate_;
  uint64_t burst_;
  bool shared_ = false;
  std::mutex mutex_;
  Clock::time_point next_{};  // end of the last reservation
};

enum class Fault { none, reset, server_error, slow_down, stall, short_body };

struct FaultRates {
  double reset = 0, error_5xx = 0, stall = 0, short_body = 0;
  bool any() const { return reset > 0 || error_5xx > 0 || stall > 0 || short_body > 0; }
};

class FaultPlan {
 public:
  FaultPlan(FaultRates rates, uint64_t seed) : rates_(rates), rng_(seed) {}
  // The fault of the next object GET (5xx alternates 503 SlowDown and 500 InternalError draws evenly).
  Fault draw();
  // A cut position in [0, length) for reset/short faults (0 for length 0).
  uint64_t cut_at(uint64_t length);

 private:
  FaultRates rates_;
  std::mutex mutex_;
  std::mt19937_64 rng_;
};

const char* fault_name(Fault f);

}  // namespace mf::s3emu
