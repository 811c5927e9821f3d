// One SGD step over the flat parameter buffer on the GPU (contract in kernels/sgd.h): one
// grid-stride kernel fuses, per element, the masked gradient, weight decay, the momentum
// buffer, the Nesterov correction, the update and the mask, in the order of sgd_step_cpu.
// With momentum 0 the buffer is neither read nor written (it may be null); frozen elements
// (trainable 0) are neither read nor written.
#include "kernels/sgd.h"

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda_check.h"

namespace activeip {

// The null checks on mask / decay / trainable are uniform across the grid, so they cost no divergence.
static __global__ void sgd_step_kernel(size_t n, SgdParams p, SgdArgs a) {
  const bool use_momentum = p.momentum != 0.0f;
  for (size_t i = launch::thread_index(); i < n; i += launch::thread_count()) {
    if (a.trainable && a.trainable[i] == 0.0f) continue;
    const float m = a.mask ? a.mask[i] : 1.0f;
    const float w = a.w[i];
    float g = a.g[i] * m + (a.decay ? a.decay[i] : 1.0f) * p.weight_decay * w;
    if (use_momentum) {
      const float v = p.momentum * a.v[i] + g;
      a.v[i] = v;
      g = p.nesterov ? g + p.momentum * v : v;
    }
    a.w[i] = (w - p.lr * g) * m;
  }
}

void sgd_step_cuda(size_t n, const SgdParams& p, const SgdArgs& a, cudaStream_t stream) {
  if (n == 0) return;
  sgd_step_kernel<<<launch::grid_for(n), launch::kBlock, 0, stream>>>(n, p, a);
  CUDA_CHECK_LAUNCH();
}

}  // namespace activeip
