// The parameter-free "option A" shortcut of He et al.'s CIFAR ResNets, on NHWC tensors:
//   y[n,p,q,k] = x[n, p·stride, q·stride, k − pad_before]  for pad_before ≤ k < pad_before + C,
//   and 0 in the pad_before leading and pad_after trailing channels (P = ⌈H/stride⌉).
// Backward overwrites dx: dx[n,h,w,c] = dy[n, h/stride, w/stride, c + pad_before] where
// stride divides h and w, else 0.
#pragma once

#include "kernels/cuda_stream.h"

namespace activeip {

struct PadShortcutShape {
  int N = 0, H = 0, W = 0, C = 0;  // input N×H×W×C
  int stride = 1, pad_before = 0, pad_after = 0;
  int P() const { return (H + stride - 1) / stride; }
  int Q() const { return (W + stride - 1) / stride; }
  int K() const { return C + pad_before + pad_after; }
};

void pad_shortcut_fwd_cpu(const PadShortcutShape& s, const float* x, float* y);
void pad_shortcut_bwd_cpu(const PadShortcutShape& s, const float* dy, float* dx);

#ifdef ACTIVEIP_CUDA
void pad_shortcut_fwd_cuda(const PadShortcutShape& s, const float* x, float* y, cudaStream_t stream);
void pad_shortcut_bwd_cuda(const PadShortcutShape& s, const float* dy, float* dx, cudaStream_t stream);
#endif

}  // namespace activeip
