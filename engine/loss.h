// Mean softmax cross-entropy over a batch (with optional label smoothing), plus the
// number of correct top-1 predictions, which training and evaluation both report.
#pragma once

#include "engine/context.h"
#include "engine/tensor.h"

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
};

}  // namespace activeip
