// Token-bucket pacing and fault draws for modelfetch-s3emu (the algorithm is described in pacing.hpp).
#include "tools/s3emu/pacing.hpp"

#include <thread>

namespace mf::s3emu {

void Pacer::acquire(uint64_t n) {
  if (rate_ == 0 || n == 0) return;
  Clock::time_point start;
  {
    std::unique_lock<std::mutex> lock(mutex_, std::defer_lock);
    if (shared_) lock.lock();
    auto now = Clock::now();
    // Credit for idle time is capped at `burst` bytes' worth of time.
    auto credit = std::chrono::nanoseconds(static_cast<int64_t>(burst_ * 1e9 / static_cast<double>(rate_)));
    start = next_ < now - credit ? now - credit : next_;
    next_ = start + std::chrono::nanoseconds(static_cast<int64_t>(n * 1e9 / static_cast<double>(rate_)));
  }
  // The reservation covers [start, next_): sending begins at `start` and the next reservation cannot begin
  // before next_, so the long-run rate is `rate_` whatever the slice size.
  if (start > Clock::now()) std::this_thread::sleep_until(start);
}

Fault FaultPlan::draw() {
  if (!rates_.any()) return Fault::none;
  std::lock_guard<std::mutex> lock(mutex_);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  if (u(rng_) < rates_.reset) return Fault::reset;
  if (u(rng_) < rates_.error_5xx) return u(rng_) < 0.5 ? Fault::slow_down : Fault::server_error;
  if (u(rng_) < rates_.stall) return Fault::stall;
  if (u(rng_) < rates_.short_body) return Fault::short_body;
  return Fault::none;
}

uint64_t FaultPlan::cut_at(uint64_t length) {
  if (length == 0) return 0;
  std::lock_guard<std::mutex> lock(mutex_);
  return std::uniform_int_distribution<uint64_t>(0, length - 1)(rng_);
}

const char* fault_name(Fault f) {
  switch (f) {
    case Fault::none: return "none";
    case Fault::reset: return "reset";
    case Fault::server_error: return "500";
    case Fault::slow_down: return "503";
    case Fault::stall: return "stall";
    case Fault::short_body: return "short";
  }
  return "?";
}

}  // namespace mf::s3emu
