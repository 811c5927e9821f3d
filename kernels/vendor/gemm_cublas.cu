// cuBLAS comparators for gemm and linear (contracts in kernels/gemm.h, kernels/linear.h).
// cuBLAS is column-major and a row-major matrix is its transpose there, so the row-major
// C = op(A)·op(B) is computed as the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: the operands swap
// and each keeps its own transpose flag. The linear layer runs the same three products as
// linear_*_cuda, with the same bias kernels.
#include "kernels/gemm.h"
#include "kernels/linear.h"
#include "kernels/vendor/vendor.h"

namespace activeip {

void gemm_cublas(VendorHandles& h, const GemmShape& s, const float* A, const float* B, float* C) {
  gemm_check_shape(s);
  const int M = s.M, N = s.N, K = s.K;
  if (M == 0 || N == 0) return;
  // Column-major view: B (row-major K×N, or N×K when trans_b) is N×K as stored, or K×N; same for A.
  const cublasOperation_t op_b = s.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = s.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  // cuBLAS does not read C when beta == 0, as the contract asks.
  CUBLAS_CHECK(cublasSgemm(h.cublas(), op_b, op_a, N, M, K, &s.alpha, B, s.ldb, A, s.lda, &s.beta, C, s.ldc));
}

void linear_fwd_cublas(VendorHandles& h, const LinearShape& s, const float* x, const float* w, const float* b,
                       float* y) {
  gemm_cublas(h, linear_fprop_gemm(s), x, w, y);
  if (b) linear_bias_fwd_cuda(s, b, y, h.stream());
}

void linear_bwd_cublas(VendorHandles& h, const LinearShape& s, const float* x, const float* w, const float* dy,
                       float* dx, float* dw, float* db) {
  gemm_cublas(h, linear_dgrad_gemm(s), dy, w, dx);
  gemm_cublas(h, linear_wgrad_gemm(s), dy, x, dw);
  if (db) linear_bias_bwd_cuda(s, dy, db, h.stream());
}

}  // namespace activeip
