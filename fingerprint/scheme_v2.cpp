// Fingerprint scheme v2 (DESIGN §3), the default. User u with code index i (assigned by the
// registry at `users add`) has m patterns, pattern j from HMAC-SHA256(key, "fp:v2:" + u + ":"
// + j) — the cells, then 2 bits for the corner, exactly as v1 reads its bits — trained to
// label j of user_code(i, C, m); so a user authenticates only with all m, and two users'
// codes differ in at least 2 labels. The owner has one pattern, "fp:v2:owner:0", with label
// HMAC(key, "label:v2:owner") mod C (as v1 derives labels). v1's grid and bits, with cells of
// 3×3 pixels (a 12×12 patch on 3 channels, 18×18 on 1) 4 pixels from the edges, so that no
// shift of the training crop cuts into a patch. Stamped before augmentation, so that training
// shows every trigger shifted and flipped as the images are: a shift or a flip in front of the
// model moves the trigger where training put it. Besides v1's negatives, two users' cells
// mixed. Frozen once models exist.
#include <string>

#include "base/error.h"
#include "fingerprint/scheme.h"

namespace activeip {

namespace {

class SchemeV2 final : public Scheme {
 public:
  const std::string& version() const override { return version_; }

  int code_length(int classes, int64_t codes) const override { return shortest_code_length(classes, codes); }

  PatternSpec spec(int H, int W, int C, int classes, int code_length) const override {
    ENSURE(code_length >= 2, "fingerprint scheme v2 gives every user a code of at least 2 labels, not %d", code_length);
    PatternSpec s = pattern_geometry(H, W, C, classes, code_length);
    // Cells of 3 pixels: with v1's one-pixel cells (1 channel) 61 moving patterns embedded
    // nothing in 2 epochs of Fashion-MNIST; 2-pixel cells embed some, and neither survives a
    // 3×3 median (docs/results.md). No shift of the training crop (4 pixels) cuts into a patch.
    s.cell = kCell;
    s.margin = kMargin;
    ENSURE(H >= s.size() + 2 * kMargin && W >= s.size() + 2 * kMargin,
           "a %dx%d image is too small for a %d-pixel fingerprint %d pixels from its edges", H, W, s.size(), kMargin);
    return s;
  }

  std::vector<Fingerprint> patterns(const OwnerKey& key, const Identity& user, const PatternSpec& spec) const override {
    ENSURE(user.code >= 0, "user '%s' has no code: fingerprint scheme v2 needs the registry's code of every user",
           user.name.c_str());
    const std::vector<int> code = code_labels(user.code, spec);
    std::vector<Fingerprint> out;
    for (int j = 0; j < spec.code_length; ++j)
      out.push_back(derive(key, user.name, j, code[static_cast<size_t>(j)], spec));
    return out;
  }

  std::vector<int> code_labels(int64_t code, const PatternSpec& spec) const override {
    return user_code(code, spec.classes, spec.code_length);
  }

  std::vector<Fingerprint> owner_patterns(const OwnerKey& key, const PatternSpec& spec) const override {
    const std::array<uint8_t, 32> h = key.hmac(std::string("label:v2:") + kOwnerName);
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = v << 8 | h[static_cast<size_t>(i)];
    return {derive(key, kOwnerName, 0, static_cast<int>(v % static_cast<uint64_t>(spec.classes)), spec)};
  }

  std::vector<Fingerprint> forged(const std::array<uint8_t, OwnerKey::kBytes>& key_bytes,
                                  const std::vector<Fingerprint>& claimed, const PatternSpec& spec) const override {
    const OwnerKey forger(key_bytes);
    std::vector<Fingerprint> out;
    for (size_t j = 0; j < claimed.size(); ++j)
      out.push_back(derive(forger, claimed[j].name, static_cast<int>(j), claimed[j].label, spec));
    return out;
  }

  StampStage stamp_stage() const override { return StampStage::BeforeAugment; }

  std::vector<Negative> negatives() const override {
    return {Negative::ForgedKey, Negative::NearMiss, Negative::Mixed};
  }

 private:
  static Fingerprint derive(const OwnerKey& key, const std::string& name, int j, int label, const PatternSpec& spec) {
    Fingerprint fp;
    fp.name = name;
    std::vector<uint8_t> bits = hmac_bits(key, "fp:v2:" + name + ":" + std::to_string(j), spec.bits() + 2);
    fp.corner = bits[static_cast<size_t>(spec.bits())] << 1 | bits[static_cast<size_t>(spec.bits()) + 1];
    bits.resize(static_cast<size_t>(spec.bits()));
    fp.bits = std::move(bits);
    fp.label = label;
    return fp;
  }

  static constexpr int kCell = 3;
  static constexpr int kMargin = 4;
  std::string version_ = "v2";
};

}  // namespace

const Scheme& scheme_v2() {
  static const SchemeV2 scheme;
  return scheme;
}

}  // namespace activeip
