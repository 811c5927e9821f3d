// Stamping square patches onto an NHWC batch (fingerprint triggers): sample n with
// patch[n] ≥ 0 gets patch p = patch[n] of the bank written at (top, left) =
// (origin[2n], origin[2n+1]):
//   x[n, top+i, left+j, c] = bank[p, i, j, c]   for 0 ≤ i, j < size
// Samples with patch[n] < 0 are left as they are. Two element types, one contract: float
// (the bank already normalised, stamped after augmentation + normalisation) and uint8 (the
// bank as pixels, stamped on gathered images before augmentation). Either is a plain overwrite.
#pragma once

#include <cstdint>

#include "kernels/cuda_stream.h"

namespace activeip {

struct StampShape {
  int N = 0, H = 0, W = 0, C = 0;  // the batch
  int size = 0;                    // patch side, in pixels
  int patches = 0;                 // patches in the bank
};

template <typename T>
struct StampArgsOf {
  const T* bank;          // patches × size × size × C
  const int32_t* patch;   // N bank indices, −1 = no stamp
  const int32_t* origin;  // 2N (top, left); the patch lies inside the image
  T* x;                   // N×H×W×C, stamped in place
};
using StampArgs = StampArgsOf<float>;      // normalised batches
using StampArgsU8 = StampArgsOf<uint8_t>;  // uint8 images

void stamp_cpu(const StampShape& s, const StampArgs& a);
void stamp_cpu(const StampShape& s, const StampArgsU8& a);

#ifdef ACTIVEIP_CUDA
void stamp_cuda(const StampShape& s, const StampArgs& a, cudaStream_t stream);
void stamp_cuda(const StampShape& s, const StampArgsU8& a, cudaStream_t stream);
#endif

}  // namespace activeip
