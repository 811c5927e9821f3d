// Fully connected layer on the GPU (contract in kernels/linear.h), PyTorch layout: x N×IN,
// W OUT×IN, y N×OUT. The products are gemm_cuda calls (fprop y = x·Wᵀ, dgrad dx = dy·W,
// wgrad dW += dyᵀ·x with beta = 1); the bias is added to y after fprop, and db accumulates the
// column sums of dy. The two bias kernels serve the cuBLAS comparator as well.
#include "kernels/linear.h"

#include "base/error.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda_check.h"

namespace activeip {
namespace {

constexpr int kColumns = 32;   // db: columns per block, one per lane, so dy rows are read coalesced
constexpr int kRowGroups = 8;  // db: warps per block, each summing every 8th row

}  // namespace

// y[i] += b[i mod OUT] over the N×OUT output.
static __global__ void linear_bias_fwd_kernel(size_t n, int OUT, const float* b, float* y) {
  for (size_t i = launch::thread_index(); i < n; i += launch::thread_count()) y[i] += b[i % OUT];
}

// Block (32 × 8) sums columns [32·blockIdx.x, +32) of dy: warp r adds rows r, r+8, … in double,
// then warp 0 adds the eight partial sums in order, so the result does not depend on timing.
static __global__ void linear_bias_bwd_kernel(int N, int OUT, const float* dy, float* db) {
  __shared__ double partial[kRowGroups][kColumns];
  const int o = blockIdx.x * kColumns + threadIdx.x;
  double sum = 0.0;
  if (o < OUT)
    for (int n = threadIdx.y; n < N; n += kRowGroups) sum += dy[static_cast<size_t>(n) * OUT + o];
  partial[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();  // all partial sums are written before warp 0 reads them
  if (threadIdx.y == 0 && o < OUT) {
    double total = 0.0;
    for (int r = 0; r < kRowGroups; ++r) total += partial[r][threadIdx.x];
    db[o] += static_cast<float>(total);
  }
}

void linear_bias_fwd_cuda(const LinearShape& s, const float* b, float* y, cudaStream_t stream) {
  ENSURE(s.N >= 0 && s.OUT >= 0, "linear N=%d OUT=%d", s.N, s.OUT);
  const size_t n = static_cast<size_t>(s.N) * s.OUT;
  if (n == 0) return;
  linear_bias_fwd_kernel<<<launch::grid_for(n), launch::kBlock, 0, stream>>>(n, s.OUT, b, y);
  CUDA_CHECK_LAUNCH();
}

void linear_bias_bwd_cuda(const LinearShape& s, const float* dy, float* db, cudaStream_t stream) {
  ENSURE(s.N >= 0 && s.OUT >= 0, "linear N=%d OUT=%d", s.N, s.OUT);
  if (s.OUT == 0) return;  // N == 0 still runs: db += 0
  const unsigned blocks = static_cast<unsigned>((s.OUT + kColumns - 1) / kColumns);
  linear_bias_bwd_kernel<<<blocks, dim3(kColumns, kRowGroups), 0, stream>>>(s.N, s.OUT, dy, db);
  CUDA_CHECK_LAUNCH();
}

void linear_fwd_cuda(const LinearShape& s, const float* x, const float* w, const float* b, float* y,
                     cudaStream_t stream) {
  gemm_cuda(linear_fprop_gemm(s), x, w, y, stream);
  if (b) linear_bias_fwd_cuda(s, b, y, stream);
}

void linear_bwd_cuda(const LinearShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* db, cudaStream_t stream) {
  gemm_cuda(linear_dgrad_gemm(s), dy, w, dx, stream);
  gemm_cuda(linear_wgrad_gemm(s), dy, x, dw, stream);
  if (db) linear_bias_bwd_cuda(s, dy, db, stream);
}

}  // namespace activeip
