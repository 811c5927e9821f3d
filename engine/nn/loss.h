// Mean softmax cross-entropy over a batch (with optional label smoothing), plus the
// number of correct top-1 predictions, which training and evaluation both report; and the
// soft-target loss of distillation, T²·KL(q ‖ softmax(z/T)) against given distributions q
// (kernels/loss.h derives its gradient), with the softmax at T that makes a teacher's q.
#pragma once

#include "engine/core/context.h"
#include "engine/core/tensor.h"

namespace activeip {

struct LossResult {
  double loss = 0;      // mean over the batch
  int64_t correct = 0;  // top-1 hits
};

class SoftmaxCrossEntropy {
 public:
  explicit SoftmaxCrossEntropy(float smoothing = 0.0f);
  // logits N×C, labels i32 N on the same device.
  LossResult forward(Context& ctx, const Tensor& logits, const Tensor& labels);
  // d(mean loss)/d(logits), for the last forward.
  Tensor backward(Context& ctx);

 private:
  float smoothing_;
  Tensor labels_, probs_, loss_, dlogits_;
  Tensor host_loss_, host_probs_, host_labels_;  // staging for the reduction on the host
};

// Mean over the batch of T²·KL(q_n ‖ softmax(z_n/T)) (Hinton et al. 2015). No labels: its
// `correct` counts the rows whose top-1 agrees with the targets' top-1.
class SoftTargetCrossEntropy {
 public:
  explicit SoftTargetCrossEntropy(float temperature = 1.0f);
  float temperature() const { return temperature_; }
  // logits and targets N×C on the same device; each target row a probability distribution.
  // The targets are borrowed until backward().
  LossResult forward(Context& ctx, const Tensor& logits, const Tensor& targets);
  // d(mean loss)/d(logits) = T·(softmax(z/T) − q)/N, for the last forward.
  Tensor backward(Context& ctx);

 private:
  float temperature_;
  Tensor targets_, probs_, loss_, dlogits_;
  Tensor host_loss_, host_probs_, host_targets_;  // staging for the reduction on the host
};

// probs = softmax(logits/T) row by row (N×C, allocated or reused on ctx's device).
void softmax_temperature(Context& ctx, float temperature, const Tensor& logits, Tensor& probs);

}  // namespace activeip
