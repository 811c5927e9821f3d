// The convolution shapes that tests and benchmarks share: one case type and two tables — the
// awkward shapes every conv2d implementation is checked on (N = 1, C = 1 and 3, C and K off
// the register and CUDA tiles, odd and non-square sizes, 28×28, stride 2, 1×1 shortcuts, 5×5,
// no padding, K past the reduction block) and the ResNet CIFAR layers the CPU bench times.
#pragma once

#include <cstdio>
#include <string>

#include "kernels/conv2d.h"

namespace activeip {

struct ConvShapeCase {
  const char* name;
  Conv2dShape s;  // in kResNetConvLayers, N is set by the caller (--batch)
};

// "N2 32x32 C3 K16 3x3 stride1 pad1"
inline std::string conv_shape_str(const Conv2dShape& s) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "N%d %dx%d C%d K%d %dx%d stride%d pad%d", s.N, s.H, s.W, s.C, s.K, s.R, s.S, s.stride,
                s.pad);
  return buf;
}

inline constexpr ConvShapeCase kConvTestCases[] = {
    // {N, H, W, C, K, R, S, stride, pad}
    {"first layer C=3 28x28", {1, 28, 28, 3, 17, 3, 3, 1, 1}},
    {"ResNet CIFAR 3x3 layer", {2, 32, 32, 64, 64, 3, 3, 1, 1}},
    {"odd sizes, stride 2", {3, 7, 9, 5, 17, 3, 3, 2, 1}},
    {"downsampling 3x3", {2, 32, 32, 17, 64, 3, 3, 2, 1}},
    {"1x1 stride 1: x is the GEMM operand", {2, 28, 28, 17, 5, 1, 1, 1, 0}},
    {"1x1 stride 2 shortcut, odd sizes", {2, 9, 7, 64, 17, 1, 1, 2, 0}},
    {"5x5", {1, 13, 11, 5, 64, 5, 5, 1, 2}},
    {"deeper layer, RSC past the reduction block", {4, 8, 8, 64, 128, 3, 3, 1, 1}},
    {"no padding, tiny output", {1, 4, 4, 128, 33, 3, 3, 1, 0}},
    {"K past the reduction block and the 8-wide slivers", {2, 4, 4, 32, 300, 3, 3, 1, 1}},
    {"K past the 16-wide slivers: several column tiles", {1, 5, 5, 8, 520, 3, 3, 2, 1}},
    {"N=1 3x3 pad 1", {1, 8, 8, 16, 32, 3, 3, 1, 1}},
    {"CIFAR first layer C=3 32x32", {2, 32, 32, 3, 16, 3, 3, 1, 1}},
    {"Fashion-MNIST first layer C=1 28x28", {2, 28, 28, 1, 8, 3, 3, 1, 1}},
    {"odd C=7 K=13 9x11", {3, 9, 11, 7, 13, 3, 3, 1, 1}},
    {"3x3 stride 2", {2, 16, 16, 32, 64, 3, 3, 2, 1}},
    {"3x3 stride 2 C=16 K=32", {2, 16, 16, 16, 32, 3, 3, 2, 1}},
    {"3x3 stride 2 pad 0, last row and column unread", {2, 16, 16, 8, 8, 3, 3, 2, 0}},
    {"1x1 stride 2 shortcut", {2, 16, 16, 32, 64, 1, 1, 2, 0}},
    {"1x1 stride 2 shortcut C=16 K=32", {2, 16, 16, 16, 32, 1, 1, 2, 0}},
    {"5x3 stride 2 pad 2 on 13x12", {2, 13, 12, 5, 6, 5, 3, 2, 2}},
    {"C=64 K=64 16x16 N=4", {4, 16, 16, 64, 64, 3, 3, 1, 1}},
    {"C=K=64 16x16", {2, 16, 16, 64, 64, 3, 3, 1, 1}},
    {"C=72 K=80 off the tiles", {2, 10, 10, 72, 80, 3, 3, 1, 1}},
    {"N=8 32x32 C=K=64: wgrad splits its reduction", {8, 32, 32, 64, 64, 3, 3, 1, 1}},
};

inline constexpr ConvShapeCase kResNetConvLayers[] = {
    // {N, H, W, C, K, R, S, stride, pad}
    {"layer1 3x3 64->64 32x32", {0, 32, 32, 64, 64, 3, 3, 1, 1}},
    {"layer2.0 3x3 64->128 s2", {0, 32, 32, 64, 128, 3, 3, 2, 1}},
    {"layer2.0 shortcut 1x1 s2", {0, 32, 32, 64, 128, 1, 1, 2, 0}},
    {"layer2 3x3 128->128 16x16", {0, 16, 16, 128, 128, 3, 3, 1, 1}},
    {"layer3 3x3 256->256 8x8", {0, 8, 8, 256, 256, 3, 3, 1, 1}},
    {"layer4 3x3 512->512 4x4", {0, 4, 4, 512, 512, 3, 3, 1, 1}},
};

}  // namespace activeip
