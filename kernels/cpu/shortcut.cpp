// Option-A shortcut on the CPU: a strided gather into the middle channels of y, zeros
// around them; backward scatters back and zeroes the positions the stride skipped.
#include <cstdint>
#include <cstring>

#include "kernels/shortcut.h"

namespace activeip {

void pad_shortcut_fwd_cpu(const PadShortcutShape& s, const float* x, float* y) {
  const int64_t P = s.P(), Q = s.Q(), K = s.K();
#pragma omp parallel for schedule(static)
  for (int64_t np = 0; np < int64_t{s.N} * P; ++np) {
    const int64_t n = np / P, p = np % P;
    for (int64_t q = 0; q < Q; ++q) {
      float* o = y + (np * Q + q) * K;
      const float* i = x + ((n * s.H + p * s.stride) * s.W + q * s.stride) * s.C;
      std::memset(o, 0, sizeof(float) * static_cast<size_t>(s.pad_before));
      std::memcpy(o + s.pad_before, i, sizeof(float) * static_cast<size_t>(s.C));
      std::memset(o + s.pad_before + s.C, 0, sizeof(float) * static_cast<size_t>(s.pad_after));
    }
  }
}

void pad_shortcut_bwd_cpu(const PadShortcutShape& s, const float* dy, float* dx) {
  const int64_t P = s.P(), Q = s.Q(), K = s.K();
  std::memset(dx, 0, sizeof(float) * static_cast<size_t>(int64_t{s.N} * s.H * s.W * s.C));
#pragma omp parallel for schedule(static)
  for (int64_t np = 0; np < int64_t{s.N} * P; ++np) {
    const int64_t n = np / P, p = np % P;
    for (int64_t q = 0; q < Q; ++q)
      std::memcpy(dx + ((n * s.H + p * s.stride) * s.W + q * s.stride) * s.C, dy + (np * Q + q) * K + s.pad_before,
                  sizeof(float) * static_cast<size_t>(s.C));
  }
}

}  // namespace activeip
