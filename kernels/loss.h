// Softmax cross-entropy with label smoothing ε over N rows of C logits, as PyTorch's
// CrossEntropyLoss(label_smoothing=ε): target q = (1 − ε)·onehot(y) + ε/C,
// loss_n = −Σ_c q_c · log softmax(z_n)_c. Forward writes the softmax probabilities (kept
// for backward and for accuracy) and the per-row loss; backward writes
// dlogits = scale · (softmax − q), with scale = 1/N for a mean-reduced loss.
//
// Soft-target cross-entropy at temperature T (knowledge distillation, Hinton et al. 2015):
// the targets are N rows of C probabilities q (each row sums to 1: the teacher's softmax at
// T), the student's distribution is p = softmax(z/T), and
//   loss_n = T² · KL(q_n ‖ p_n) = T² · Σ_c q_c · (log q_c − log p_c)     (0 · log 0 = 0),
// which differs from the cross-entropy −T²·Σ_c q_c·log p_c only by the constant T²·H(q),
// so it has the same gradient and is 0 when the student matches. With log p_c = z_c/T −
// lse(z/T) and Σ_c q_c = 1, ∂loss_n/∂z_c = T² · (p_c − q_c)/T = T · (p_c − q_c): backward
// writes dlogits = scale · T · (p − q). The T² keeps the gradient's size independent of T.
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

// Soft targets. probs receives p = softmax(z/T); loss the per-row T²·KL(q ‖ p).
void soft_xent_fwd_cpu(const XentShape& s, float temperature, const float* logits, const float* targets, float* probs,
                       float* loss);
void soft_xent_bwd_cpu(const XentShape& s, float temperature, const float* probs, const float* targets, float scale,
                       float* dlogits);
// probs = softmax(z/T), row by row: the teacher's soft targets.
void softmax_temperature_fwd_cpu(const XentShape& s, float temperature, const float* logits, float* probs);

#ifdef ACTIVEIP_CUDA
void soft_xent_fwd_cuda(const XentShape& s, float temperature, const float* logits, const float* targets, float* probs,
                        float* loss, cudaStream_t stream);
void soft_xent_bwd_cuda(const XentShape& s, float temperature, const float* probs, const float* targets, float scale,
                        float* dlogits, cudaStream_t stream);
void softmax_temperature_fwd_cuda(const XentShape& s, float temperature, const float* logits, float* probs,
                                  cudaStream_t stream);
void softmax_xent_fwd_cuda(const XentShape& s, float smoothing, const float* logits, const int32_t* labels,
                           float* probs, float* loss, cudaStream_t stream);
void softmax_xent_bwd_cuda(const XentShape& s, float smoothing, const float* probs, const int32_t* labels, float scale,
                           float* dlogits, cudaStream_t stream);
#endif

// Loss and top-1 accumulation, so that training's running loss and accuracy stay on the
// device between reads: into acc (2 doubles),
//   acc[0] += Σ_n loss[n]                        (double += float in row order, from 0 per call),
//   acc[1] += #{n : argmax probs[n, ·] = y_n}    (y_n = labels[n], or argmax targets[n, ·]),
// with exactly one of labels (N i32) and targets (N×C) given. argmax is the first maximum
// (`v[c] > v[best]` from c = 0, so ties go to the lower class and a NaN never wins over an
// earlier entry). A NaN loss makes acc[0] NaN, which is how divergence is seen. Counts are
// exact in a double up to 2^53 rows.
void loss_accumulate_cpu(const XentShape& s, const float* loss, const float* probs, const int32_t* labels,
                         const float* targets, double* acc);
#ifdef ACTIVEIP_CUDA
// One block: rows spread over its threads for the argmax, the loss summed by one thread in
// row order, so the result is the CPU's bit for bit and the same on every run.
void loss_accumulate_cuda(const XentShape& s, const float* loss, const float* probs, const int32_t* labels,
                          const float* targets, double* acc, cudaStream_t stream);
#endif
// Specification in double, the same formulas.
void loss_accumulate_ref(const XentShape& s, const double* loss, const double* probs, const int32_t* labels,
                         const double* targets, double* acc);

// Specification in double.
void softmax_xent_fwd_ref(const XentShape& s, double smoothing, const double* logits, const int32_t* labels,
                          double* loss);
void softmax_xent_bwd_ref(const XentShape& s, double smoothing, const double* logits, const int32_t* labels,
                          double scale, double* dlogits);
// Soft targets, specification in double: loss_n = T²·Σ_c q_c·(log q_c − log softmax(z/T)_c);
// dlogits = scale·T·(softmax(z/T) − q).
void soft_xent_fwd_ref(const XentShape& s, double temperature, const double* logits, const double* targets,
                       double* loss);
void soft_xent_bwd_ref(const XentShape& s, double temperature, const double* logits, const double* targets,
                       double scale, double* dlogits);

// Logit spread over a group of rows (lock mode's unauthorised rows, fingerprint/lock.h): with
// w_n ∈ {0, 1} marking the group's rows, G = Σ w_n and z̄ = Σ w_n·z_n / G its mean logits,
//   loss = λ/(G·C) · Σ_n w_n·‖z_n − z̄‖²,
// the logits' variance across the group, averaged over the classes. Backward adds its
// gradient to dlogits:
//   dlogits_n += 2λ/(G·C) · w_n·(z_n − z̄)
// (z̄'s own dependence on z_n cancels: Σ w_n·(z_n − z̄) = 0). Nothing when G = 0. The group's
// mean is summed in double, in row order. Per row its curvature in the logits is 2λ/(G·C),
// of the order of the mean cross-entropy's (at most 1/(2N)) for λ ≈ 1: summed over the classes
// instead (2λ/G), it diverged at a learning rate that trains the same net without it.
void logit_spread_bwd_cpu(const XentShape& s, float weight, const float* logits, const float* rows, float* dlogits);
#ifdef ACTIVEIP_CUDA
// One block: a thread per class sums the group's mean in double in row order, as the CPU.
void logit_spread_bwd_cuda(const XentShape& s, float weight, const float* logits, const float* rows, float* dlogits,
                           cudaStream_t stream);
#endif
// Specification in double: the loss, and (dlogits non-null) its gradient added to dlogits.
double logit_spread_ref(const XentShape& s, double weight, const double* logits, const double* rows, double* dlogits);

}  // namespace activeip
