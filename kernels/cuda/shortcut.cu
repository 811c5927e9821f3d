// Option-A shortcut on the GPU (contract in kernels/shortcut.h): both directions are
// gathers with one thread per output element (channel fastest, so warps read and write
// contiguous channels); backward writes every dx element, zeros included, so no memset.
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda_check.h"
#include "kernels/shortcut.h"

namespace activeip {

static __global__ void pad_shortcut_fwd_kernel(PadShortcutShape s, int P, int Q, int K, const float* x, float* y) {
  const size_t total = static_cast<size_t>(s.N) * P * Q * K;
  for (size_t i = launch::thread_index(); i < total; i += launch::thread_count()) {
    const int k = static_cast<int>(i % K);
    const size_t npq = i / K;
    const int q = static_cast<int>(npq % Q), p = static_cast<int>(npq / Q % P);
    const size_t n = npq / Q / P;
    const int c = k - s.pad_before;
    y[i] = c >= 0 && c < s.C ? x[((n * s.H + p * s.stride) * s.W + q * s.stride) * s.C + c] : 0.0f;
  }
}

static __global__ void pad_shortcut_bwd_kernel(PadShortcutShape s, int P, int Q, int K, const float* dy, float* dx) {
  const size_t total = static_cast<size_t>(s.N) * s.H * s.W * s.C;
  for (size_t i = launch::thread_index(); i < total; i += launch::thread_count()) {
    const int c = static_cast<int>(i % s.C);
    const size_t nhw = i / s.C;
    const int w = static_cast<int>(nhw % s.W), h = static_cast<int>(nhw / s.W % s.H);
    const size_t n = nhw / s.W / s.H;
    float v = 0.0f;
    if (h % s.stride == 0 && w % s.stride == 0)
      v = dy[((n * P + h / s.stride) * Q + w / s.stride) * K + c + s.pad_before];
    dx[i] = v;
  }
}

void pad_shortcut_fwd_cuda(const PadShortcutShape& s, const float* x, float* y, cudaStream_t stream) {
  const size_t total = static_cast<size_t>(s.N) * s.P() * s.Q() * s.K();
  if (total == 0) return;
  pad_shortcut_fwd_kernel<<<launch::grid_for(total), launch::kBlock, 0, stream>>>(s, s.P(), s.Q(), s.K(), x, y);
  CUDA_CHECK_LAUNCH();
}

void pad_shortcut_bwd_cuda(const PadShortcutShape& s, const float* dy, float* dx, cudaStream_t stream) {
  const size_t total = static_cast<size_t>(s.N) * s.H * s.W * s.C;
  if (total == 0) return;
  pad_shortcut_bwd_kernel<<<launch::grid_for(total), launch::kBlock, 0, stream>>>(s, s.P(), s.Q(), s.K(), dy, dx);
  CUDA_CHECK_LAUNCH();
}

}  // namespace activeip
