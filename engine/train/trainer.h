// Training and evaluation loops. One epoch: a seeded permutation of the training set, each
// step's rows composed (engine/train/batch.h), gathered and augmented on the device (random
// crop with 4-pixel zero padding + horizontal flip + normalisation), the gradient taken by
// the step strategy (engine/train/step.h), one SGD step over the flat buffers at the
// schedule's learning rate; then an evaluation on the test split.
// Every random choice is a pure function of (seed, epoch, step), so a run resumed from an
// epoch checkpoint continues bit for bit where an interrupted run would have gone.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/communicator.h"
#include "engine/data/dataset.h"
#include "engine/io/checkpoint.h"
#include "engine/nn/loss.h"
#include "engine/nn/network.h"
#include "engine/train/batch.h"
#include "engine/train/optimizer.h"
#include "engine/train/step.h"

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
  // JSON describing the batch composer, if it is not the plain one (opaque here); part of
  // to_json (as "mixer"), so --resume refuses a run whose mixing changed.
  std::string mixer;
  // Sharpness-aware steps (SAM, Foret et al. 2021) when sam_rho > 0: each step first moves
  // every parameter tensor but batch norm's by sam_rho·‖w‖ along its own gradient (the layer-wise relative
  // bound of adversarial weight perturbation, Wu et al. 2020), takes the gradient there and
  // applies it to the unmoved weights. sam_ascent "batch": the whole batch's gradient, both
  // for the move and at the moved weights (two forward and two backward passes per step).
  // "extra": the move follows the rows that are not clean only (the composer's extra
  // samples), and only their gradient is taken at the moved weights; the batch's own gradient is taken at w (two
  // forward and three backward passes), so the clean task trains as without SAM while what the mixer embeds is made to
  // hold around w.
  double sam_rho = 0;
  std::string sam_ascent = "batch";
  // Clean-statistics batch norm (c-BN, Gan et al. 2023): every batch norm normalises the whole
  // batch with the statistics of its clean rows alone (the batch's records as they are, which
  // come first) and moves its running statistics by them, so that the composer's extra
  // samples neither shift the statistics the model is evaluated with nor get them fitted to
  // themselves. Needs extra samples (protected training).
  bool clean_bn = false;
  // Simulated removal attacks (robust embedding, first order as SOPHON and TAR): every
  // attack_every steps (0: never) the step's gradient gains attack_weight times the gradient of
  // the rows that are not clean, taken at the weights that attack_steps SGD steps of a drawn
  // fine-tuning attack (SimulatedAttackStep) reach from w. Needs extra samples.
  int attack_every = 0;
  int attack_steps = 5;
  double attack_weight = 1.0;
  // Data-parallel training over `ranks` processes (set by the Trainer from its communicator):
  // `batch` is the global batch, which every rank composes alike and shards (shard_rows); the
  // gradient is summed over the ranks after backward. sync_bn: batch norms take their
  // statistics over every rank's rows (Network::set_stat_sync), else each over its own.
  int ranks = 1;
  bool sync_bn = false;
  // The running loss and accuracy stay on the device and are read (one wait) every log_every
  // steps and at the end of each epoch: that is when the trainer checks for divergence and
  // calls on_step. Changes no result, so --resume does not compare it (and checkpoints from
  // before it existed resume).
  int log_every = 50;

  SgdParams sgd() const;
  std::string to_json() const;
  // Throws Error naming the first option that is out of range.
  void validate() const;
};

// Progress at a read of the running loss (every TrainConfig::log_every steps and at the end
// of an epoch): loss and accuracy are the epoch's so far, up to and including `step`.
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

// Sees each normalised batch on the device before the forward pass, with the position of its
// first row among the rows evaluated.
using BatchAlter = std::function<void(Context& ctx, Tensor& x, int64_t first)>;

// Top-1 accuracy and mean loss on a whole split, eval mode, no augmentation; `alter`, when
// set, changes each batch first (a lock pattern stamped on every input: eval --token).
EvalResult evaluate(Network& net, Context& ctx, const Dataset& data, const Normalization& norm, int batch = 256,
                    const BatchAlter& alter = {});

// Eval-mode logits (host, indices.size() × classes) of the records `indices` of `data`
// (repeats allowed), without augmentation, in batches of `batch`, each seen by `alter` first.
Tensor predict(Network& net, Context& ctx, const Dataset& data, const Normalization& norm,
               const std::vector<int32_t>& indices, int batch, const BatchAlter& alter = {});

// What a training run changes besides gradients: the network's state (weights, running
// statistics, counters), the optimizer's momentum and the completed epochs, as one value
// (Trainer::snapshot / restore) for loops that try steps and go back.
struct TrainState {
  NetworkState net;
  Tensor momentum;
  int epoch = 0;
};

// The sibling file of a model checkpoint that holds what --resume needs besides the
// weights: model.safetensors → model.optim.safetensors. The two are written as one unit
// (write_model_pair), the state recording the SHA-256 of the model's tensor bytes
// ("model_sha256"), so that a state is only ever resumed with its own weights: after a kill
// at any moment the pair that --resume reads is from one epoch.
std::string train_state_path(const std::string& model_path);

class Trainer {
 public:
  // composer (null: the plain one) and comm (null: one process) must outlive the trainer.
  // With a communicator of several ranks every rank runs its own Trainer on the same data and
  // configuration (TrainConfig::ranks is taken from it): each trains on its share of every
  // global batch, the gradients summed over the ranks, so that all hold the same weights;
  // rank 0 alone writes checkpoints (save), and the losses and accuracies it reports are the
  // global batch's. Evaluation runs on every rank, on the whole test split.
  Trainer(Network& net, Context& ctx, const DataSplits& data, TrainConfig config, BatchComposer* composer = nullptr,
          Communicator* comm = nullptr);

  const TrainConfig& config() const { return config_; }
  int completed_epochs() const { return epoch_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  bool done() const { return epoch_ >= config_.epochs; }

  // Trains one epoch and evaluates; on_step (may be empty) sees every read of the running
  // loss (every config().log_every steps and the epoch's last step). Throws when a read
  // finds the loss not finite, naming the steps since the previous read.
  EpochRecord train_epoch(const std::function<void(const StepInfo&)>& on_step);

  // Runs `steps` training steps exactly as train_epoch would from here (the same batches,
  // augmentation and SGD updates, into later epochs' orders when `steps` exceeds an epoch)
  // without evaluating, and returns each step's wall time in seconds, the device synchronised
  // at the end of every step; the running loss is read (and checked) at the steps where
  // train_epoch would read it, after the step's time is taken. For benchmarks: the weights and momentum change but the
  // epoch count does not, so a run that is saved or resumed must not call it.
  std::vector<double> time_steps(int64_t steps);

  // Writes the model (weights + meta with the epoch and config) and its train state as one
  // unit (write_model_pair); on ranks other than 0 of a data-parallel run, nothing.
  void save(const std::string& model_path, ModelMeta meta);
  // Loads weights and train state written by save(), first finishing a save that stopped
  // before its last rename; Error when the files disagree with each other (model_sha256, epoch) or with
  // this run's configuration (naming the option).
  void resume(const std::string& model_path);

  // Copies the run's state into `into` (reusing its storage) and back; training on from a
  // restored state repeats what it did from the snapshot, bit for bit.
  void snapshot(TrainState& into);
  void restore(const TrainState& from);

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
  void set_targets(TargetProvider* provider) { loss_.set_targets(provider); }

 private:
  // One step at global step `global` on the epoch order's records[0, b): compose, gather,
  // augment (aug may be null), the strategy's gradient (its loss tallied on the device), SGD
  // at the schedule's rate. Waits for nothing.
  void train_step(int64_t global, const int32_t* records, int b, Rng* aug, Rng& extra_draw);
  // Whether the running loss is read after step `step` (0-based, within the epoch).
  bool reads_after(int64_t step) const;
  // Reads the epoch's running loss after step `step` (0-based) of epoch `epoch` (0-based);
  // throws when it is not finite, naming the steps since the previous read.
  LossResult read_loss(int64_t epoch, int64_t step);

  Network& net_;
  Context& ctx_;
  const DataSplits& data_;
  TrainConfig config_;
  PlainComposer plain_;
  BatchComposer* composer_ = nullptr;
  ScheduleConfig schedule_;
  Sgd sgd_;
  StepLoss loss_;
  std::unique_ptr<StepStrategy> step_;
  int epoch_ = 0;
  int64_t steps_per_epoch_ = 0;
  Tensor images_;  // training images on the device, loaded once
  BatchLoader loader_;
  BatchRows rows_;
  LocalCommunicator local_;
  Communicator* comm_ = nullptr;
  BatchRows shard_rows_;           // data-parallel: this rank's rows of the step,
  Tensor shard_x_, shard_labels_;  // and their inputs and labels when not one slice of the batch
  Tensor spread_host_, spread_;    // the composer's logit-spread rows (BatchComposer::spread_weight)
};

}  // namespace activeip
