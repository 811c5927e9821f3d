// Inverted dropout on the GPU (contract in kernels/dropout.h), flat arrays of n floats.
// Forward: one grid-stride kernel draws the keep bit from the shared (seed, i) hash, writes
// the mask (0 or 1/(1 − p)) and y = x · mask; the key, threshold and scale are computed once
// on the host, with the CPU's arithmetic, so the masks are bit-identical. Backward: dx = dy · mask.
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda_check.h"
#include "kernels/dropout.h"

namespace activeip {

static __global__ void dropout_fwd_kernel(size_t n, uint64_t key, uint32_t threshold, float scale, const float* x,
                                          float* y, float* mask) {
  for (size_t i = launch::thread_index(); i < n; i += launch::thread_count()) {
    const float m = dropout_hash::keep_bit(key, threshold, i) ? scale : 0.0f;
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

static __global__ void dropout_bwd_kernel(size_t n, const float* dy, const float* mask, float* dx) {
  for (size_t i = launch::thread_index(); i < n; i += launch::thread_count()) dx[i] = dy[i] * mask[i];
}

void dropout_fwd_cuda(size_t n, const DropoutParams& d, const float* x, float* y, float* mask, cudaStream_t stream) {
  if (n == 0) return;
  const uint64_t key = dropout_hash::mix64(d.seed);
  const uint32_t threshold = dropout_hash::drop_threshold(d.p);
  const float scale = 1.0f / (1.0f - d.p);
  dropout_fwd_kernel<<<launch::grid_for(n), launch::kBlock, 0, stream>>>(n, key, threshold, scale, x, y, mask);
  CUDA_CHECK_LAUNCH();
}

void dropout_bwd_cuda(size_t n, const float* dy, const float* mask, float* dx, cudaStream_t stream) {
  if (n == 0) return;
  dropout_bwd_kernel<<<launch::grid_for(n), launch::kBlock, 0, stream>>>(n, dy, mask, dx);
  CUDA_CHECK_LAUNCH();
}

}  // namespace activeip
