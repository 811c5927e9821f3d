// Fully connected layer, PyTorch layout: y = x·Wᵀ + b with x N×IN, W OUT×IN, b OUT, y N×OUT.
// Backward overwrites dx (N×IN) and ADDS into dw (OUT×IN) and db (OUT, when not null).
#pragma once

#include "kernels/cuda_stream.h"
#include "kernels/gemm.h"

namespace activeip {

struct LinearShape {
  int N = 0, IN = 0, OUT = 0;
  double flops() const { return 2.0 * N * IN * OUT; }
};

void linear_fwd_cpu(const LinearShape& s, const float* x, const float* w, const float* b, float* y);
void linear_bwd_cpu(const LinearShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                    float* db);

// The same on bf16 operands (kernels/bf16.h's rounding plan: the three products through
// gemm_bf16_cpu, the bias and its gradient in fp32). Throw Error on a CPU without AVX512-BF16.
void linear_fwd_bf16_cpu(const LinearShape& s, const float* x, const float* w, const float* b, float* y);
void linear_bwd_bf16_cpu(const LinearShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                         float* db);

// Specification in double.
void linear_fwd_ref(const LinearShape& s, const double* x, const double* w, const double* b, double* y);
void linear_bwd_ref(const LinearShape& s, const double* x, const double* w, const double* dy, double* dx, double* dw,
                    double* db);

// The layer's three products as row-major GEMMs, shared by the CPU, CUDA and cuBLAS paths:
// fprop y = x·Wᵀ, dgrad dx = dy·W, wgrad dW += dyᵀ·x (dy read in place as op(A) = dyᵀ).
inline GemmShape linear_fprop_gemm(const LinearShape& s) {
  return {.M = s.N,
          .N = s.OUT,
          .K = s.IN,
          .trans_a = false,
          .trans_b = true,
          .lda = s.IN,
          .ldb = s.IN,
          .ldc = s.OUT,
          .alpha = 1.0f,
          .beta = 0.0f};
}
inline GemmShape linear_dgrad_gemm(const LinearShape& s) {
  return {.M = s.N,
          .N = s.IN,
          .K = s.OUT,
          .trans_a = false,
          .trans_b = false,
          .lda = s.OUT,
          .ldb = s.IN,
          .ldc = s.IN,
          .alpha = 1.0f,
          .beta = 0.0f};
}
inline GemmShape linear_wgrad_gemm(const LinearShape& s) {
  return {.M = s.OUT,
          .N = s.IN,
          .K = s.N,
          .trans_a = true,
          .trans_b = false,
          .lda = s.OUT,
          .ldb = s.IN,
          .ldc = s.IN,
          .alpha = 1.0f,
          .beta = 1.0f};
}

#ifdef ACTIVEIP_CUDA
// gemm_cuda for the three products, plus the two bias kernels below (kernels/cuda/linear.cu).
void linear_fwd_cuda(const LinearShape& s, const float* x, const float* w, const float* b, float* y,
                     cudaStream_t stream);
void linear_bwd_cuda(const LinearShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* db, cudaStream_t stream);

// The bias halves of the layer, shared with the cuBLAS path: y[n,o] += b[o] over N×OUT, and
// db[o] += Σ_n dy[n,o] (summed in double, in a fixed order).
void linear_bias_fwd_cuda(const LinearShape& s, const float* b, float* y, cudaStream_t stream);
void linear_bias_bwd_cuda(const LinearShape& s, const float* dy, float* db, cudaStream_t stream);

#endif

#ifdef ACTIVEIP_CUDA
class VendorHandles;  // kernels/vendor/vendor.h

// cuBLAS comparator (kernels/vendor/gemm_cublas.cu): the same products through gemm_cublas.
void linear_fwd_cublas(VendorHandles& h, const LinearShape& s, const float* x, const float* w, const float* b,
                       float* y);
void linear_bwd_cublas(VendorHandles& h, const LinearShape& s, const float* x, const float* w, const float* dy,
                       float* dx, float* dw, float* db);
#endif

}  // namespace activeip
