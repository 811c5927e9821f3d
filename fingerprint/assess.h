// The protection report that `report` and every attack command print (and emit with
// --json): clean accuracy against a reference model (the unprotected baseline, or the model
// before the attack) and the drop; owner verification; user authentication over every user
// trained into the model (one that fell short of τ in training is refused, and counted);
// forged fingerprints claimed as those users. Detection is measured on the prober's network;
// who may pass is the registry's view of `model` — for an attacked copy, the original, as
// DESIGN §3 says attack reports use the users embedded in the original.
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "fingerprint/verify.h"

namespace activeip {

struct UsersSummary {
  int count = 0, authenticated = 0;
  double mean_detection = 0, min_detection = 0;
  std::vector<AuthResult> per_user;
  std::string to_json() const;  // {count, authenticated, mean_detection, min_detection, per_user}
};
UsersSummary authenticate_users(Prober& prober, const OwnerKey& key, const Registry& registry,
                                const ModelContext& model, const std::vector<std::string>& users);

// The patterns of each of `users` under `key` and the prober's scheme, with the codes of
// `registry`: what a forger claims to be. Error when empty.
std::vector<std::vector<Fingerprint>> claimable_fingerprints(const Prober& prober, const OwnerKey& key,
                                                             const Registry& registry,
                                                             const std::vector<std::string>& users);

// A locked model's users unlock it when their lock pattern lifts the accuracy above the clean
// (refused) inputs' by at least half of what is possible over chance: authorized − clean ≥
// (1 − 1/C)/2. What `train --protect --lock` measures at its end, in protected training's
// terms: the owner's trigger verified, each user's authorized accuracy as their "detection".
// The `revoked` users' patterns are measured alike: each must no longer unlock.
EmbeddingCheck check_lock(Prober& prober, const OwnerKey& key, const std::vector<std::string>& users,
                          const std::vector<std::string>& revoked);

// Accuracies over a set of lock patterns: how many, mean and max.
struct AccuracySpread {
  int count = 0;
  double mean = 0, max = 0;
  std::string to_json() const;  // {count, mean_accuracy, max_accuracy}
};

struct LockReportConfig {
  int forge_count = 1000;              // forged lock patterns, each a fresh key
  std::optional<uint64_t> forge_seed;  // nullopt: fresh random keys
  int near_misses = 16;                // near misses per bit count (1 … 8 bits flipped), users in turn
};

// What `report` measures on a locked model (DESIGN §3 lock metrics), all on the prober's
// any_probes(): authorized accuracy per user (their lock pattern stamped), unauthorized
// (clean) accuracy, forged lock patterns, near misses with 1 to 8 bits flipped, each user's
// pattern at the three other corners, revoked users' patterns; accuracies against the true labels.
struct LockAssessment {
  std::vector<std::pair<std::string, Detection>> authorized;
  Detection unauthorized;
  // What the clean inputs' logits still tell: the share whose true class ranks second, and last.
  double unauthorized_second = 0, unauthorized_last = 0;
  double min_authorized = 0, mean_authorized = 0;
  AccuracySpread forged, moved, revoked;
  std::vector<AccuracySpread> near_miss;  // [k − 1]: k bits flipped
  // {authorized{per_user[{user, accuracy}], min_accuracy, mean_accuracy}, unauthorized_accuracy,
  //  unauthorized_second, unauthorized_last, forged{…}, near_miss[{flips, count, mean_accuracy, max_accuracy}],
  //  moved{…}, revoked{…}}
  std::string to_json() const;
  void print(std::FILE* out) const;
};
LockAssessment assess_lock(Prober& prober, const OwnerKey& key, const std::vector<std::string>& users,
                           const std::vector<std::string>& revoked, const LockReportConfig& config);

struct AssessConfig {
  int forge_count = 1000;
  std::optional<uint64_t> forge_seed;  // nullopt: fresh random forged keys
  bool insiders = false;               // also every user's patterns claimed as every other user
  int insider_shift = 4;               // the largest shift of an insider's patterns, in pixels
};

struct Assessment {
  double clean_accuracy = 0;
  std::optional<double> reference_accuracy;  // the baseline's or the original's
  std::string reference = "baseline";        // its name: "<reference>_accuracy" in JSON
  std::optional<OwnerVerification> owner;    // with a key
  std::optional<UsersSummary> users;         // with a key and a registry
  std::optional<ForgeResult> forged;         // with a key, a registry and embedded users
  std::optional<InsiderResult> insiders;     // with AssessConfig::insiders and 2 users or more
  std::optional<LockAssessment> lock;        // a locked model's, in place of users, forged and insiders

  // {clean_accuracy, <reference>_accuracy, accuracy_drop, owner{…}, users{…}, forged{…}}:
  // the parts measured; accuracy_drop = reference − clean (both null without a reference).
  std::string to_json() const;
  // The human table, one line per figure.
  void print(std::FILE* out) const;
};

// What protected training embedded (DESIGN §3), measured at the end of `train --protect` and
// `enroll` on held-out probes, as `report` measures: the owner's trigger is embedded when it
// is verified (detection ≥ τ and p < 1e-6), a user's fingerprint when its detection reaches τ.
struct PatternCheck {
  std::string user;
  Detection detection;
  bool embedded = false;
};
struct EmbeddingCheck {
  double tau = 0;
  OwnerVerification owner;
  std::vector<PatternCheck> users;  // in the order trained
  // Lock mode: the revoked users' patterns, each "embedded" while it still unlocks the model.
  std::vector<PatternCheck> revoked;
  bool complete() const;  // the owner and every user embedded, no revoked pattern unlocking
  std::vector<std::string> short_users() const;
  std::vector<std::string> still_unlocking() const;  // the revoked users whose patterns unlock
  // The check of one user; Error when it was not measured.
  const PatternCheck& user(const std::string& name) const;
  // {tau, complete, owner{user:"owner", target_label, detection_rate, p_value, embedded},
  //  users[{user, target_label, detection_rate, embedded}], revoked[…] (lock mode, as users)}
  std::string to_json() const;
};
EmbeddingCheck check_embedding(Prober& prober, const OwnerKey& key, const std::vector<Identity>& users);

// Fills owner, users and forged from the prober's network: the owner's trigger under `key`;
// for a locked model (with a registry) its lock instead of users and forged: assess_lock over
// the users trained into it that are active, and the registry's revoked users;
// with a registry, every user of trained_users(registry, model) and `config.forge_count`
// forged fingerprints claimed as them (none when no user is embedded), and with
// `config.insiders` their patterns claimed as one another (insiders()).
void assess_protection(Assessment& a, Prober& prober, const OwnerKey& key, const Registry* registry,
                       const ModelContext& model, const AssessConfig& config);

}  // namespace activeip
