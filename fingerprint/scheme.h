// Fingerprint schemes by version (DESIGN §3). A scheme fixes, for an owner key, the pattern
// geometry of an input, the patterns and target labels of the owner and of each user, what a
// forger's pattern is, and when a batch is stamped. A protected model records the version it
// was trained under and is probed, verified and enrolled under that version for as long as
// this build knows it; new models get default_scheme(). The versions are a plain table.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/train/batch.h"
#include "fingerprint/key.h"
#include "fingerprint/pattern.h"

namespace activeip {

class Scheme {
 public:
  virtual ~Scheme() = default;

  // "v1", …: what a protection record's "scheme" names.
  virtual const std::string& version() const = 0;
  // The pattern geometry for H×W×C inputs; Error for a channel count or image size the
  // scheme does not cover.
  virtual PatternSpec spec(int H, int W, int C) const = 0;
  // The patterns of user `name` for a model of `num_classes` classes, each with its target
  // label: one per label of the user's code (one in v1). Error for fewer than 2 classes.
  virtual std::vector<Fingerprint> patterns(const OwnerKey& key, const std::string& name, const PatternSpec& spec,
                                            int num_classes) const = 0;
  // The owner's trigger patterns, as patterns() gives a user's.
  virtual std::vector<Fingerprint> owner_patterns(const OwnerKey& key, const PatternSpec& spec,
                                                  int num_classes) const = 0;
  // A forger's pattern: the same generator under a key the owner never issued, made of
  // `key_bytes` (fresh random bytes), presented as `name`'s.
  virtual Fingerprint forged(const std::array<uint8_t, OwnerKey::kBytes>& key_bytes, const std::string& name,
                             const PatternSpec& spec, int num_classes) const = 0;
  // When protected training stamps (engine/train/batch.h): after augmentation, on the
  // normalised batch (a trigger at a fixed place), or before it, on the gathered uint8 images
  // (a trigger that moves, flips and crops with them). The ProtectComposer's stamper works on
  // normalised batches, so it refuses BeforeAugment until a scheme brings a uint8 stamp.
  virtual StampStage stamp_stage() const = 0;
};

// The scheme of `version`; Error naming the version and the versions this build knows.
const Scheme& scheme_for(const std::string& version);
// The scheme of newly protected models.
const Scheme& default_scheme();
// Every version this build knows, oldest first.
std::vector<std::string> scheme_versions();

}  // namespace activeip
