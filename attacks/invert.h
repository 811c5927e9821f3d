// Token reverse-engineering on a locked model (`activeip invert`), after Neural Cleanse (Wang et
// al. 2019): the holder of a stolen locked model and a labelled share of the training split
// searches for a patch that unlocks it — one that makes the model answer the true labels — by
// gradient descent on the patch with the weights frozen, then measures how much of the clean
// accuracy the patch it found restores on the held-out test split.
//
// What the attacker is given: the lock pattern's geometry (its side, lock_spec() of the images,
// 8 px on 3 channels, 6 px on 1) but neither its bits nor its corner. The candidate positions
// are the four corners at the lock's 4 px inset (where the lock is stamped) and the centre
// (a control: nothing was ever trained there). At each position the patch is the whole
// size×size box, every pixel and channel free, pasted over the image as the lock's stamp
// overwrites it — so NC's mask is left out: the mask exists to find a trigger's extent (and its
// L1 penalty to keep it small), and here the extent is known and the stamp is an overwrite.
// The parametrisation is unconstrained: pixel = 127.5·(1 + tanh θ) ∈ (0, 255), normalised as the
// loader normalises; θ is optimised by Adam (on host floats: a few hundred values) on the mean
// softmax cross-entropy of the true labels (the engine's SoftmaxCrossEntropy), its gradient
// dL/dx from Network::backward in eval mode (BatchNorm2d's running statistics are constants
// there), summed over the box. The weights are never stepped; backward's parameter gradients
// are zeroed when the attack ends. The recovered patch is rounded to uint8 pixels — an image an
// attacker could stamp — before anything is measured with it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attacks/runner.h"
#include "engine/nn/loss.h"
#include "engine/nn/network.h"
#include "fingerprint/pattern.h"

namespace activeip {

// Where a patch goes: the box of side `size` with its top-left pixel at (top, left).
struct PatchPosition {
  std::string name;  // top-left | top-right | bottom-left | bottom-right | center
  int top = 0, left = 0;
};

// The names invert_positions() knows, in its order.
const std::vector<std::string>& patch_position_names();
// The candidate positions for a lock of geometry `spec` (lock_spec()): the four corners where
// the lock may be stamped (corners 0..3, spec.margin from the edges) and the centre
// (⌊(H − size)/2⌋, ⌊(W − size)/2⌋). `names` picks among them (in the order given; empty: all
// five). Error naming an unknown position.
std::vector<PatchPosition> invert_positions(const PatternSpec& spec, const std::vector<std::string>& names = {});

// A patch of side `size` stamped on normalised batches: pixels (size×size×C, HWC uint8, or
// normalised floats) into a one-patch bank on the context's device, pasted with ops::stamp.
class PatchStamp {
 public:
  PatchStamp(int size, const Normalization& norm, PatchPosition at);
  const PatchPosition& position() const { return at_; }
  // The bank becomes `pixels`, normalised as the loader normalises uint8 images.
  void set_pixels(Context& ctx, const std::vector<uint8_t>& pixels);
  // The bank becomes these normalised values, as they are.
  void set_values(Context& ctx, const std::vector<float>& values);
  // Every row of x (N×H×W×C f32, normalised, on ctx's device) gets the patch.
  void stamp(Context& ctx, Tensor& x);
  // The stamp as the evaluation path's hook (engine/train/trainer.h); it must outlive it.
  BatchAlter alter();

 private:
  int size_;
  Normalization norm_;
  PatchPosition at_;
  Tensor bank_host_, bank_, ids_, origin_;
  int64_t rows_ = 0;  // rows ids_ and origin_ are laid out for
};

// The attacker's objective at one position: the mean softmax cross-entropy of the true labels
// over a batch with the patch of free variables θ pasted (pixel = 127.5·(1 + tanh θ)).
class PatchObjective {
 public:
  // net: the frozen model, in eval mode for as long as the objective is used.
  PatchObjective(Network& net, Context& ctx, int size, const Normalization& norm, PatchPosition at);
  int values() const { return size_ * size_ * channels_; }
  // x: a clean batch (N×H×W×C f32, normalised, on ctx's device; left as it is), labels: N i32 on
  // the same device, theta: values() free variables. Returns the mean loss; with grad, also
  // dloss/dθ into *grad (overwritten), from Network::backward's input gradient.
  double evaluate(const Tensor& x, const Tensor& labels, const std::vector<float>& theta,
                  std::vector<float>* grad = nullptr);

  // The normalised input values of θ (size×size×C), and their uint8 pixels, rounded.
  std::vector<float> normalized(const std::vector<float>& theta) const;
  std::vector<uint8_t> pixels(const std::vector<float>& theta) const;

 private:
  Network& net_;
  Context& ctx_;
  int size_, channels_;
  Normalization norm_;
  PatchStamp stamp_;
  SoftmaxCrossEntropy loss_;
  Tensor x_;  // the batch with the patch pasted
};

struct InvertConfig {
  int steps = 200;      // Adam steps per position
  double lr = 0.1;      // Adam's step size, in θ
  int batch = 64;       // records per step
  uint64_t seed = 0;    // the starting patches and the batches' order
  int eval_batch = 256; // inference batch of the measurements
  std::vector<std::string> positions;  // invert_positions()'s names; empty: all five
};
// Throws Error naming the setting that is out of range.
void validate(const InvertConfig& c);

struct InvertedPatch {
  PatchPosition position;
  std::vector<uint8_t> pixels;  // size×size×C, HWC, the rounded patch
  // On the attacker's data, uint8 patch pasted: the mean loss of the starting patch and of the
  // recovered one, and the recovered one's top-1 accuracy.
  double initial_loss = 0, loss = 0, attacker_accuracy = 0;
  double accuracy = 0;  // top-1 on the test split with the recovered patch pasted
};

// The accuracy a user's own lock pattern gives on the test split (with the owner's key).
struct AuthorizedAccuracy {
  std::string user;
  double accuracy = 0;
};

struct InvertReport {
  int size = 0, channels = 0, steps = 0, batch = 0;
  double lr = 0;
  uint64_t seed = 0;
  int64_t attacker_records = 0, test_records = 0;
  double clean_accuracy = 0;  // the test split as it is
  double chance = 0;          // 1/C
  std::vector<InvertedPatch> patches;
  size_t best = 0;  // the patch with the best accuracy on the attacker's data (then the lowest loss)
  std::vector<AuthorizedAccuracy> authorized;  // with the owner's key: what the real tokens give

  const InvertedPatch& best_patch() const { return patches.at(best); }
  // {size, channels, steps, batch, lr, seed, attacker_records, test_records, clean_accuracy, chance,
  //  positions[{position, top, left, accuracy, attacker_accuracy, initial_loss, loss}],
  //  best_position, best_accuracy, best_attacker_accuracy, authorized[{user, accuracy}] (with a key)}
  nlohmann::json to_json() const;
  // The human table.
  void print(std::FILE* out) const;
};

// Top-1 accuracy and mean loss of `net` (eval mode) on the whole of `data` with `pixels` pasted
// at `at` (what every figure of the report is).
EvalResult evaluate_patch(Network& net, Context& ctx, const Dataset& data, const Normalization& norm,
                          const PatchPosition& at, int size, const std::vector<uint8_t>& pixels, int batch);

// Inverts the lock of `net` at each of config's positions on `attacker` (the attacker's labelled
// records) and measures each recovered patch on `test`. The patch's side and positions come from
// lock_spec() of the images. net's parameters and running statistics are left as they were.
// clean_accuracy: the test split's as it is, when the caller has measured it already.
InvertReport invert_lock(Network& net, Context& ctx, const Dataset& attacker, const Dataset& test,
                         const Normalization& norm, const InvertConfig& config, const AttackLog& log,
                         std::optional<double> clean_accuracy = std::nullopt);

// Error naming `path` unless the model there is a locked model (its protection record says lock
// mode): the inversion looks for the lock's token. Reads the file's header and weights only.
void check_locked(const std::string& path);

// `activeip invert` on an opened target (open_attack_target with the training split): the
// attacker's seeded `fraction` of it (seeded_subset with config.seed), then invert_lock against
// the test split; with the target's key, each user the model records as unlocking it (the
// registry's active ones, given a registry) measured with their own lock pattern for reference.
InvertReport invert_target(AttackTarget& t, Context& ctx, double fraction, const InvertConfig& config,
                           const AttackLog& log);

}  // namespace activeip
