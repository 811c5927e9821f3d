// The training data path: gather a batch from a uint8 NHWC dataset, random-crop with zero
// padding (the crop of sample n starts at (crop[2n], crop[2n+1]) in the padded image, each
// in [0, 2·pad]), optionally flip horizontally, and normalise per channel:
//   out[n,h,w,c] = (px/255 − mean[c]) / std[c],  px = 0 outside the image (torchvision's
//   RandomCrop(padding=pad, fill=0) then Normalize).
// crop == nullptr and flip == nullptr give the plain evaluation transform.
#pragma once

#include <cstdint>

#include "kernels/cuda_stream.h"

namespace activeip {

struct AugmentShape {
  int N = 0, H = 0, W = 0, C = 0;  // batch size and image shape
  int pad = 4;
};

struct AugmentArgs {
  const uint8_t* images;  // dataset, count×H×W×C
  const int32_t* index;   // N dataset indices
  const int32_t* crop;    // 2N offsets (row, col) in [0, 2·pad], or null
  const uint8_t* flip;    // N flags, or null
  const float* mean;      // C
  const float* std;       // C
  float* out;             // N×H×W×C
};

void augment_cpu(const AugmentShape& s, const AugmentArgs& a);

#ifdef ACTIVEIP_CUDA
void augment_cuda(const AugmentShape& s, const AugmentArgs& a, cudaStream_t stream);
#endif

}  // namespace activeip
