// Elementwise ops over flat arrays of n floats: the pattern every simple CUDA kernel
// follows (grid-stride loop, one launcher per op, checked launch).
//   relu_fwd:  y = max(x, 0)           relu_bwd: dx = dy · [y > 0]   (from the output)
//   add:       y = a + b               (residual add; y may alias a or b)
//   axpy:      y += alpha · x          fill: y = value               scale: y *= alpha
#pragma once

#include <cstddef>

#include "kernels/cuda_stream.h"

namespace activeip {

void relu_fwd_cpu(size_t n, const float* x, float* y);
void relu_bwd_cpu(size_t n, const float* y, const float* dy, float* dx);
void add_cpu(size_t n, const float* a, const float* b, float* y);
void axpy_cpu(size_t n, float alpha, const float* x, float* y);
void fill_cpu(size_t n, float value, float* y);
void scale_cpu(size_t n, float alpha, float* y);

#ifdef ACTIVEIP_CUDA
void relu_fwd_cuda(size_t n, const float* x, float* y, cudaStream_t stream);
void relu_bwd_cuda(size_t n, const float* y, const float* dy, float* dx, cudaStream_t stream);
void add_cuda(size_t n, const float* a, const float* b, float* y, cudaStream_t stream);
void axpy_cuda(size_t n, float alpha, const float* x, float* y, cudaStream_t stream);
void fill_cuda(size_t n, float value, float* y, cudaStream_t stream);
void scale_cuda(size_t n, float alpha, float* y, cudaStream_t stream);
#endif

}  // namespace activeip
