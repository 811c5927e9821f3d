// Running an attack on a protected model, as `activeip prune|finetune|distill|transform` do:
// open the target (the model, its data, the owner's key and registry), change it (prune it,
// fine-tune or distil it on the attacker's seeded share of the training split), write the
// attacked copy with its mask and the attack in its metadata, and measure what survives against
// the original — or leave the weights alone and measure them behind the attacker's input
// preprocessing. Progress goes to a log callback, one line each; nothing here prints.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "attacks/prune.h"
#include "engine/train/trainer.h"
#include "fingerprint/assess.h"
#include "fingerprint/protect.h"
#include "fingerprint/registry.h"
#include "nets/model_io.h"

namespace activeip {

using AttackLog = std::function<void(const std::string& line)>;

struct AttackTargetSpec {
  std::string model, key, registry;  // key and registry may be empty: nothing of theirs is measured
  DataSpec data;                     // an empty name: no data is read and nothing is measured
  bool needs_train = false;          // the attack trains or ranks channels on the training split
  int eval_batch = 256;
};

// The original model, its data, and what measures the attacked copy against it.
struct AttackTarget {
  std::optional<OwnerKey> key;
  std::optional<Registry> registry;
  LoadedModel m;
  ModelContext original;  // the registry's view of the model before the attack
  DataSplits data;        // the test split (and the training split when needs_train)
  bool measured = true;   // false without data
  double original_accuracy = 0;
};

// Loads the model, the key (which must be the model's) and the registry, and the data the
// model takes; measures the original's clean accuracy. Errors name the file at fault. A key
// without data is an error: owner verification and the users are measured on the test split.
AttackTarget open_attack_target(Context& ctx, const AttackTargetSpec& spec);

// What the attacker's training holds besides the data: the pruning mask and trainable flags
// (fine-tuning), a composer (overwriting), the teacher's soft labels (distillation).
struct AttackTraining {
  Tensor mask, trainable;
  BatchComposer* composer = nullptr;
  TargetProvider* targets = nullptr;
};

// Trains `net` (the attacked network, or a distilled student) for config.epochs on the
// seeded `fraction` of the target's training split with what `with` holds; logs the set-up and
// one line per epoch.
void train_attacker(AttackTarget& t, Context& ctx, Network& net, TrainConfig config, double fraction,
                    const AttackTraining& with, const AttackLog& log);

struct PruneSpec {
  PruneMethod method = PruneMethod::Global;
  double sparsity = 0.5;
  double fraction = 0.1;  // fine-pruning: the attacker's share whose activations rank channels
  int activation_samples = 1000;
  int batch = 256;  // inference batch of the activation statistics
  uint64_t seed = 0;
};
// Prunes the target's network in place and records what was removed in `attack`. Filter
// pruning replaces the network by a narrower one (its widths go into the metadata) and returns
// an undefined mask; the other methods return the mask they applied.
Tensor prune_target(AttackTarget& t, Context& ctx, const PruneSpec& spec, nlohmann::json& attack, const AttackLog& log);

// The mask beside `model` (NAME.mask.safetensors), which a fine-tune must hold; undefined when
// there is none. A pruning stopped before its last step is completed first (write_model_pair).
// Error when the mask was written with other weights (its model_sha256) or prunes weights that
// are not zero in `net`.
Tensor mask_beside(const std::string& model, Network& net, Context& ctx);

// Writes the attacked network with `meta` and the attack in its config, and its mask beside
// it as one unit (write_model_pair); without a mask, a stale one from an earlier run is
// removed after the model is written.
void write_attacked(const std::string& out, Network& net, Context& ctx, const Tensor& mask, ModelMeta meta,
                    const nlohmann::json& attack);

// The attacked copy measured against the original: clean accuracy, and with the target's key
// the owner's verification, its users and forged fingerprints. `prober` is left holding the
// probe set when the key is there or `keep_prober` asks for it (an overwriting attacker's own
// measurement reuses it). `preprocess`, when set, is the attacker's input preprocessing
// (attacks/transform.h): every input the network sees — the clean test split, the owner's,
// users' and forged probes after their stamp — goes through it; the original's accuracy, the
// reference, is measured without it.
Assessment assess_attacked(AttackTarget& t, Context& ctx, Network& net, const ProbeConfig& probe,
                           const AssessConfig& assess, std::optional<Prober>& prober, bool keep_prober = false,
                           const BatchAlter& preprocess = {});

}  // namespace activeip
