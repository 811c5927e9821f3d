// Softmax cross-entropy with label smoothing ε over N rows of C logits, as PyTorch's
// CrossEntropyLoss(label_smoothing=ε): target q = (1 − ε)·onehot(y) + ε/C,
// loss_n = −Σ_c q_c · log softmax(z_n)_c. Forward writes the softmax probabilities (kept
// for backward and for accuracy) and the per-row loss; backward writes
// dlogits = scale · (softmax − q), with scale = 1/N for a mean-reduced loss.
#pragma once

#include <cstdint>

#include "kernels/cuda_stream.h"

namespace activeip {

struct XentShape {
  int N = 0, C = 0;
};

void softmax_xent_fwd_cpu(const XentShape& s, float smoothing, const float* logits, const int32_t* labels, float* probs,
                          float* loss);
void softmax_xent_bwd_cpu(const XentShape& s, float smoothing, const float* probs, const int32_t* labels, float scale,
                          float* dlogits);

#ifdef ACTIVEIP_CUDA
void softmax_xent_fwd_cuda(const XentShape& s, float smoothing, const float* logits, const int32_t* labels,
                           float* probs, float* loss, cudaStream_t stream);
void softmax_xent_bwd_cuda(const XentShape& s, float smoothing, const float* probs, const int32_t* labels, float scale,
                           float* dlogits, cudaStream_t stream);
#endif

// Specification in double.
void softmax_xent_fwd_ref(const XentShape& s, double smoothing, const double* logits, const int32_t* labels,
                          double* loss);
void softmax_xent_bwd_ref(const XentShape& s, double smoothing, const double* logits, const int32_t* labels,
                          double scale, double* dlogits);

}  // namespace activeip
