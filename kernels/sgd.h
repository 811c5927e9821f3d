// One SGD step over the flat parameter buffer, as torch.optim.SGD (dampening 0):
//   g ← g + wd·w;  v ← μ·v + g;  g ← nesterov ? g + μ·v : v;  w ← w − lr·g
// A pruning mask (1 keep / 0 pruned, may be null) multiplies w after the update and the
// gradient before it, so pruned weights stay exactly zero; decay (may be null) is a
// per-element weight-decay multiplier (0 where a parameter is exempt, else 1); trainable (may be
// null: all) freezes the elements where it is 0 — their weight and momentum are left untouched.
#pragma once

#include <cstddef>

#include "kernels/cuda_stream.h"

namespace activeip {

struct SgdParams {
  float lr = 0.1f;
  float momentum = 0.9f;
  float weight_decay = 5e-4f;
  bool nesterov = false;
};

struct SgdArgs {
  float* w;
  const float* g;
  float* v;                          // momentum buffer (unused when momentum == 0)
  const float* mask;                 // may be null
  const float* decay;                // may be null: decay everywhere
  const float* trainable = nullptr;  // may be null: every element is trained
};

void sgd_step_cpu(size_t n, const SgdParams& p, const SgdArgs& a);

#ifdef ACTIVEIP_CUDA
void sgd_step_cuda(size_t n, const SgdParams& p, const SgdArgs& a, cudaStream_t stream);
#endif

}  // namespace activeip
