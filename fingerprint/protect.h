// Protected training (DESIGN §3): every batch keeps its clean samples and adds samples
// stamped with the owner's trigger or a registered user's fingerprint (relabelled to its
// target), at --poison-rate of the batch, and negatives that keep their true label, at
// --forged-rate — patterns of keys the owner never issued, near misses of issued ones and,
// under v2, two users' patterns mixed — that teach
// the model to answer only to issued fingerprints. Stamping happens on the device, before
// augmentation (v2) or after it (v1), as the scheme (fingerprint/scheme.h) the model records
// says; before augmentation, --degrade-rate of the stamped and forged samples are degraded
// (median, JPEG, blur, …) after stamping. Also here: the protection record a checkpoint
// carries, and a model's id.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/random.h"
#include "engine/data/image_transform.h"
#include "engine/io/checkpoint.h"
#include "engine/io/safetensors.h"
#include "engine/train/trainer.h"
#include "fingerprint/pattern.h"
#include "fingerprint/registry.h"
#include "fingerprint/scheme.h"

namespace activeip {

// Renders fingerprints into a bank on the device, then stamps rows of batches with them
// (ops::stamp), at each pattern's corner: normalised float batches (the bank normalised by
// `norm`) or, without a normalisation, uint8 images (the bank as pixels). Staging is planned
// once and reused.
class Stamper {
 public:
  Stamper(PatternSpec spec, std::optional<Normalization> norm) : spec_(spec), norm_(std::move(norm)) {}
  // The bank becomes `patterns`; the first `unchanged` of them must be those of the last
  // call, which are not rendered again (the embedded patterns of every training step).
  void set_patterns(Context& ctx, const std::vector<Fingerprint>& patterns, size_t unchanged = 0);
  size_t size() const { return origins_.size(); }
  // Row first + i of x gets pattern ids[i] (−1: left clean), for i < count.
  void stamp(Context& ctx, Tensor& x, int64_t first, const int32_t* ids, int64_t count);

 private:
  int64_t patch() const { return int64_t{spec_.size()} * spec_.size() * spec_.channels; }

  PatternSpec spec_;
  std::optional<Normalization> norm_;
  std::vector<std::array<int, 2>> origins_;    // (top, left) of each pattern
  Tensor bank_host_, ids_host_, origin_host_;  // staging
  Tensor bank_, ids_, origin_;                 // on the device
};

struct ProtectConfig {
  double poison_rate = 0.1;   // owner + user samples, as a fraction of the batch
  double forged_rate = 0.05;  // forged samples (true labels), as a fraction of the batch
  uint64_t seed = 0;          // the training seed: the mixing is a function of (seed, step)
  // Users who get focus_share of the poisoned samples to themselves (enroll: the new users,
  // who must catch up in a short fine-tune); the rest go uniformly to every embedded pattern.
  std::vector<std::string> focus;
  double focus_share = 0.5;
  // The share of the poisoned samples that carry the owner's trigger; the users share the
  // rest. Negative: none of its own, the owner is drawn like any user (one share in n + 1).
  double owner_share = -1;
  // The share of the stamped and forged samples shown through one random degradation
  // (degradations(): median, JPEG, blur, noise, fewer bits, shrink-and-pad) after stamping
  // and before augmentation, so that the patterns survive what an attacker may put in front
  // of the model. Unset: the scheme's default (kDegradeRate where it stamps before
  // augmentation, 0 otherwise); above 0 only for such schemes.
  std::optional<double> degrade_rate;
};

// The degrade rate of a scheme that stamps before augmentation when none is asked for.
inline constexpr double kDegradeRate = 0.5;

// The degradations protected training draws from, each with its range: median:3, jpeg:30..90,
// blur:0.5..1.5, noise:2..16, bits:3..5, shrinkpad:1..4 (the parameter uniform in its range).
const char* degradations();

// Throws Error naming the rate that is out of range.
void validate(const ProtectConfig& c);

// A key's bytes from a seeded stream, 8 at a time: the forger's keys of training's negatives
// and of seeded reports.
std::array<uint8_t, OwnerKey::kBytes> drawn_key_bytes(Rng& rng);
// f with between `least` and half of its bits flipped (how many, then which, drawn from rng),
// named "near-miss".
Fingerprint near_miss(Fingerprint f, int least, Rng& rng);

// The roles of a protected batch's rows (after the clean ones, kCleanRow).
enum ProtectRole : RowRole { kOwnerRow = 1, kUserRow = 2, kForgedRow = 3 };

// The protected mix: the `batch` records of the epoch's order as they are, then extra(batch)
// records drawn at random, relabelled and stamped (the owner's and users' patterns first, the
// negatives after them).
class ProtectComposer final : public BatchComposer {
 public:
  // users: the registered, active users to embed (the owner's trigger is always embedded),
  // with their patterns under `scheme`; spec: scheme.spec() of the training images.
  ProtectComposer(const Scheme& scheme, const OwnerKey& key, const std::vector<Identity>& users,
                  const PatternSpec& spec, const Normalization& norm, ProtectConfig config);

  const Scheme& scheme() const { return scheme_; }

  int poisoned(int batch) const;
  // Negatives, in turn of the scheme's negatives(): patterns of keys the owner never issued,
  // near misses of embedded patterns (at least min_flips() bits flipped: 6 of 36, 8 of 48),
  // and (v2) two embedded patterns' cells mixed, at least min_flips() bits from either.
  int min_flips() const;
  int forged(int batch) const;
  int extra(int batch) const { return poisoned(batch) + forged(batch); }
  int rows(int batch) const override { return batch + extra(batch); }
  StampStage stage() const override { return scheme_.stamp_stage(); }
  void compose(uint64_t step, const int32_t* records, int batch, const Dataset& train, Rng& draw,
               BatchRows& rows) override;
  void stamp(Context& ctx, Tensor& x, const BatchRows& rows) override;

  // The two halves of a step, as compose() and stamp() call them. relabel: the extra(batch)
  // extra samples' true labels, replaced in place by what step `step` trains them towards
  // (and which of them are degraded, and how); alter: x the whole batch at stage(), the extra
  // samples its rows [first, first + count).
  void relabel(uint64_t step, int batch, int32_t* labels);
  void alter(Context& ctx, Tensor& x, int first, int count);

  // The owner's trigger patterns first, then each user's patterns, users in the order given.
  const std::vector<Fingerprint>& embedded() const { return embedded_; }
  // The last relabel()'s patterns: embedded(), then that step's negatives; and the pattern
  // of each extra sample.
  const std::vector<Fingerprint>& step_patterns() const { return patterns_; }
  const std::vector<int32_t>& step_ids() const { return ids_; }
  // The degrade rate in force (see ProtectConfig::degrade_rate).
  double degrade_rate() const { return degrade_rate_; }
  // The last relabel()'s degraded extra samples: index among the extra samples, the
  // degradation, and the seed of its random draws.
  struct Degraded {
    int sample;
    Transform transform;
    uint64_t seed;
  };
  const std::vector<Degraded>& step_degraded() const { return degraded_; }
  // What TrainConfig::mixer records: scheme, key id, users, rates.
  std::string to_json() const;

 private:
  Fingerprint negative(Negative kind, Rng& rng) const;
  void degrade(Context& ctx, Tensor& x, int first, int count);
  std::string negatives_description() const;

  const Scheme& scheme_;
  std::string key_id_;
  std::vector<std::string> users_;
  PatternSpec spec_;
  ProtectConfig config_;
  std::vector<Negative> negatives_;
  std::vector<Fingerprint> embedded_;
  int owner_patterns_ = 0;             // embedded_[0, owner_patterns_) are the owner's
  std::vector<int> focus_;             // indices into embedded_ of config_.focus's patterns
  std::vector<Fingerprint> patterns_;  // embedded_, then this step's negatives
  std::vector<int32_t> ids_;           // this step's pattern per extra sample
  Stamper stamper_;
  bool embedded_rendered_ = false;  // the stamper's bank starts with embedded_
  double degrade_rate_ = 0;
  std::vector<Degraded> degraded_;  // this step's
  Tensor degrade_host_;             // staging for a batch on a device
};

// The protection record of a checkpoint (ModelMeta::protection; never the key).
struct ProtectionInfo {
  std::string scheme = default_scheme().version();
  std::string key_id, parent;  // parent: the model this one was derived from
  int owner_label = 0;
  int code_length = 1;  // labels per user code (v2); 1 in v1 records, which have none
  std::vector<std::string> users;
  double poison_rate = 0, forged_rate = 0;
  // Lock mode (fingerprint/lock.h): users are the users whose lock patterns unlock, revoked
  // those whose patterns were refused in training.
  bool lock = false;
  std::vector<std::string> revoked;
  double refuse_rate = 0, spread = 0;
  int near_miss_least = 0;  // 0: the default (LockConfig)
  std::string to_json() const;
  // Error naming `path` when the record is malformed or names a scheme this build does not
  // know; empty `json` is an Error too.
  static ProtectionInfo from_json(const std::string& json, const std::string& path);
};

// A model's id: hex SHA-256 over its tensors (names, dtypes, shapes and bytes, in name
// order) — the weights alone, so a copy with its metadata stripped keeps its id.
std::string model_id(const SafetensorsReader& file);

// What is known of a model when it is checked against a registry.
struct ModelContext {
  std::string id;                  // model_id() of its weights
  std::string key_id;              // from its protection record; empty when stripped
  std::vector<std::string> users;  // from its protection record
  std::string parent;              // from its protection record
  std::string scheme;              // from its protection record; empty when stripped
  int code_length = 0;             // from its protection record; 0 when stripped
  bool is_protected = false;       // it has a protection record
  bool locked = false;             // its protection record says lock mode
};
ModelContext model_context(const SafetensorsReader& file, const ModelMeta& meta);
// The scheme a model is probed, verified and enrolled under: the one its protection record
// names, default_scheme() for a model whose record is stripped.
const Scheme& model_scheme(const ModelContext& model);
// The length of the users' codes the model was trained with: its protection record's, else
// (a stripped copy) what its scheme would choose for the registry's codes today (for v2 the
// shortest length that holds them; 2 without a registry).
int model_code_length(const ModelContext& model, const Registry* registry, int classes);
// The identity of `name`: its code from the registry (−1 when the registry has no such user).
Identity identity(const Registry& registry, const std::string& name);
std::vector<Identity> identities(const Registry& registry, const std::vector<std::string>& names);

// Error unless the key is the model's (when the model records a key id) — "the key … is
// not the key of MODEL (id …)".
void check_model_key(const ModelContext& model, const OwnerKey& key, const std::string& path);
// Error when the registry already records models under another key: one registry serves
// one owner key.
void check_registry_key(const Registry& registry, const OwnerKey& key);
// The registry's active users, by name.
std::vector<std::string> active_users(const Registry& registry);

// The users trained into a model: the registry's record when it has one (following parents),
// else the model's own protection record; by name.
std::vector<std::string> trained_users(const Registry* registry, const ModelContext& model);
// Of those, the users embedded: with the registry's record, those whose nearest measurement
// reached τ (Registry::embedded); without it, all of them.
std::vector<std::string> embedded_users(const Registry* registry, const ModelContext& model);

struct EmbeddingCheck;  // fingerprint/assess.h

// Records a freshly written protected model in the registry with the users trained into it
// and, given what the end of training measured, each detection and whether it reached τ (a
// user below τ is recorded as not embedded); without a check every user counts as embedded.
// A model already recorded with the same id is left as it is. A locked model's revoked users
// are recorded as not embedded, with the accuracy their patterns gave; `revoke`, those of them
// the registry still has active, are revoked with the record. Returns the model's id.
std::string record_model(Registry& registry, const std::string& path, const std::string& net,
                         const std::string& dataset, const ProtectionInfo& info, const EmbeddingCheck* check,
                         const std::vector<std::string>& revoke = {});

}  // namespace activeip
