// Stamping square patches onto a normalised NHWC batch (fingerprint triggers): sample n
// with patch[n] ≥ 0 gets patch p = patch[n] of the bank written at (top, left) =
// (origin[2n], origin[2n+1]):
//   x[n, top+i, left+j, c] = bank[p, i, j, c]   for 0 ≤ i, j < size
// Samples with patch[n] < 0 are left as they are. The bank holds already-normalised
// values, so stamping after augmentation + normalisation is a plain overwrite.
#pragma once

#include <cstdint>

#include "kernels/cuda_stream.h"

namespace activeip {

struct StampShape {
  int N = 0, H = 0, W = 0, C = 0;  // the batch
  int size = 0;                    // patch side, in pixels
  int patches = 0;                 // patches in the bank
};

struct StampArgs {
  const float* bank;      // patches × size × size × C
  const int32_t* patch;   // N bank indices, −1 = no stamp
  const int32_t* origin;  // 2N (top, left); the patch lies inside the image
  float* x;               // N×H×W×C, stamped in place
};

void stamp_cpu(const StampShape& s, const StampArgs& a);

#ifdef ACTIVEIP_CUDA
void stamp_cuda(const StampShape& s, const StampArgs& a, cudaStream_t stream);
#endif

}  // namespace activeip
