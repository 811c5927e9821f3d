// The training data path on the CPU: gather uint8 NHWC images by index, random-crop from
// the zero-padded image, flip horizontally, normalise per channel, all in one pass that
// writes each output pixel once. Output pixel (h, w) of sample n reads the crop at column
// w' = flip ? W−1−w : w (the flip acts on the cropped image, as torchvision applies
// RandomCrop before RandomHorizontalFlip), i.e. source pixel (h + row − pad, w' + col − pad).
#include "kernels/augment.h"

#include <cstddef>
#include <vector>

namespace activeip {

void augment_cpu(const AugmentShape& s, const AugmentArgs& a) {
  const int H = s.H, W = s.W, C = s.C;
  const size_t img = static_cast<size_t>(H) * W * C;
  // (px/255 − mean)/std for the padding value px = 0, per channel.
  std::vector<float> pad_value(C);
  for (int c = 0; c < C; ++c) pad_value[c] = (0.0f - a.mean[c]) / a.std[c];
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < s.N; ++n)
    for (int h = 0; h < H; ++h) {
      const uint8_t* src = a.images + static_cast<size_t>(a.index[n]) * img;
      const int row = a.crop ? a.crop[2 * n] - s.pad : 0;
      const int col = a.crop ? a.crop[2 * n + 1] - s.pad : 0;
      const bool flip = a.flip && a.flip[n];
      const int sh = h + row;
      float* out = a.out + n * img + static_cast<size_t>(h) * W * C;
      for (int w = 0; w < W; ++w) {
        const int sw = (flip ? W - 1 - w : w) + col;
        float* o = out + static_cast<size_t>(w) * C;
        if (sh < 0 || sh >= H || sw < 0 || sw >= W) {
          for (int c = 0; c < C; ++c) o[c] = pad_value[c];
        } else {
          const uint8_t* px = src + (static_cast<size_t>(sh) * W + sw) * C;
          for (int c = 0; c < C; ++c) o[c] = (static_cast<float>(px[c]) / 255.0f - a.mean[c]) / a.std[c];
        }
      }
    }
}

}  // namespace activeip
