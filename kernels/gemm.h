// Single-precision GEMM, row-major: C = alpha * op(A) * op(B) + beta * C, with
// op(A) M×K, op(B) K×N, C M×N. The CPU path packs A and B into cache-sized panels and runs
// an AVX-512/AVX2 register-blocked micro-kernel under OpenMP; each element of C is owned by
// one thread and summed in a fixed order, so results do not depend on the thread count.
#pragma once

#include "kernels/cuda_stream.h"

namespace activeip {

struct GemmShape {
  int M = 0, N = 0, K = 0;
  bool trans_a = false;  // A stored K×M (lda ≥ M) instead of M×K (lda ≥ K)
  bool trans_b = false;  // B stored N×K (ldb ≥ K) instead of K×N (ldb ≥ N)
  int lda = 0, ldb = 0, ldc = 0;
  float alpha = 1.0f, beta = 0.0f;  // beta == 0 overwrites C (NaNs in C are not read)
  double flops() const { return 2.0 * M * N * K; }
};

// Throws activeip::Error unless M, N, K ≥ 0 and lda, ldb, ldc fit them (every path checks).
void gemm_check_shape(const GemmShape& s);

// Fast path (packing + micro-kernel + OpenMP).
void gemm_cpu(const GemmShape& s, const float* A, const float* B, float* C);

// The bf16 pass (kernels/bf16.h's rounding plan): op(A) and op(B) rounded to bf16, products
// accumulated in fp32 (AVX512-BF16), alpha and beta applied in fp32. The same tiling and
// fixed summation order as gemm_cpu. Throws Error on a CPU without AVX512-BF16.
void gemm_bf16_cpu(const GemmShape& s, const float* A, const float* B, float* C);

// Specification: plain triple loop with double accumulators.
void gemm_ref(const GemmShape& s, const double* A, const double* B, double* C);

#ifdef ACTIVEIP_CUDA
// Shared-memory tiled FFMA kernel, fp32 throughout (kernels/cuda/gemm.cu).
void gemm_cuda(const GemmShape& s, const float* A, const float* B, float* C, cudaStream_t stream);
#endif

#ifdef ACTIVEIP_CUDA
class VendorHandles;  // kernels/vendor/vendor.h

// cuBLAS comparator (kernels/vendor/gemm_cublas.cu): SGEMM on the handles' stream, without TF32.
void gemm_cublas(VendorHandles& h, const GemmShape& s, const float* A, const float* B, float* C);
#endif

}  // namespace activeip
