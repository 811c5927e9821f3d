// Inverted dropout: y = x · keep / (1 − p), keep ~ Bernoulli(1 − p). The keep bit of element
// i is a pure function of (seed, i) — a counter-based hash — so the CPU and CUDA kernels
// drop the same elements and a resumed run redraws the same masks. mask stores the scale
// applied to each element (0 or 1/(1 − p)); backward: dx = dy · mask.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda_stream.h"

namespace activeip {

struct DropoutParams {
  float p = 0.5f;     // drop probability, in [0, 1)
  uint64_t seed = 0;  // per call: the engine mixes its seed with the step
};

// The keep decision for element i (shared by every implementation and by the tests).
bool dropout_keep(const DropoutParams& d, uint64_t i);

void dropout_fwd_cpu(size_t n, const DropoutParams& d, const float* x, float* y, float* mask);
void dropout_bwd_cpu(size_t n, const float* dy, const float* mask, float* dx);

}  // namespace activeip
