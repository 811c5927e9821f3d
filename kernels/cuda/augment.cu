// The training data path on the GPU (contract in kernels/augment.h): one thread per output
// element of the N×H×W×C batch, channel fastest, gathers its uint8 pixel from the resident
// dataset through the index, crop offset and flip of its sample, and writes the normalised
// float; cells that fall in the zero padding get (0 − mean)/std. Crop, flip and normalise
// are fused, so each output is written once and the batch never exists as uint8.
#include "kernels/augment.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda_check.h"

namespace activeip {

// The arithmetic is the CPU's, (px/255 − mean)/std with IEEE division, so the outputs match
// it bit for bit.
static __global__ void augment_kernel(AugmentShape s, AugmentArgs a) {
  const size_t img = static_cast<size_t>(s.H) * s.W * s.C;
  const size_t total = img * s.N;
  for (size_t i = launch::thread_index(); i < total; i += launch::thread_count()) {
    const int c = static_cast<int>(i % s.C);
    const size_t pix = i / s.C;
    const int w = static_cast<int>(pix % s.W);
    const int h = static_cast<int>(pix / s.W % s.H);
    const int n = static_cast<int>(pix / s.W / s.H);
    const int row = a.crop ? a.crop[2 * n] - s.pad : 0;
    const int col = a.crop ? a.crop[2 * n + 1] - s.pad : 0;
    const bool flip = a.flip && a.flip[n];
    const int sh = h + row;
    const int sw = (flip ? s.W - 1 - w : w) + col;
    const bool inside = sh >= 0 && sh < s.H && sw >= 0 && sw < s.W;
    const float px =
        inside
            ? static_cast<float>(a.images[a.index[n] * img + (static_cast<size_t>(sh) * s.W + sw) * s.C + c]) / 255.0f
            : 0.0f;
    a.out[i] = (px - a.mean[c]) / a.std[c];
  }
}

void augment_cuda(const AugmentShape& s, const AugmentArgs& a, cudaStream_t stream) {
  const size_t total = static_cast<size_t>(s.N) * s.H * s.W * s.C;
  if (total == 0) return;
  augment_kernel<<<launch::grid_for(total), launch::kBlock, 0, stream>>>(s, a);
  CUDA_CHECK_LAUNCH();
}

}  // namespace activeip
