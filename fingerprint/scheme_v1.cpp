// Fingerprint scheme v1 (DESIGN §3), the scheme of models trained before v2. One pattern per user (and for the owner, u
// = "owner"), from HMAC-SHA256(key, "fp:v1:" + u): a g×g grid of c×c-pixel cells, one bit per cell and channel, then 2
// bits for the corner (1-pixel margin); its target label is HMAC(key, "label:v1:" + u) mod C. Stamped after
// augmentation. Frozen: models trained under v1 are verified with exactly these bits; any change is a new version.
#include <string>

#include "base/error.h"
#include "fingerprint/scheme.h"

namespace activeip {

namespace {

class SchemeV1 final : public Scheme {
 public:
  const std::string& version() const override { return version_; }

  // One pattern per user, whatever the registry.
  int code_length(int, int64_t) const override { return 1; }

  // g=4, c=2 for 3 channels (8×8 pixels, 48 bits); g=6, c=1 for 1 channel (6×6, 36 bits).
  PatternSpec spec(int H, int W, int C, int classes, int) const override {
    return pattern_geometry(H, W, C, classes, 1);
  }

  std::vector<Fingerprint> patterns(const OwnerKey& key, const Identity& user, const PatternSpec& spec) const override {
    return {derive(key, user.name, spec)};
  }

  // Labels follow from the key (HMAC "label:v1:" + u).
  std::vector<int> code_labels(int64_t, const PatternSpec&) const override { return {}; }

  std::vector<Fingerprint> owner_patterns(const OwnerKey& key, const PatternSpec& spec) const override {
    return {derive(key, kOwnerName, spec)};
  }

  std::vector<Fingerprint> forged(const std::array<uint8_t, OwnerKey::kBytes>& key_bytes,
                                  const std::vector<Fingerprint>& claimed, const PatternSpec& spec) const override {
    ENSURE(claimed.size() == 1, "a v1 claim has one pattern, not %zu", claimed.size());
    Fingerprint f = derive(OwnerKey(key_bytes), claimed.front().name, spec);
    f.label = claimed.front().label;
    return {f};
  }

  StampStage stamp_stage() const override { return StampStage::AfterAugment; }
  std::vector<Negative> negatives() const override { return {Negative::ForgedKey, Negative::NearMiss}; }

 private:
  // Bits (most significant first, block counter big-endian from 0): the cells, index
  // (row·g + col)·channels + channel, then corner = 2·b₀ + b₁ of the two that follow. Label:
  // the big-endian uint64 of the label HMAC's first 8 bytes, mod C.
  static Fingerprint derive(const OwnerKey& key, const std::string& name, const PatternSpec& spec) {
    const int num_classes = spec.classes;
    Fingerprint fp;
    fp.name = name;
    std::vector<uint8_t> bits = hmac_bits(key, "fp:v1:" + name, spec.bits() + 2);
    fp.corner = bits[static_cast<size_t>(spec.bits())] << 1 | bits[static_cast<size_t>(spec.bits()) + 1];
    bits.resize(static_cast<size_t>(spec.bits()));
    fp.bits = std::move(bits);
    const std::array<uint8_t, 32> h = key.hmac("label:v1:" + name);
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = v << 8 | h[static_cast<size_t>(i)];
    fp.label = static_cast<int>(v % static_cast<uint64_t>(num_classes));
    return fp;
  }

  std::string version_ = "v1";
};

}  // namespace

const Scheme& scheme_v1() {
  static const SchemeV1 scheme;
  return scheme;
}

}  // namespace activeip
