// One bit per page of a mapping: set = the page was placed by UFFDIO_COPY (or found present). Bits are
// atomic so the fault thread, the filler and fill_for_kernel may set them concurrently; clearing happens
// only under the region's exclusive lock (madvise). count() is kept exact with fetch_or/fetch_and results.
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>

namespace mf {

class PageBitmap {
 public:
  explicit PageBitmap(uint64_t bits)
      : words_(std::make_unique<std::atomic<uint64_t>[]>((bits + 63) / 64)), bits_(bits) {}

  uint64_t size() const { return bits_; }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  bool all() const { return count() == bits_; }

  bool test(uint64_t i) const {
    return (words_[i / 64].load(std::memory_order_acquire) >> (i % 64)) & 1u;
  }
  // [a, b), b <= size().
  void set_range(uint64_t a, uint64_t b) { apply(a, b, true); }
  void clear_range(uint64_t a, uint64_t b) { apply(a, b, false); }

  // First index in [from, to) whose bit equals `value`, or `to`.
  uint64_t find(uint64_t from, uint64_t to, bool value) const {
    while (from < to) {
      uint64_t w = words_[from / 64].load(std::memory_order_acquire);
      if (!value) w = ~w;
      w &= ~0ull << (from % 64);
      if (w) {
        const uint64_t i = (from & ~63ull) + static_cast<uint64_t>(std::countr_zero(w));
        return i < to ? i : to;
      }
      from = (from & ~63ull) + 64;
    }
    return to;
  }

 private:
  void apply(uint64_t a, uint64_t b, bool set) {
    while (a < b) {
      const uint64_t bit = a % 64;
      const uint64_t n = (b - a < 64 - bit) ? b - a : 64 - bit;
      const uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << bit;
      auto& w = words_[a / 64];
      if (set) {
        const uint64_t old = w.fetch_or(mask, std::memory_order_acq_rel);
        count_.fetch_add(static_cast<uint64_t>(std::popcount(mask & ~old)), std::memory_order_relaxed);
      } else {
        const uint64_t old = w.fetch_and(~mask, std::memory_order_acq_rel);
        count_.fetch_sub(static_cast<uint64_t>(std::popcount(mask & old)), std::memory_order_relaxed);
      }
      a += n;
    }
  }

  std::unique_ptr<std::atomic<uint64_t>[]> words_;
  uint64_t bits_;
  std::atomic<uint64_t> count_{0};
};

}  // namespace mf
