// 2-D convolution (cross-correlation, as PyTorch), NHWC activations, KRSC weights.
//   y[n,p,q,k] = bias[k] + sum_{r,s,c} x[n, p*stride - pad + r, q*stride - pad + s, c] * w[k,r,s,c]
// fprop writes y; dgrad writes (overwrites) dx; wgrad ADDS into dw (and into dbias when
// it is not null), so gradients of a step accumulate in the flat gradient buffer.
// The CPU fast paths: an implicit im2col (gathered per row panel) feeding gemm_cpu's blocked
// micro-kernel, a direct convolution for few channels and Winograd for 3×3 stride-1 filters;
// the bf16 passes run the im2col GEMMs on bf16 operands.
#pragma once

#include <cstddef>

#include "kernels/cuda_stream.h"

namespace activeip {

struct Conv2dShape {
  int N = 0, H = 0, W = 0, C = 0;  // input  N×H×W×C
  int K = 0, R = 0, S = 0;         // weight K×R×S×C
  int stride = 1, pad = 0;
  int P() const { return H + 2 * pad < R ? 0 : (H + 2 * pad - R) / stride + 1; }  // output height
  int Q() const { return W + 2 * pad < S ? 0 : (W + 2 * pad - S) / stride + 1; }  // output width
  double flops() const { return 2.0 * N * P() * Q() * K * R * S * C; }            // per pass
  size_t x_size() const { return size_t(N) * H * W * C; }                         // elements of x (and dx)
  size_t w_size() const { return size_t(K) * R * S * C; }                         // elements of w (and dw)
  size_t y_size() const { return size_t(N) * P() * Q() * K; }                     // elements of y (and dy)
};

void conv2d_fprop_cpu(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y);
void conv2d_dgrad_cpu(const Conv2dShape& s, const float* dy, const float* w, float* dx);
// dx = dgrad(dy) + dx_add (dx_add: x_size() floats, not aliasing dx): a residual block's
// shortcut gradient added to its first convolution's, in the same pass where the direct
// kernel runs.
void conv2d_dgrad_add_cpu(const Conv2dShape& s, const float* dy, const float* w, const float* dx_add, float* dx);
void conv2d_wgrad_cpu(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias);

// The three CPU algorithms the conv2d_*_cpu functions choose between (conv2d_use_winograd, then
// conv2d_use_direct): the im2col GEMMs (any shape), a direct convolution for few channels
// (C, K ≤ 32, R·S ≤ 25, AVX-512 builds only: conv2d_direct_supported), which reads x and dy
// in place and keeps a row of output pixels × the channels in registers, and Winograd.
// Same accumulation rules: each output summed in an order fixed by the shape.
bool conv2d_direct_supported(const Conv2dShape& s);
bool conv2d_use_direct(const Conv2dShape& s);
void conv2d_fprop_im2col_cpu(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y);
void conv2d_dgrad_im2col_cpu(const Conv2dShape& s, const float* dy, const float* w, float* dx);
void conv2d_wgrad_im2col_cpu(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias);
void conv2d_fprop_direct_cpu(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y);
void conv2d_dgrad_direct_cpu(const Conv2dShape& s, const float* dy, const float* w, float* dx,
                             const float* dx_add = nullptr);
void conv2d_wgrad_direct_cpu(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias);
// Winograd F(2×2, 3×3) for 3×3 filters with stride 1 and pad 1 (conv2d_winograd_supported):
// 2.25× fewer multiplies than the GEMMs, in all three passes (dgrad + dx_add as above).
bool conv2d_winograd_supported(const Conv2dShape& s);
bool conv2d_use_winograd(const Conv2dShape& s);        // for fprop and dgrad
bool conv2d_use_winograd_wgrad(const Conv2dShape& s);  // for wgrad
void conv2d_fprop_winograd_cpu(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y);
void conv2d_dgrad_winograd_cpu(const Conv2dShape& s, const float* dy, const float* w, float* dx,
                               const float* dx_add = nullptr);
void conv2d_wgrad_winograd_cpu(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias);
// dbias += the column sums of dy (N·P·Q × K), summed in double: wgrad's bias term.
void conv2d_bias_grad_cpu(const Conv2dShape& s, const float* dy, float* dbias);

// The three passes on bf16 operands (kernels/bf16.h's rounding plan: x, w and dy rounded to
// bf16, fp32 accumulation, the bias and its gradient in fp32), as the im2col GEMMs on the
// AVX512-BF16 micro-kernel, with the same accumulation rules. Throw Error on a CPU without
// AVX512-BF16 (cpu_has_avx512_bf16).
void conv2d_fprop_bf16_cpu(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y);
void conv2d_dgrad_bf16_cpu(const Conv2dShape& s, const float* dy, const float* w, float* dx);
void conv2d_wgrad_bf16_cpu(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias);

#ifdef ACTIVEIP_CUDA
// Implicit-GEMM FFMA kernels, fp32 throughout (kernels/cuda/conv2d.cu). wgrad splits its
// reduction over blocks and combines them with atomicAdd, so dw and dbias may differ from
// run to run in the last bits.
void conv2d_fprop_cuda(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                       cudaStream_t stream);
void conv2d_dgrad_cuda(const Conv2dShape& s, const float* dy, const float* w, float* dx, cudaStream_t stream);
void conv2d_wgrad_cuda(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias,
                       cudaStream_t stream);
#endif

// Specification, in double (the test oracle for the fast path and for finite differences).
void conv2d_fprop_ref(const Conv2dShape& s, const double* x, const double* w, const double* bias, double* y);
void conv2d_dgrad_ref(const Conv2dShape& s, const double* dy, const double* w, double* dx);
void conv2d_wgrad_ref(const Conv2dShape& s, const double* x, const double* dy, double* dw, double* dbias);

#if defined(ACTIVEIP_CUDA) && defined(ACTIVEIP_CUDNN)
class VendorHandles;  // kernels/vendor/vendor.h

// cuDNN comparators (kernels/vendor/conv2d_cudnn.cu), same layouts and accumulation rules, on
// the handles' stream; FMA math only (no TF32), algorithms found once per shape.
void conv2d_fprop_cudnn(VendorHandles& h, const Conv2dShape& s, const float* x, const float* w, const float* bias,
                        float* y);
void conv2d_dgrad_cudnn(VendorHandles& h, const Conv2dShape& s, const float* dy, const float* w, float* dx);
void conv2d_wgrad_cudnn(VendorHandles& h, const Conv2dShape& s, const float* x, const float* dy, float* dw,
                        float* dbias);
#endif

}  // namespace activeip
