// Step strategies: how one training step turns a batch into the gradient that the optimizer
// applies — the plain forward/backward, or sharpness-aware minimisation (SAM), which takes
// the gradient at moved weights. The loop around them (epochs, schedule, checkpoints) is the
// Trainer's; the loss they train on (labels or a provider's soft targets) is a StepLoss.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/nn/loss.h"
#include "engine/nn/network.h"
#include "engine/train/batch.h"
#include "kernels/sam.h"

namespace activeip {

struct TrainConfig;  // engine/train/trainer.h

// Soft targets in place of the labels (distillation): the trainer hands every training
// batch, on the device and after augmentation and the composer's stamp, to targets(), which
// writes one probability distribution per row; the loss is then the mean of
// T²·KL(q ‖ softmax(z/T)) at temperature() (SoftTargetCrossEntropy) and the labels go
// unused. targets() must be a pure function of the batch for --resume to stay exact.
class TargetProvider {
 public:
  virtual ~TargetProvider() = default;
  virtual float temperature() const = 0;
  // x: the whole normalised batch (N rows); q: N×C on ctx's device, allocated or reused.
  virtual void targets(Context& ctx, const Tensor& x, Tensor& q) = 0;
};

// The loss of a step: cross-entropy against the labels (with label smoothing), or against a
// target provider's soft targets once one is set.
class StepLoss {
 public:
  explicit StepLoss(float label_smoothing) : labels_loss_(label_smoothing) {}
  // provider (may be null: the labels again) must outlive the loss.
  void set_targets(TargetProvider* provider);
  bool soft() const { return provider_ != nullptr; }
  // Before the forward passes of a step: the batch's labels (i32 on the device), and the soft
  // targets of x when a provider is set.
  void prepare(Context& ctx, const Tensor& x, const Tensor& labels);
  // tally: add the batch's loss and hits to the totals read() returns (SAM's second pass does not).
  void forward(Context& ctx, const Tensor& logits, bool tally = true);
  // The loss's input gradient for the last forward, times the scale.
  Tensor backward(Context& ctx);
  // Data-parallel training: the gradient of this rank's share of the global mean loss, the
  // rank's rows over the global batch's (1: the loss of the rows given), so that the ranks'
  // gradients add up to the global batch's — through sync batch norm's sums as well.
  void set_scale(float scale) { scale_ = scale; }
  // Before the forward passes of a step: add λ·(the logits' variance over the rows marked 1 in
  // `rows`, N f32 on the device) to the loss's gradient (not to its tally); λ = 0: none.
  void set_spread(float weight, const Tensor& rows);
  // The totals of the active loss (labels or soft targets) since its last reset
  // (SoftmaxCrossEntropy::read: one wait), and their reset (no wait).
  LossResult read(Context& ctx);
  void reset(Context& ctx);

 private:
  SoftmaxCrossEntropy labels_loss_;
  SoftTargetCrossEntropy soft_loss_;
  TargetProvider* provider_ = nullptr;
  float scale_ = 1.0f;
  float spread_weight_ = 0.0f;
  Tensor labels_, soft_targets_, spread_rows_, logits_;
};

class StepStrategy {
 public:
  virtual ~StepStrategy() = default;
  // Leaves in net.grads() (zeroed first) the gradient of the step on batch x (its rows
  // described by `rows`) and tallies into `loss` the loss of the forward pass at the current
  // weights (only that one). Weights, running statistics and counters end as that forward
  // pass left them. Waits for nothing.
  virtual void gradient(Context& ctx, Network& net, StepLoss& loss, const Tensor& x, const BatchRows& rows) = 0;
  // The global step that the next gradient() is taken at (what is drawn at random depends on it
  // alone, so that --resume stays exact).
  virtual void begin_step(uint64_t) {}
  // The pruning mask (1 keep / 0 pruned, flat over the parameters; null: none) that the
  // weights obey, so that a strategy that moves them leaves pruned weights at zero.
  virtual void set_mask(Context&, const Tensor*) {}
};

// One forward and one backward pass.
class PlainStep final : public StepStrategy {
 public:
  void gradient(Context& ctx, Network& net, StepLoss& loss, const Tensor& x, const BatchRows& rows) override;
};

// Sharpness-aware steps (Foret et al. 2021), as TrainConfig::sam_rho and sam_ascent describe:
// the ascent follows the whole batch's gradient ("batch") or the gradient of the rows that are
// not clean only ("extra"; the clean rows' gradient is then taken at the unmoved weights).
class SamStep final : public StepStrategy {
 public:
  SamStep(Context& ctx, const Network& net, double rho, bool extra_only);
  void gradient(Context& ctx, Network& net, StepLoss& loss, const Tensor& x, const BatchRows& rows) override;
  void set_mask(Context& ctx, const Tensor* mask) override;

 private:
  double rho_;
  bool extra_only_;
  // Scratch, allocated once: the weights, running statistics and counters a step returns to,
  // the clean rows' gradient at w ("extra"), the loss gradient of some rows, the move e, the
  // parameter tensors' segments of the flat buffer (uploaded once) and their norms.
  NetworkState at_w_;
  Tensor grads_, dlogits_, e_, segments_, norms_;
  SamShape shape_;
  const Tensor* mask_ = nullptr;  // the optimizer's, on the device; null: none
};

// The zeroed rows of a loss gradient d: those whose cleanness is not `clean`, written to
// `out` (allocated or reused); the gradient of the clean rows alone, or of the others.
const Tensor& rows_of(Context& ctx, const Tensor& d, const BatchRows& rows, bool clean, Tensor& out);

// The learning-rate range of a simulated attack, the share of attacks under a filter-pruning
// mask, and that mask's range of pruned filters per convolution.
inline constexpr double kSimulatedAttackLr[2] = {0.01, 0.1};
inline constexpr double kSimulatedAttackPruneShare = 0.5;
inline constexpr double kSimulatedAttackFilters[2] = {0.3, 0.6};

// Robust embedding against removal attacks (TrainConfig::attack_every): the inner strategy's
// gradient g(w), then on every attack_every-th step a simulated attack on the batch's clean rows
// — attack_steps plain SGD steps on all weights (FTAL) at a learning rate drawn uniformly from
// kSimulatedAttackLr, in kSimulatedAttackPruneShare of the draws after zeroing a drawn share
// (kSimulatedAttackFilters) of each convolution's smallest-L1 filters and holding them at zero
// — reaches w'; the gradient of the rows that are not clean (the protection's loss) at w' is
// added with attack_weight: g(w) + λ·∇L_protect(w') (first order: w' is not differentiated).
// Weights, running statistics and counters then return to what g(w)'s pass left, bit for bit.
// The draws are a function of (seed, step).
class SimulatedAttackStep final : public StepStrategy {
 public:
  SimulatedAttackStep(std::unique_ptr<StepStrategy> inner, const TrainConfig& config, Context& ctx, const Network& net);
  void begin_step(uint64_t step) override;
  void gradient(Context& ctx, Network& net, StepLoss& loss, const Tensor& x, const BatchRows& rows) override;
  void set_mask(Context& ctx, const Tensor* mask) override;

 private:
  std::unique_ptr<StepStrategy> inner_;
  int every_, steps_;
  double weight_;
  uint64_t seed_, step_ = 0;
  NetworkState at_w_;
  Pass pass_;  // the attack's own activations
  SoftmaxCrossEntropy attack_loss_;
  Tensor grads_, labels_, dlogits_;
  const Tensor* mask_ = nullptr;  // the optimizer's; null: none
};

// The strategy a configuration asks for: SamStep when sam_rho > 0, else PlainStep; wrapped in a
// SimulatedAttackStep when attack_every > 0.
std::unique_ptr<StepStrategy> make_step_strategy(const TrainConfig& config, Context& ctx, const Network& net);

// The segments of net's flat parameter buffer that SAM's ascent (ops::sam_ascent) treats as
// one tensor each: a host i32 tensor of (begin, end) pairs, one per SlotKind::Parameter slot,
// in buffer order, but those of the batch norms (a module with a running_mean buffer), which
// the ascent leaves where they are, as Gan et al. (2023) do.
Tensor parameter_segments(const Network& net);

}  // namespace activeip
