// Max-pool and global average pool on the GPU (contracts in kernels/pool.h), NHWC.
// Every kernel runs one thread per output element with the channel fastest, so a warp reads
// and writes consecutive channels. Max-pool backward is a gather: each dx element visits the
// windows that can contain it and sums the dy whose argmax points at it, in the CPU's window
// order, so it needs no atomics, handles overlapping windows and is deterministic.
#include <cmath>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda_check.h"
#include "kernels/pool.h"

namespace activeip {

// The window is clipped to the image before the scan, so padding cells are never visited;
// the first in-image cell seeds the maximum, a strictly greater value replaces it (the first
// maximum wins ties) and a NaN replaces a number, exactly as maxpool2d_fwd_cpu.
static __global__ void maxpool2d_fwd_kernel(Pool2dShape s, int P, int Q, const float* x, float* y, int32_t* argmax) {
  const size_t total = static_cast<size_t>(s.N) * P * Q * s.C;
  for (size_t o = launch::thread_index(); o < total; o += launch::thread_count()) {
    const int c = static_cast<int>(o % s.C);
    const size_t pix = o / s.C;
    const int q = static_cast<int>(pix % Q);
    const int p = static_cast<int>(pix / Q % P);
    const size_t n = pix / Q / P;
    const float* img = x + n * s.H * s.W * s.C + c;
    const int h0 = max(0, p * s.stride - s.pad), h1 = min(s.H, p * s.stride - s.pad + s.R);
    const int w0 = max(0, q * s.stride - s.pad), w1 = min(s.W, q * s.stride - s.pad + s.S);
    int32_t best_i = h0 * s.W + w0;
    float best = img[static_cast<size_t>(best_i) * s.C];
    for (int h = h0; h < h1; ++h)
      for (int w = (h == h0 ? w0 + 1 : w0); w < w1; ++w) {
        const int32_t i = h * s.W + w;
        const float v = img[static_cast<size_t>(i) * s.C];
        if (v > best || (isnan(v) && !isnan(best))) {
          best = v;
          best_i = i;
        }
      }
    y[o] = best;
    argmax[o] = best_i;
  }
}

// Input row h lies in the windows p with p·stride − pad ≤ h < p·stride − pad + R, i.e.
// p from ceil((h + pad − R + 1) / stride) to floor((h + pad) / stride), clipped to [0, P).
__device__ inline void windows_containing(int h, int pad, int R, int stride, int P, int& first, int& last) {
  const int lo = h + pad - R + 1;
  first = lo <= 0 ? 0 : (lo + stride - 1) / stride;
  last = min(P - 1, (h + pad) / stride);
}

// Overwrites every dx element (zero where no window picked it). The sum runs over (p, q) in
// increasing order, the order in which the CPU scatters, so the float sums are identical.
static __global__ void maxpool2d_bwd_kernel(Pool2dShape s, int P, int Q, const float* dy, const int32_t* argmax,
                                            float* dx) {
  const size_t total = static_cast<size_t>(s.N) * s.H * s.W * s.C;
  for (size_t i = launch::thread_index(); i < total; i += launch::thread_count()) {
    const int c = static_cast<int>(i % s.C);
    const size_t pix = i / s.C;
    const int w = static_cast<int>(pix % s.W);
    const int h = static_cast<int>(pix / s.W % s.H);
    const size_t n = pix / s.W / s.H;
    const int32_t self = h * s.W + w;
    int p0, p1, q0, q1;
    windows_containing(h, s.pad, s.R, s.stride, P, p0, p1);
    windows_containing(w, s.pad, s.S, s.stride, Q, q0, q1);
    const size_t out_img = n * P * Q;
    float sum = 0.0f;
    for (int p = p0; p <= p1; ++p)
      for (int q = q0; q <= q1; ++q) {
        const size_t o = (out_img + static_cast<size_t>(p) * Q + q) * s.C + c;
        if (argmax[o] == self) sum += dy[o];
      }
    dx[i] = sum;
  }
}

// One thread per (n, c) walks the H·W rows; neighbouring threads read neighbouring channels
// of the same row. The sum is kept in double, as the CPU does, so both round once at the end.
static __global__ void global_avgpool_fwd_kernel(GlobalPoolShape s, const float* x, float* y) {
  const size_t total = static_cast<size_t>(s.N) * s.C;
  for (size_t o = launch::thread_index(); o < total; o += launch::thread_count()) {
    const int c = static_cast<int>(o % s.C);
    const size_t n = o / s.C;
    const float* col = x + n * s.HW * s.C + c;
    double sum = 0;
    for (int i = 0; i < s.HW; ++i) sum += col[static_cast<size_t>(i) * s.C];
    y[o] = static_cast<float>(sum / s.HW);
  }
}

static __global__ void global_avgpool_bwd_kernel(GlobalPoolShape s, float inv, const float* dy, float* dx) {
  const size_t total = static_cast<size_t>(s.N) * s.HW * s.C;
  for (size_t i = launch::thread_index(); i < total; i += launch::thread_count()) {
    const size_t n = i / (static_cast<size_t>(s.HW) * s.C);
    dx[i] = dy[n * s.C + i % s.C] * inv;
  }
}

void maxpool2d_fwd_cuda(const Pool2dShape& s, const float* x, float* y, int32_t* argmax, cudaStream_t stream) {
  const int P = s.P(), Q = s.Q();
  const size_t total = static_cast<size_t>(s.N) * P * Q * s.C;
  if (total == 0) return;
  maxpool2d_fwd_kernel<<<launch::grid_for(total), launch::kBlock, 0, stream>>>(s, P, Q, x, y, argmax);
  CUDA_CHECK_LAUNCH();
}

void maxpool2d_bwd_cuda(const Pool2dShape& s, const float* dy, const int32_t* argmax, float* dx, cudaStream_t stream) {
  const size_t total = static_cast<size_t>(s.N) * s.H * s.W * s.C;
  if (total == 0) return;
  maxpool2d_bwd_kernel<<<launch::grid_for(total), launch::kBlock, 0, stream>>>(s, s.P(), s.Q(), dy, argmax, dx);
  CUDA_CHECK_LAUNCH();
}

void global_avgpool_fwd_cuda(const GlobalPoolShape& s, const float* x, float* y, cudaStream_t stream) {
  const size_t total = static_cast<size_t>(s.N) * s.C;
  if (total == 0 || s.HW == 0) return;
  global_avgpool_fwd_kernel<<<launch::grid_for(total), launch::kBlock, 0, stream>>>(s, x, y);
  CUDA_CHECK_LAUNCH();
}

void global_avgpool_bwd_cuda(const GlobalPoolShape& s, const float* dy, float* dx, cudaStream_t stream) {
  const size_t total = static_cast<size_t>(s.N) * s.HW * s.C;
  if (total == 0) return;
  const float inv = 1.0f / static_cast<float>(s.HW);
  global_avgpool_bwd_kernel<<<launch::grid_for(total), launch::kBlock, 0, stream>>>(s, inv, dy, dx);
  CUDA_CHECK_LAUNCH();
}

}  // namespace activeip
