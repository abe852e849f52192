// Checked size arithmetic: every size that comes from the network or a file header goes through these
// (the safetensors crate does the same with checked_mul). They return false on overflow and leave *out alone.
#pragma once

#include <cstdint>

namespace mf {

inline bool checked_add(uint64_t a, uint64_t b, uint64_t* out) {
  uint64_t t;
  if (__builtin_add_overflow(a, b, &t)) return false;
  *out = t;
  return true;
}
inline bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  uint64_t t;
  if (__builtin_mul_overflow(a, b, &t)) return false;
  *out = t;
  return true;
}

// Rounds v up to a multiple of `align` (a power of two). False on overflow.
inline bool checked_align_up(uint64_t v, uint64_t align, uint64_t* out) {
  uint64_t t;
  if (!checked_add(v, align - 1, &t)) return false;
  *out = t & ~(align - 1);
  return true;
}

}  // namespace mf
