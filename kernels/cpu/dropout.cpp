// Inverted dropout on the CPU. The keep bit of element i is a counter-based hash of
// (seed, i), so any implementation reproduces it from the index alone:
//   key = mix64(seed);  h = mix64(key ^ i);  keep ⇔ (h >> 32) ≥ threshold,
//   threshold = floor(p · 2³²) computed in double (exact for a float p),
// where mix64(z) is one SplitMix64 step on state z: add the golden-ratio increment, then
// the xor-shift-multiply finaliser.
// Only integer arithmetic decides, so a CUDA kernel with the same mix64 drops the same elements.
#include "kernels/dropout.h"

namespace activeip {

namespace {

// A bijection on 64 bits with full avalanche: under one key, distinct indices hash distinct
// inputs, and neighbouring indices get unrelated bits.
constexpr uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint32_t drop_threshold(float p) {
  return static_cast<uint32_t>(static_cast<double>(p) * 4294967296.0);
}

bool keep_bit(uint64_t key, uint32_t threshold, uint64_t i) {
  return static_cast<uint32_t>(mix64(key ^ i) >> 32) >= threshold;
}

// Below this many elements a parallel region costs more than the loop.
constexpr size_t kParallelMin = size_t{1} << 15;

}  // namespace

bool dropout_keep(const DropoutParams& d, uint64_t i) {
  return keep_bit(mix64(d.seed), drop_threshold(d.p), i);
}

void dropout_fwd_cpu(size_t n, const DropoutParams& d, const float* x, float* y, float* mask) {
  const uint64_t key = mix64(d.seed);
  const uint32_t threshold = drop_threshold(d.p);
  const float scale = 1.0f / (1.0f - d.p);
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (size_t i = 0; i < n; ++i) {
    mask[i] = keep_bit(key, threshold, i) ? scale : 0.0f;
    y[i] = x[i] * mask[i];
  }
}

void dropout_bwd_cpu(size_t n, const float* dy, const float* mask, float* dx) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (size_t i = 0; i < n; ++i) dx[i] = dy[i] * mask[i];
}

}  // namespace activeip
