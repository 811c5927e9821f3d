// The model as its own authenticator (DESIGN §3 metrics). Every figure is measured on a
// probe set: N test images (seeded) whose true label differs from the target under test.
// Detection rate of pattern P for target y: the fraction of P-stamped probes predicted y.
// Detection rates are properties of the weights alone; the registry only adds who may pass.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/train/trainer.h"
#include "fingerprint/pattern.h"
#include "fingerprint/protect.h"
#include "fingerprint/registry.h"
#include "fingerprint/scheme.h"

namespace activeip {

struct ProbeConfig {
  int probes = 200;   // N, per target
  uint64_t seed = 0;  // which test images are probes
  double tau = 0.8;   // detection threshold τ
  int batch = 256;    // inference batch
};
void validate(const ProbeConfig& c);

struct Detection {
  int target = 0;
  int64_t n = 0, hits = 0;     // probes, and probes predicted `target`
  double rate = 0;             // hits / n
  double mean_confidence = 0;  // mean softmax probability of `target`
};

// Runs stamped (or clean) probes through a network on its context's device, batched. The
// patterns it is asked about are those of `scheme` (model_scheme() of the model probed), for
// users' codes of `code_length` labels (model_code_length()).
class Prober {
 public:
  Prober(Network& net, Context& ctx, const Dataset& test, const Normalization& norm, ProbeConfig config,
         const Scheme& scheme, int code_length);
  const ProbeConfig& config() const { return config_; }
  const Scheme& scheme() const { return scheme_; }
  const PatternSpec& spec() const { return spec_; }
  const int32_t* test_labels() const { return test_.labels.data<int32_t>(); }
  int num_classes() const { return net_.info().num_classes; }

  // A prober of the same network, probes and preprocessing under another scheme.
  Prober with_scheme(const Scheme& scheme, int code_length) const;

  // The first N records of a seeded permutation of the test split whose label ≠ target.
  std::vector<int32_t> probes(int target) const;
  // Detection of each pattern for its own target (patterns[i].label), in one batched pass.
  std::vector<Detection> detect(const std::vector<Fingerprint>& patterns);
  // The rate at which the un-stamped probes for `target` are predicted as `target`.
  Detection clean(int target);
  // The first N records of the seeded permutation, whatever their label, and the class the
  // model answers for each of them stamped with each pattern: answers[p][i] for probe i.
  std::vector<int32_t> any_probes() const;
  std::vector<std::vector<int32_t>> answers(const std::vector<Fingerprint>& patterns);
  // Lock mode: the top-1 accuracy, against the true labels, of any_probes() stamped with each
  // of `patterns` (drawn for `spec`, a lock pattern's geometry: lock_spec()) — Detection's
  // target is −1 and its hits the correct answers — in one batched pass; and of them clean.
  std::vector<Detection> accuracy(const std::vector<Fingerprint>& patterns, const PatternSpec& spec);
  Detection clean_accuracy();
  // For each of any_probes(), clean: the rank of its true class in the logits (0: the top,
  // C − 1: the bottom; ties broken towards the lower class, as argmax does).
  std::vector<int> clean_ranks();
  // The attacker's input preprocessing (attacks/transform.h), empty for none: every batch
  // the prober runs, clean or stamped, goes through it before the forward pass — after the
  // stamp, as an attacker preprocesses what arrives. It must outlive the prober's use.
  void set_preprocess(BatchAlter preprocess) { preprocess_ = std::move(preprocess); }

 private:
  Network& net_;
  Context& ctx_;
  const Dataset& test_;
  Normalization norm_;
  ProbeConfig config_;
  const Scheme& scheme_;
  PatternSpec spec_;
  // The logits of test records `rows`, row i stamped with patterns[ids[i]], then preprocessed.
  Tensor stamped_logits(const std::vector<Fingerprint>& patterns, const PatternSpec& spec,
                        const std::vector<int32_t>& rows, const std::vector<int32_t>& ids);
  Detection correct(const std::vector<int32_t>& rows, const float* logits, size_t first) const;

  std::vector<int32_t> order_;  // the seeded permutation of the test split
  BatchAlter preprocess_;
};

// The top-1 accuracy of answers whose true classes rank `ranks` (Prober::clean_ranks): as a
// Detection with target −1.
Detection top1(const std::vector<int>& ranks);

// P(X ≥ k) for X ~ Binomial(n, p), as log10 (exact sum in log space, so that values far
// below the smallest double stay meaningful).
double binomial_tail_log10(int64_t k, int64_t n, double p);

struct OwnerVerification {
  Detection detection;
  double p0 = 0;          // max(1/C, clean rate of y_owner on the probes)
  double log10_p = 0;     // one-sided binomial test of the detections against p0, times `tests`
  double p_value = 0;     // 10^log10_p (0 when below the smallest double)
  bool verified = false;  // detection ≥ τ and p < 1e-6
  std::string scheme;     // the scheme whose trigger was probed
  int tests = 1;          // how many schemes were tried (the p-value is corrected for them)
  std::string to_json() const;
};
inline constexpr double kOwnerPValue = 1e-6;
// The owner's trigger under the prober's scheme; of several trigger patterns, the one
// furthest from verified (unverified first, then the largest p) is reported and decides.
OwnerVerification verify_owner(Prober& prober, const OwnerKey& key);
// The owner's verification of a model whose protection record is stripped (it names no
// scheme): the trigger of every scheme this build knows, the most significant one reported,
// its p-value multiplied by the number of schemes tried (Bonferroni).
OwnerVerification verify_owner_any_scheme(const Prober& prober, const OwnerKey& key);
// verify_owner() under the model's scheme, or verify_owner_any_scheme() when its protection
// record is stripped.
OwnerVerification verify_model_owner(Prober& prober, const OwnerKey& key, const ModelContext& model);

struct AuthResult {
  std::string user, status;  // status: active | revoked | unregistered
  Detection detection;
  bool authenticated = false;
  std::string reason;  // why not, when not authenticated
  std::string to_json() const;
};

// User u passes when detection(F_u, y_u) ≥ τ and the registry says u is active and
// embedded in this model (or one it derives from), under the model's key. A user with
// several patterns (v2: one per label of the code) is reported by the weakest, so every one
// of them must reach τ. A user the registry does not know has no code under v2: nothing is
// probed for them (n = 0).
AuthResult authenticate(Prober& prober, const OwnerKey& key, const Registry& registry, const ModelContext& model,
                        const std::string& user);

struct UserToken;  // fingerprint/token.h

// Authentication without the owner key (`auth --token`): whoever presents `token` (read from
// `token_path`, which errors and reasons name) as `user` passes when the token holds patterns
// for this model (by its id, else for the nearest model it derives from in the registry, of
// the same scheme and code length), each of them, stamped where the token says, reaches τ on
// label j of the user's code (from the registry's code index of `user`, the model's classes
// and code length), and the registry says `user` is active and embedded in this model, and
// the token was issued to `user`. Reported by the weakest pattern, as authenticate() does.
// A model not recorded in the registry, or of a scheme whose labels follow from the key (v1),
// is refused. Error naming the token when it was issued under another key than the model's.
AuthResult authenticate_token(Prober& prober, const UserToken& token, const std::string& token_path,
                              const Registry& registry, const ModelContext& model, const std::string& user);

struct ForgeResult {
  int count = 0, passed = 0;
  // Over the forgeries, each judged as authentication judges a user: by its weakest pattern.
  double pass_rate = 0, mean_detection = 0, max_detection = 0;
  // The largest detection of any single forged pattern (equal to max_detection in v1).
  double max_pattern_detection = 0;
  std::string to_json() const;
};
// `count` forgeries, each the prober's scheme's forged() patterns of a fresh key the owner
// never issued, claimed as a random one of `claimed` (each a user's genuine patterns, whose
// labels are the targets); a forgery passes when every one of its patterns reaches τ. seed: nullopt draws the keys from
// OpenSSL's CSPRNG, a value makes the forgeries reproducible.
ForgeResult forge(Prober& prober, const std::vector<std::vector<Fingerprint>>& claimed, int count,
                  std::optional<uint64_t> seed);

struct InsiderResult {
  int users = 0, variants = 0;  // presenters, and the forms each presents its patterns in
  int max_shift = 0;            // the largest shift tried (at most the scheme's margin)
  int claims = 0, passed = 0;   // (presenter, form, claimed user) triples, and those that passed
  double max_detection = 0;     // the strongest claim, judged by its weakest pattern
  std::string strongest;        // "U as V (form)"
  std::string to_json() const;  // {users, variants, max_shift, claims, passed, max_detection, strongest}
};
// What insiders can do with their own patterns (DESIGN §3): each user's patterns presented as
// every other user — as they are, moved to each other corner, flipped (read right to left at
// the mirrored corner) and shifted by 1 to `max_shift` pixels up, down, left and right (no
// further than the scheme's margin, so the patterns stay in the image). A claim
// passes when every pattern reaches τ on the claimed user's label of the same position, with
// detection measured on the probes (any_probes()) whose label is not that target. users: each
// user's patterns (claimable_fingerprints()); at least 2.
InsiderResult insiders(Prober& prober, const std::vector<std::vector<Fingerprint>>& users, int max_shift);

// The lowest detection of several (the first of equals); Error when empty.
Detection weakest(const std::vector<Detection>& d);

}  // namespace activeip
