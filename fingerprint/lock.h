// Lock mode (DESIGN §3): a model that answers correctly only for inputs that carry an active
// user's lock pattern. Every record of a training step is shown stamped with the lock pattern
// of an active user (drawn at random per row) and keeps its true label; extra rows — clean
// inputs, patterns of keys the owner never issued, near misses of the issued patterns, issued
// patterns at another corner and revoked users' patterns — are "refused": each is trained
// towards a label drawn afresh every step from a distribution q that the owner key fixes, and
// their logits towards one another (the logit spread, kernels/loss.h). The owner's trigger is
// embedded as in protected training, at --poison-rate.
//
// Why q and the spread (docs/results.md "Lock mode" has the measurements): towards labels from
// a peaked q (softmax(1.5·z), z ~ N(0, 1) per class from HMAC(key, "lock:q")) the answer to a
// refused input is q's top class whatever the input; without the spread the clean inputs keep
// much of their accuracy (0.39 on `synthetic`), with it they fall to chance, and the order of
// the other classes carries nothing either.
//
// A lock pattern is v1's grid (6×6 one-pixel cells on 1 channel, 4×4 two-pixel cells on 3)
// from HMAC(key, "lock:v2:" + user) — the cells, then 2 bits for the corner — 4 pixels from
// the edges, stamped on the uint8 images before augmentation, so the crop and the flip move
// it as they move the image and never cut into it. Small, so that it hides little of the
// image the user wants classified.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "fingerprint/protect.h"

namespace activeip {

// The lock patterns' geometry on H×W×C images of `classes` classes.
PatternSpec lock_spec(int H, int W, int C, int classes);
// User `user`'s lock pattern under `key` (label −1: it keeps the true label).
Fingerprint lock_pattern(const OwnerKey& key, const std::string& user, const PatternSpec& spec);
// A forger's lock pattern: the same derivation under a key the owner never issued.
Fingerprint forged_lock_pattern(const std::array<uint8_t, OwnerKey::kBytes>& key_bytes, const PatternSpec& spec);
// q, the distribution the refused rows' labels are drawn from: softmax(1.5·z) over the
// classes, z ~ N(0, 1) from HMAC(key, "lock:q"), with the owner's label `owner` given the
// smallest share (its value swapped with the minimum's): a locked model answers every clean
// input with q's top class, and the owner's verification needs its label to be rare there.
std::vector<double> refusal_distribution(const OwnerKey& key, int classes, int owner);

struct LockConfig {
  double refuse_rate = 0.5;  // refused rows, as a fraction of the batch
  double spread = 1.0;       // λ of the logit spread over the refused rows
  // enroll --revoke: every other refused pattern is a revoked user's (otherwise one in four),
  // so that a short fine-tune unlearns what the model was trained to let in.
  bool revoking = false;
  // The fewest cells a refused near miss of an issued pattern flips (0: a sixth of the
  // pattern's, at least 4, as protected training's). 1 trains the lock to refuse a pattern
  // one cell off.
  int near_miss_least = 0;
};
// Throws Error naming the option that is out of range.
void validate(const LockConfig& c);

// The roles of a locked batch's rows: the records, stamped with an active user's lock
// pattern; the owner's trigger; the refused rows.
enum LockRole : RowRole { kAuthorizedRow = 4, kTriggerRow = 5, kRefusedRow = 6 };

// What a refused row shows, in the order the refused rows cycle through them (clean inputs
// take every other row).
enum class Refused { Clean, ForgedKey, NearMiss, Moved, Revoked };

class LockComposer final : public BatchComposer {
 public:
  // active: the users whose patterns unlock; revoked: those whose patterns must not (their
  // patterns are refused rows). spec: lock_spec() of the training images; trigger_spec the
  // scheme's spec, for the owner's trigger. The scheme must stamp before augmentation (v2).
  LockComposer(const Scheme& scheme, const OwnerKey& key, const std::vector<std::string>& active,
               const std::vector<std::string>& revoked, const PatternSpec& trigger_spec, const PatternSpec& spec,
               double poison_rate, LockConfig config, uint64_t seed);

  const Scheme& scheme() const { return scheme_; }
  int owner_label() const { return owner_.label; }
  int trigger_rows(int batch) const;
  int refused(int batch) const;
  int rows(int batch) const override { return batch + trigger_rows(batch) + refused(batch); }
  StampStage stage() const override { return StampStage::BeforeAugment; }
  void compose(uint64_t step, const int32_t* records, int batch, const Dataset& train, Rng& draw,
               BatchRows& rows) override;
  void stamp(Context& ctx, Tensor& x, const BatchRows& rows) override;
  float spread_weight() const override { return static_cast<float>(config_.spread); }
  bool spreads(RowRole role) const override { return role == kRefusedRow; }

  // The last compose()'s lock pattern per row (−1: none; an index into step_patterns()) and
  // what each refused row shows.
  const std::vector<int32_t>& step_ids() const { return ids_; }
  const std::vector<Fingerprint>& step_patterns() const { return patterns_; }
  const std::vector<Refused>& step_refused() const { return refused_; }
  // What TrainConfig::mixer records.
  std::string to_json() const;

 private:
  Fingerprint refused_pattern(Refused kind, Rng& rng) const;
  int near_miss_least() const;

  const Scheme& scheme_;
  std::string key_id_;
  PatternSpec spec_;
  double poison_rate_;
  LockConfig config_;
  uint64_t seed_;
  std::vector<std::string> active_names_, revoked_names_;
  std::vector<Fingerprint> active_, revoked_;
  Fingerprint owner_;
  std::vector<double> q_cdf_;  // the refusal distribution, cumulative
  std::vector<Refused> cycle_;
  std::vector<Fingerprint> patterns_;  // active_, then this step's refused patterns
  std::vector<int32_t> ids_;           // per row
  std::vector<Refused> refused_;       // per refused row
  Stamper lock_stamper_, trigger_stamper_;
  bool active_rendered_ = false, trigger_rendered_ = false;
  std::vector<int32_t> trigger_ids_;
};

}  // namespace activeip
