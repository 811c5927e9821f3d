// Lock mode: the lock patterns, the refusal distribution and the locked batch mix.
#include "fingerprint/lock.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "engine/core/random.h"

namespace activeip {

namespace {

constexpr int kLockMargin = 4;        // no shift of the training crop cuts into the pattern
constexpr double kRefusalPeak = 1.5;  // q = softmax(kRefusalPeak·z)

Fingerprint derive_lock(const OwnerKey& key, const std::string& user, const PatternSpec& spec) {
  Fingerprint f;
  f.name = user;
  std::vector<uint8_t> bits = hmac_bits(key, "lock:v2:" + user, spec.bits() + 2);
  f.corner = bits[static_cast<size_t>(spec.bits())] << 1 | bits[static_cast<size_t>(spec.bits()) + 1];
  bits.resize(static_cast<size_t>(spec.bits()));
  f.bits = std::move(bits);
  f.label = -1;
  return f;
}

const char* refused_name(Refused r) {
  switch (r) {
    case Refused::Clean:
      return "clean";
    case Refused::ForgedKey:
      return "forged keys";
    case Refused::NearMiss:
      return "near misses";
    case Refused::Moved:
      return "moved";
    case Refused::Revoked:
      return "revoked";
  }
  return "?";
}

}  // namespace

PatternSpec lock_spec(int H, int W, int C, int classes) {
  PatternSpec s = pattern_geometry(H, W, C, classes, 1);
  s.margin = kLockMargin;
  ENSURE(H >= s.size() + 2 * kLockMargin && W >= s.size() + 2 * kLockMargin,
         "a %dx%d image is too small for a %d-pixel lock pattern %d pixels from its edges", H, W, s.size(),
         kLockMargin);
  return s;
}

Fingerprint lock_pattern(const OwnerKey& key, const std::string& user, const PatternSpec& spec) {
  return derive_lock(key, user, spec);
}

Fingerprint forged_lock_pattern(const std::array<uint8_t, OwnerKey::kBytes>& key_bytes, const PatternSpec& spec) {
  return derive_lock(OwnerKey(key_bytes), "forged", spec);
}

std::vector<double> refusal_distribution(const OwnerKey& key, int classes, int owner) {
  ENSURE(owner >= 0 && owner < classes, "the owner's label %d is not one of %d classes", owner, classes);
  const std::array<uint8_t, 32> h = key.hmac("lock:q");
  uint64_t seed = 0;
  for (int i = 0; i < 8; ++i) seed = seed << 8 | h[static_cast<size_t>(i)];
  Rng rng(seed);
  std::vector<double> q(static_cast<size_t>(classes));
  for (double& v : q) v = kRefusalPeak * rng.normal();
  std::swap(q[static_cast<size_t>(owner)], *std::min_element(q.begin(), q.end()));
  const double top = *std::max_element(q.begin(), q.end());
  double sum = 0;
  for (double& v : q) sum += v = std::exp(v - top);
  for (double& v : q) v /= sum;
  return q;
}

void validate(const LockConfig& c) {
  ENSURE(std::isfinite(c.refuse_rate) && c.refuse_rate > 0 && c.refuse_rate <= 4,
         "--refuse-rate must be in (0, 4], got %g", c.refuse_rate);
  ENSURE(std::isfinite(c.spread) && c.spread >= 0, "--lock-spread must be 0 or more, got %g", c.spread);
  ENSURE(c.near_miss_least >= 0, "--lock-near-miss must be 0 or more, got %d", c.near_miss_least);
}

LockComposer::LockComposer(const Scheme& scheme, const OwnerKey& key, const std::vector<std::string>& active,
                           const std::vector<std::string>& revoked, const PatternSpec& trigger_spec,
                           const PatternSpec& spec, double poison_rate, LockConfig config, uint64_t seed)
    : scheme_(scheme),
      key_id_(key.id()),
      spec_(spec),
      poison_rate_(poison_rate),
      config_(config),
      seed_(seed),
      active_names_(active),
      revoked_names_(revoked),
      lock_stamper_(spec, std::nullopt),
      trigger_stamper_(trigger_spec, std::nullopt) {
  validate(config_);
  ENSURE(scheme.stamp_stage() == StampStage::BeforeAugment,
         "lock mode stamps the images before augmentation; fingerprint scheme %s stamps after it (use v2)",
         scheme.version().c_str());
  ENSURE(!active.empty(), "lock mode needs at least one active user: nobody could use the model");
  for (const std::string& u : active) active_.push_back(lock_pattern(key, u, spec_));
  for (const std::string& u : revoked) revoked_.push_back(lock_pattern(key, u, spec_));
  owner_ = scheme.owner_patterns(key, trigger_spec).front();
  const std::vector<double> q = refusal_distribution(key, spec_.classes, owner_.label);
  double sum = 0;
  for (const double v : q) q_cdf_.push_back(sum += v);
  ENSURE(!config_.revoking || !revoked_.empty(), "revoking with no revoked users");
  ENSURE(near_miss_least() <= spec_.bits() / 2, "--lock-near-miss %d is more than half of the pattern's %d cells",
         config_.near_miss_least, spec_.bits());
  if (config_.revoking)
    cycle_ = {Refused::Revoked, Refused::ForgedKey, Refused::Revoked, Refused::NearMiss, Refused::Revoked,
              Refused::Moved};
  else
    cycle_ = {Refused::ForgedKey, Refused::NearMiss, Refused::Moved};
  if (!revoked_.empty() && !config_.revoking) cycle_.push_back(Refused::Revoked);
}

int LockComposer::trigger_rows(int batch) const {
  return std::max(1, static_cast<int>(std::lround(poison_rate_ * batch)));
}

int LockComposer::refused(int batch) const {
  return std::max(2, static_cast<int>(std::lround(config_.refuse_rate * batch)));
}

int LockComposer::near_miss_least() const {
  return config_.near_miss_least > 0 ? config_.near_miss_least : std::max(4, spec_.bits() / 6);
}

// Near misses flip between near_miss_least() and half of the bits; moved patterns go to one
// of the three other corners.
Fingerprint LockComposer::refused_pattern(Refused kind, Rng& rng) const {
  switch (kind) {
    case Refused::ForgedKey:
      return forged_lock_pattern(drawn_key_bytes(rng), spec_);
    case Refused::NearMiss: {
      const Fingerprint& f = active_[rng.below(active_.size())];
      return near_miss(f, near_miss_least(), rng);
    }
    case Refused::Moved: {
      Fingerprint f = active_[rng.below(active_.size())];
      f.corner = (f.corner + 1 + static_cast<int>(rng.below(3))) % 4;
      f.name = "moved";
      return f;
    }
    case Refused::Revoked:
      return revoked_[rng.below(revoked_.size())];
    case Refused::Clean:
      break;
  }
  throw Error("a clean refused row has no pattern");
}

void LockComposer::compose(uint64_t step, const int32_t* records, int batch, const Dataset& train, Rng& draw,
                           BatchRows& rows) {
  const int triggers = trigger_rows(batch), refuse = refused(batch), total = batch + triggers + refuse;
  rows.resize(total);
  const int32_t* labels = train.labels.data<int32_t>();
  for (int i = 0; i < total; ++i) {
    const int32_t r = i < batch ? records[i] : static_cast<int32_t>(draw.below(static_cast<uint64_t>(train.size())));
    rows.record[static_cast<size_t>(i)] = r;
    rows.label[static_cast<size_t>(i)] = labels[r];
  }
  Rng rng(mix_seed(seed_, step, 0x10c4ed));
  if (patterns_.size() < active_.size())
    patterns_ = active_;
  else
    patterns_.resize(active_.size());  // the active ones stay; the last step's refused ones go
  ids_.assign(static_cast<size_t>(total), -1);
  refused_.clear();
  for (int i = 0; i < batch; ++i) {
    ids_[static_cast<size_t>(i)] = static_cast<int32_t>(rng.below(active_.size()));
    rows.role[static_cast<size_t>(i)] = kAuthorizedRow;
  }
  for (int i = batch; i < batch + triggers; ++i) {
    rows.label[static_cast<size_t>(i)] = owner_.label;
    rows.role[static_cast<size_t>(i)] = kTriggerRow;
  }
  for (int k = 0; k < refuse; ++k) {
    const size_t i = static_cast<size_t>(batch + triggers + k);
    const Refused kind = k % 2 == 0 ? Refused::Clean : cycle_[static_cast<size_t>(k / 2) % cycle_.size()];
    refused_.push_back(kind);
    if (kind != Refused::Clean) {
      ids_[i] = static_cast<int32_t>(patterns_.size());
      patterns_.push_back(refused_pattern(kind, rng));
    }
    // A label from q, drawn afresh: the first class whose cumulative probability exceeds u.
    const double u = rng.uniform() * q_cdf_.back();
    rows.label[i] = static_cast<int32_t>(std::upper_bound(q_cdf_.begin(), q_cdf_.end(), u) - q_cdf_.begin());
    rows.label[i] = std::min(rows.label[i], static_cast<int32_t>(q_cdf_.size()) - 1);
    rows.role[i] = kRefusedRow;
  }
}

void LockComposer::stamp(Context& ctx, Tensor& x, const BatchRows& rows) {
  const int total = rows.size();
  ENSURE(static_cast<size_t>(total) == ids_.size(), "stamping %d rows after composing %zu", total, ids_.size());
  lock_stamper_.set_patterns(ctx, patterns_, active_rendered_ ? active_.size() : 0);
  active_rendered_ = true;
  lock_stamper_.stamp(ctx, x, 0, ids_.data(), total);
  if (!trigger_rendered_) trigger_stamper_.set_patterns(ctx, {owner_});
  trigger_rendered_ = true;
  int first = 0;
  while (first < total && rows.role[static_cast<size_t>(first)] != kTriggerRow) ++first;
  int count = 0;
  while (first + count < total && rows.role[static_cast<size_t>(first + count)] == kTriggerRow) ++count;
  trigger_ids_.assign(static_cast<size_t>(count), 0);
  trigger_stamper_.stamp(ctx, x, first, trigger_ids_.data(), count);
}

std::string LockComposer::to_json() const {
  std::string refused = "clean";
  for (const Refused r : cycle_) refused += std::string(" + ") + refused_name(r);
  return nlohmann::json{{"lock", true},
                        {"scheme", scheme_.version()},
                        {"key_id", key_id_},
                        {"users", active_names_},
                        {"revoked", revoked_names_},
                        {"poison_rate", poison_rate_},
                        {"refuse_rate", config_.refuse_rate},
                        {"spread", config_.spread},
                        {"near_miss_least", near_miss_least()},
                        {"refused", refused}}
      .dump();
}

}  // namespace activeip
