// Fingerprint schemes by version (DESIGN §3). A scheme fixes, for an owner key, the pattern
// geometry of an input, the patterns and target labels of the owner and of each user, what a
// forger's pattern is, when a batch is stamped and which negatives training shows. A protected model records the
// version it was trained under and is probed, verified and enrolled under that version for as long as this build knows
// it; new models get default_scheme(). The versions are a plain table.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/train/batch.h"
#include "fingerprint/key.h"
#include "fingerprint/pattern.h"

namespace activeip {

// A user as a scheme sees one: the name, and the index of the user's code that the registry
// assigned at `users add` (v2; −1 where none is known — v1 needs none).
struct Identity {
  std::string name;
  int64_t code = -1;
};

// The insider's and the forger's inputs that protected training teaches to keep their true
// label (fingerprint/protect.h says how each is made).
enum class Negative {
  ForgedKey,  // a pattern under a key the owner never issued
  NearMiss,   // an embedded pattern with some of its bits flipped
  Mixed,      // the cells of two embedded patterns mixed, at the first one's corner
};

class Scheme {
 public:
  virtual ~Scheme() = default;

  // "v1", …: what a protection record's "scheme" names.
  virtual const std::string& version() const = 0;
  // The length of the users' codes for a model of `classes` classes whose registry has
  // assigned `codes` codes (indices 0 … codes − 1): how many patterns each user has.
  virtual int code_length(int classes, int64_t codes) const = 0;
  // What the patterns of a model of `classes` classes and H×W×C inputs are drawn for; Error
  // for a channel count, image size, class count or code length the scheme does not cover.
  virtual PatternSpec spec(int H, int W, int C, int classes, int code_length) const = 0;
  // The patterns of `user`, each with its target label: one per label of the user's code.
  // Error for a user without the code the scheme needs, or one the code length cannot hold.
  virtual std::vector<Fingerprint> patterns(const OwnerKey& key, const Identity& user,
                                            const PatternSpec& spec) const = 0;
  // The labels of the user whose registry code index is `code`, one per pattern, as far as
  // they are known without the owner key (v2: the code's labels); empty where they follow from
  // the key (v1). Error for a code the spec's code length cannot hold.
  virtual std::vector<int> code_labels(int64_t code, const PatternSpec& spec) const = 0;
  // The owner's trigger patterns, as patterns() gives a user's.
  virtual std::vector<Fingerprint> owner_patterns(const OwnerKey& key, const PatternSpec& spec) const = 0;
  // A forger's patterns for a claim to be the user whose patterns are `claimed`: the same
  // generator under a key the owner never issued, made of `key_bytes` (fresh random bytes),
  // for the claimed name, one per claimed pattern and with its label.
  virtual std::vector<Fingerprint> forged(const std::array<uint8_t, OwnerKey::kBytes>& key_bytes,
                                          const std::vector<Fingerprint>& claimed, const PatternSpec& spec) const = 0;
  // When protected training stamps (engine/train/batch.h): after augmentation, on the
  // normalised batch (a trigger at a fixed place), or before it, on the gathered uint8 images
  // (a trigger that moves, flips and crops with them).
  virtual StampStage stamp_stage() const = 0;
  // The negatives protected training makes, in the order it cycles through them.
  virtual std::vector<Negative> negatives() const = 0;
};

// The scheme of `version`; Error naming the version and the versions this build knows.
const Scheme& scheme_for(const std::string& version);
// The scheme of newly protected models.
const Scheme& default_scheme();
// Every version this build knows, oldest first.
std::vector<std::string> scheme_versions();

// User codes (v2): the code of index i for C classes and length m. The first m − 1 labels are
// the base-C digits of i (least significant first), the last their sum mod C — a
// single-parity-check code, so two codes of distinct indices differ in at least 2 of their m
// labels — and label j is then rotated by j, so a user's labels are not all alike. Error when
// i is outside [0, code_capacity(C, m)).
std::vector<int> user_code(int64_t index, int classes, int length);
// How many distinct codes of length m there are for C classes: C^(m − 1), saturating at 2^62.
int64_t code_capacity(int classes, int length);
// The shortest code length m ≥ 2 whose capacity holds `codes` codes.
int shortest_code_length(int classes, int64_t codes);

}  // namespace activeip
