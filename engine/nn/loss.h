// Mean softmax cross-entropy over a batch (with optional label smoothing), plus the
// number of correct top-1 predictions, which training and evaluation both report; and the
// soft-target loss of distillation, T²·KL(q ‖ softmax(z/T)) against given distributions q
// (kernels/loss.h derives its gradient), with the softmax at T that makes a teacher's q.
// A loss adds every batch it is given into a small accumulator on the context's device and
// reads it to the host only when asked (read): the steps between reads never wait for it.
#pragma once

#include "engine/core/context.h"
#include "engine/core/tensor.h"

namespace activeip {

// What a loss has accumulated since its last reset (or construction).
struct LossResult {
  double loss = 0;      // mean over the rows
  int64_t correct = 0;  // top-1 hits
  int64_t rows = 0;     // rows tallied
};

// The device accumulator both losses keep: the loss sum and the hit count as two doubles
// (kernels/loss.h's loss_accumulate), the rows counted on the host.
class LossTally {
 public:
  // Adds a batch (loss N, probs N×C, labels or targets) to the accumulator; waits for nothing.
  void add(Context& ctx, const Tensor& loss, const Tensor& probs, const Tensor* labels, const Tensor* targets);
  // The running totals since the last reset(): one copy of 16 bytes into reused host staging
  // (one wait on CUDA; on the CPU a synchronize(), free but counted, so that the CPU's
  // host-sync count is the one a CUDA run would have). Does not reset, so reading every N
  // steps and once at the end gives exactly what one read at the end would.
  LossResult read(Context& ctx);
  // Zeroes the totals (on the device, without waiting).
  void reset(Context& ctx);

 private:
  Tensor acc_, host_;
  int64_t rows_ = 0;
};

class SoftmaxCrossEntropy {
 public:
  explicit SoftmaxCrossEntropy(float smoothing = 0.0f);
  // logits N×C, labels i32 N on the same device. tally: add the batch's loss and hits to the
  // totals that read() returns (a pass whose loss is not reported, such as SAM's second one
  // at moved weights, passes false).
  void forward(Context& ctx, const Tensor& logits, const Tensor& labels, bool tally = true);
  // d(mean loss)/d(logits), for the last forward.
  Tensor backward(Context& ctx);
  // The mean loss and hits of the tallied batches since the last reset (LossTally::read).
  LossResult read(Context& ctx) { return tally_.read(ctx); }
  void reset(Context& ctx) { tally_.reset(ctx); }

 private:
  float smoothing_;
  Tensor labels_, probs_, loss_, dlogits_;
  LossTally tally_;
};

// Mean over the batch of T²·KL(q_n ‖ softmax(z_n/T)) (Hinton et al. 2015). No labels: its
// `correct` counts the rows whose top-1 agrees with the targets' top-1.
class SoftTargetCrossEntropy {
 public:
  explicit SoftTargetCrossEntropy(float temperature = 1.0f);
  float temperature() const { return temperature_; }
  // logits and targets N×C on the same device; each target row a probability distribution.
  // The targets are borrowed until backward(). tally as for SoftmaxCrossEntropy.
  void forward(Context& ctx, const Tensor& logits, const Tensor& targets, bool tally = true);
  // d(mean loss)/d(logits) = T·(softmax(z/T) − q)/N, for the last forward.
  Tensor backward(Context& ctx);
  LossResult read(Context& ctx) { return tally_.read(ctx); }
  void reset(Context& ctx) { tally_.reset(ctx); }

 private:
  float temperature_;
  Tensor targets_, probs_, loss_, dlogits_;
  LossTally tally_;
};

// probs = softmax(logits/T) row by row (N×C, allocated or reused on ctx's device).
void softmax_temperature(Context& ctx, float temperature, const Tensor& logits, Tensor& probs);

}  // namespace activeip
