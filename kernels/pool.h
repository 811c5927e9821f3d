// Pooling on NHWC activations.
// Max-pool: y[n,p,q,c] = max over the R×S window (padding cells never win, as PyTorch's
// -inf padding); argmax records the flat input index h·W + w of the winner for backward
// (first maximum in window order on ties). Backward overwrites dx and scatters dy there.
// Global average pool: N×H×W×C → N×C, y = mean over H·W; backward spreads dy/(H·W).
#pragma once

#include <cstdint>

#include "kernels/cuda_stream.h"

namespace activeip {

struct Pool2dShape {
  int N = 0, H = 0, W = 0, C = 0;
  int R = 2, S = 2;  // window
  int stride = 2, pad = 0;
  int P() const { return H + 2 * pad < R ? 0 : (H + 2 * pad - R) / stride + 1; }
  int Q() const { return W + 2 * pad < S ? 0 : (W + 2 * pad - S) / stride + 1; }
};

void maxpool2d_fwd_cpu(const Pool2dShape& s, const float* x, float* y, int32_t* argmax);
void maxpool2d_bwd_cpu(const Pool2dShape& s, const float* dy, const int32_t* argmax, float* dx);

struct GlobalPoolShape {
  int N = 0, HW = 0, C = 0;  // input N×(H·W)×C
};

void global_avgpool_fwd_cpu(const GlobalPoolShape& s, const float* x, float* y);
void global_avgpool_bwd_cpu(const GlobalPoolShape& s, const float* dy, float* dx);

#ifdef ACTIVEIP_CUDA
void maxpool2d_fwd_cuda(const Pool2dShape& s, const float* x, float* y, int32_t* argmax, cudaStream_t stream);
void maxpool2d_bwd_cuda(const Pool2dShape& s, const float* dy, const int32_t* argmax, float* dx, cudaStream_t stream);
void global_avgpool_fwd_cuda(const GlobalPoolShape& s, const float* x, float* y, cudaStream_t stream);
void global_avgpool_bwd_cuda(const GlobalPoolShape& s, const float* dy, float* dx, cudaStream_t stream);
#endif

// Specification in double.
void maxpool2d_fwd_ref(const Pool2dShape& s, const double* x, double* y);
void maxpool2d_bwd_ref(const Pool2dShape& s, const double* x, const double* dy, double* dx);
void global_avgpool_fwd_ref(const GlobalPoolShape& s, const double* x, double* y);
void global_avgpool_bwd_ref(const GlobalPoolShape& s, const double* dy, double* dx);

}  // namespace activeip
