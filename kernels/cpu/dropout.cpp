// Inverted dropout on the CPU. The keep bit of element i comes from the counter-based hash
// of (seed, i) in kernels/dropout.h, shared with the CUDA kernel, so both drop the same
// elements from the index alone.
#include "kernels/dropout.h"

namespace activeip {

namespace {

// Below this many elements a parallel region costs more than the loop.
constexpr size_t kParallelMin = size_t{1} << 15;

}  // namespace

bool dropout_keep(const DropoutParams& d, uint64_t i) {
  return dropout_hash::keep_bit(dropout_hash::mix64(d.seed), dropout_hash::drop_threshold(d.p), i);
}

void dropout_fwd_cpu(size_t n, const DropoutParams& d, const float* x, float* y, float* mask) {
  const uint64_t key = dropout_hash::mix64(d.seed);
  const uint32_t threshold = dropout_hash::drop_threshold(d.p);
  const float scale = 1.0f / (1.0f - d.p);
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (size_t i = 0; i < n; ++i) {
    mask[i] = dropout_hash::keep_bit(key, threshold, i) ? scale : 0.0f;
    y[i] = x[i] * mask[i];
  }
}

void dropout_bwd_cpu(size_t n, const float* dy, const float* mask, float* dx) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (size_t i = 0; i < n; ++i) dx[i] = dy[i] * mask[i];
}

}  // namespace activeip
