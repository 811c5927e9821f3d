// Training and evaluation loops. One epoch: a seeded permutation of the training set,
// batches gathered and augmented on the device (random crop with 4-pixel zero padding +
// horizontal flip + normalisation), forward, loss, backward, one SGD step over the flat
// buffers at the schedule's learning rate; then an evaluation on the test split.
// Every random choice is a pure function of (seed, epoch, step), so a run resumed from an
// epoch checkpoint continues bit for bit where an interrupted run would have gone.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/io/checkpoint.h"
#include "engine/nn/loss.h"
#include "engine/nn/network.h"
#include "engine/train/optimizer.h"

namespace activeip {

class Rng;  // engine/random.h

struct TrainConfig {
  int epochs = 30;
  int batch = 128;
  double lr = 0.1, momentum = 0.9, wd = 5e-4;  // SGD, as torch.optim.SGD
  bool nesterov = false;
  std::string schedule = "cosine";
  double warmup_epochs = 0;
  std::vector<int> milestones;  // step schedule, in epochs (default: 50% and 75%)
  double gamma = 0.1;
  float label_smoothing = 0.0f;
  uint64_t seed = 0;
  bool augment = true;
  int eval_batch = 256;
  // JSON describing the batch mixer, if any (opaque here); part of to_json, so --resume
  // refuses a run whose mixing changed.
  std::string mixer;
  // Sharpness-aware steps (SAM, Foret et al. 2021) when sam_rho > 0: each step first moves
  // every parameter tensor by sam_rho·‖w‖ along its own gradient (the layer-wise relative
  // bound of adversarial weight perturbation, Wu et al. 2020), takes the gradient there and
  // applies it to the unmoved weights. sam_ascent "batch": the whole batch's gradient, both
  // for the move and at the moved weights (two forward and two backward passes per step).
  // "extra": the move follows the batch mixer's extra samples only, and only their gradient
  // is taken at the moved weights; the batch's own gradient is taken at w (two forward and
  // three backward passes), so the clean task trains as without SAM while what the mixer
  // embeds is made to hold around w.
  double sam_rho = 0;
  std::string sam_ascent = "batch";

  SgdParams sgd() const;
  std::string to_json() const;
  // Throws Error naming the first option that is out of range.
  void validate() const;
};

struct StepInfo {
  int epoch = 0, epochs = 0;    // epoch is 1-based here
  int64_t step = 0, steps = 0;  // within the epoch, 1-based
  double loss = 0, accuracy = 0, lr = 0, images_per_s = 0, eta_s = 0;
};

struct EvalResult {
  double accuracy = 0, loss = 0;
  int64_t n = 0;
};

struct EpochRecord {
  int epoch = 0;  // 1-based, = completed epochs
  double lr = 0, train_loss = 0, train_accuracy = 0, test_loss = 0, test_accuracy = 0;
  double seconds = 0, images_per_s = 0;
  int64_t images = 0;
  std::string to_json() const;
};

// Extra samples in every training batch (protected training mixes stamped samples in).
// The trainer draws extra(batch) more records at random, gathers and augments them with the
// batch, lets relabel() change their labels on the host, and after augmentation lets alter()
// change their pixels on the device. The engine knows nothing of what a mixer puts there;
// both calls must be pure functions of `step` for --resume to stay exact.
class BatchMixer {
 public:
  virtual ~BatchMixer() = default;
  virtual int extra(int batch) const = 0;
  // labels: the extra(batch) extra samples' true labels, replaced in place; step: the
  // global step.
  virtual void relabel(uint64_t step, int batch, int32_t* labels) = 0;
  // x: the whole normalised batch; the extra samples are rows [first, first + count).
  virtual void alter(Context& ctx, Tensor& x, int first, int count) = 0;
};

// Soft targets in place of the labels (distillation): the trainer hands every training
// batch, on the device and after augmentation and the mixer's alter(), to targets(), which
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

// Top-1 accuracy and mean loss on a whole split, eval mode, no augmentation.
EvalResult evaluate(Network& net, Context& ctx, const Dataset& data, const Normalization& norm, int batch = 256);

// Eval-mode logits (host, indices.size() × classes) of the records `indices` of `data`
// (repeats allowed), without augmentation, in batches of `batch`. `alter`, when set, sees
// each normalised batch on the device before the forward pass, with the position of its
// first row in `indices`.
using BatchAlter = std::function<void(Context& ctx, Tensor& x, int64_t first)>;
Tensor predict(Network& net, Context& ctx, const Dataset& data, const Normalization& norm,
               const std::vector<int32_t>& indices, int batch, const BatchAlter& alter = {});

// SAM's ascent as TrainConfig::sam_rho describes it: from the host weights w and gradient g
// (flat over net's parameters), writes into the host tensor e (as many floats)
// e_l = rho·‖w_l‖·g_l/‖g_l‖ for each parameter tensor l, and 0 where ‖w_l‖ or ‖g_l‖ is 0.
void sam_perturbation(const Network& net, const Tensor& w, const Tensor& g, double rho, Tensor& e);

// The sibling file of a model checkpoint that holds what --resume needs besides the
// weights: model.safetensors → model.optim.safetensors.
std::string train_state_path(const std::string& model_path);

class Trainer {
 public:
  // mixer (may be null) must outlive the trainer.
  Trainer(Network& net, Context& ctx, const DataSplits& data, TrainConfig config, BatchMixer* mixer = nullptr);

  const TrainConfig& config() const { return config_; }
  int completed_epochs() const { return epoch_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  bool done() const { return epoch_ >= config_.epochs; }

  // Trains one epoch and evaluates; on_step (may be empty) sees every step.
  EpochRecord train_epoch(const std::function<void(const StepInfo&)>& on_step);

  // Runs `steps` training steps exactly as train_epoch would from here (the same batches,
  // augmentation and SGD updates, into later epochs' orders when `steps` exceeds an epoch)
  // without evaluating, and returns each step's wall time in seconds, the device synchronised
  // at the end of every step. For benchmarks: the weights and momentum change but the epoch
  // count does not, so a run that is saved or resumed must not call it.
  std::vector<double> time_steps(int64_t steps);

  // Writes the model (weights + meta with the epoch and config) and its train state,
  // each atomically: the state first, so a model file always has its state beside it.
  void save(const std::string& model_path, ModelMeta meta);
  // Loads weights and train state written by save(); Error when the files disagree with
  // each other or with this run's configuration (naming the option).
  void resume(const std::string& model_path);

  // Pruning mask and layer freezing (Sgd::set_mask / set_trainable), flat over the
  // parameters. save() keeps them in the train state; resume() refuses a state whose mask
  // or flags differ from this run's.
  void set_mask(const Tensor& mask);
  void set_trainable(const Tensor& trainable) { sgd_.set_trainable(ctx_, trainable); }
  // Freezes every parameter whose name starts with one of `prefixes` (freeze_by_prefix).
  void freeze(const std::vector<std::string>& prefixes) { set_trainable(freeze_by_prefix(net_, prefixes)); }
  // Trains on the provider's soft targets from now on (null: the labels again); it must
  // outlive the trainer. The epoch's train accuracy then counts agreement with the targets'
  // top-1.
  void set_targets(TargetProvider* provider);

 private:
  // One step at global step `global` on the records batch[0, b) plus the mixer's extras
  // (drawn from extra_draw into batch[b, …)): gather, augment (aug may be null), forward,
  // loss (against the target provider's soft targets when one is set, else the labels),
  // backward, SGD at the schedule's rate. Throws when the loss is not finite.
  LossResult train_step(int64_t global, std::vector<int32_t>& batch, int b, Rng* aug, Rng& extra_draw);
  // The loss's input gradient for the current targets (labels or soft targets).
  Tensor loss_backward();
  // The rest of a SAM step (TrainConfig::sam_rho) after the first forward pass: from its loss
  // gradient `dlogits` (rows [0, b) the batch, the rest the mixer's extras), leaves in grads()
  // the step's gradient; weights and running statistics end as the first pass left them.
  void sam_pass(const Tensor& dlogits, int b);

  Network& net_;
  Context& ctx_;
  const DataSplits& data_;
  TrainConfig config_;
  BatchMixer* mixer_ = nullptr;
  TargetProvider* targets_ = nullptr;
  ScheduleConfig schedule_;
  Sgd sgd_;
  SoftmaxCrossEntropy loss_;
  SoftTargetCrossEntropy soft_loss_;
  int epoch_ = 0;
  int64_t steps_per_epoch_ = 0;
  Tensor images_;  // training images on the device, loaded once
  Tensor mean_, std_;
  Tensor x_, labels_, index_, crop_, flip_, soft_targets_;
  // SAM scratch, allocated once: the weights, running statistics and counters a step returns
  // to, the batch's gradient at w ("extra"), the loss gradient of some rows, the move e (on
  // the device and the host), host copies of the weights and gradient, and of the mask.
  Tensor sam_params_, sam_buffers_, sam_grads_, sam_dlogits_, sam_e_;
  Tensor sam_w_host_, sam_g_host_, sam_e_host_, sam_mask_host_;
  std::vector<int64_t> sam_counters_;
};

}  // namespace activeip
