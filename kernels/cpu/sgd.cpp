// One SGD step over the flat parameter buffer on the CPU, as torch.optim.SGD with
// dampening 0, fused into one pass per element: masked gradient, weight decay, momentum
// buffer, Nesterov correction, update, mask. With momentum 0 the buffer is not touched;
// frozen elements (trainable 0) are skipped entirely.
#include "kernels/sgd.h"

namespace activeip {

void sgd_step_cpu(size_t n, const SgdParams& p, const SgdArgs& a) {
  const float lr = p.lr, mu = p.momentum, wd = p.weight_decay;
  const bool use_momentum = mu != 0.0f, nesterov = p.nesterov;
#pragma omp parallel for schedule(static) if (n >= (size_t{1} << 15))
  for (size_t i = 0; i < n; ++i) {
    if (a.trainable && a.trainable[i] == 0.0f) continue;
    const float m = a.mask ? a.mask[i] : 1.0f;
    float g = a.g[i] * m + (a.decay ? a.decay[i] : 1.0f) * wd * a.w[i];
    if (use_momentum) {
      const float v = mu * a.v[i] + g;
      a.v[i] = v;
      g = nesterov ? g + mu * v : v;
    }
    a.w[i] = (a.w[i] - lr * g) * m;
  }
}

}  // namespace activeip
