// Inverted dropout: y = x · keep / (1 − p), keep ~ Bernoulli(1 − p). The keep bit of element
// i is a pure function of (seed, i) — a counter-based hash — so the CPU and CUDA kernels
// drop the same elements and a resumed run redraws the same masks. mask stores the scale
// applied to each element (0 or 1/(1 − p)); backward: dx = dy · mask.
// The hash, written once below for host and device:
//   key = mix64(seed);  h = mix64(key ^ i);  keep ⇔ (h >> 32) ≥ threshold,
//   threshold = floor(p · 2³²) computed in double (exact for a float p),
// where mix64(z) is one SplitMix64 step on state z: add the golden-ratio increment, then
// the xor-shift-multiply finaliser. Only integer arithmetic decides.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda_stream.h"
#include "kernels/hostdevice.h"

namespace activeip {

struct DropoutParams {
  float p = 0.5f;     // drop probability, in [0, 1)
  uint64_t seed = 0;  // per call: the engine mixes its seed with the step
};

namespace dropout_hash {

// A bijection on 64 bits with full avalanche: under one key, distinct indices hash distinct
// inputs, and neighbouring indices get unrelated bits.
ACTIVEIP_HD constexpr uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

ACTIVEIP_HD inline uint32_t drop_threshold(float p) {
  return static_cast<uint32_t>(static_cast<double>(p) * 4294967296.0);
}

ACTIVEIP_HD inline bool keep_bit(uint64_t key, uint32_t threshold, uint64_t i) {
  return static_cast<uint32_t>(mix64(key ^ i) >> 32) >= threshold;
}

}  // namespace dropout_hash

// The keep decision for element i (shared by every implementation and by the tests).
bool dropout_keep(const DropoutParams& d, uint64_t i);

void dropout_fwd_cpu(size_t n, const DropoutParams& d, const float* x, float* y, float* mask);
void dropout_bwd_cpu(size_t n, const float* dy, const float* mask, float* dx);

#ifdef ACTIVEIP_CUDA
void dropout_fwd_cuda(size_t n, const DropoutParams& d, const float* x, float* y, float* mask, cudaStream_t stream);
void dropout_bwd_cuda(size_t n, const float* dy, const float* mask, float* dx, cudaStream_t stream);
#endif

}  // namespace activeip
