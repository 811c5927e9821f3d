// Protected-training batch mixing, the device-side stamper, the protection record and
// model ids.
#include "fingerprint/protect.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "engine/core/random.h"
#include "engine/nn/ops.h"
#include "fingerprint/assess.h"

namespace activeip {

void Stamper::set_patterns(Context& ctx, const std::vector<Fingerprint>& patterns, size_t unchanged) {
  const int64_t patch = this->patch();
  const DType type = norm_ ? DType::F32 : DType::U8;
  const size_t element = norm_ ? sizeof(float) : 1;
  ENSURE(unchanged <= patterns.size() && unchanged <= origins_.size(), "%zu unchanged patterns of %zu, %zu rendered",
         unchanged, patterns.size(), origins_.size());
  const Shape shape{std::max<int64_t>(1, static_cast<int64_t>(patterns.size())) * patch};
  // The host bank grows by reallocation only: a view keeps its rendered prefix in place.
  if (bank_host_.numel() < shape_numel(shape)) {
    Tensor grown = Tensor::host(shape, type);
    if (unchanged > 0) std::memcpy(grown.raw(), bank_host_.raw(), unchanged * patch * element);
    bank_host_ = grown;
  } else {
    ensure_host_tensor(bank_host_, shape, type);
  }
  origins_.resize(unchanged);
  auto* bank = static_cast<uint8_t*>(bank_host_.raw());
  for (size_t p = unchanged; p < patterns.size(); ++p) {
    uint8_t* dst = bank + static_cast<size_t>(p * patch) * element;
    if (norm_) {
      const std::vector<float> v = render_normalized(patterns[p], spec_, *norm_);
      std::memcpy(dst, v.data(), v.size() * sizeof(float));
    } else {
      const std::vector<uint8_t> v = render_pixels(patterns[p], spec_);
      std::memcpy(dst, v.data(), v.size());
    }
    const Fingerprint& f = patterns[p];
    const int top = spec_.top(f.corner) + f.dy, left = spec_.left(f.corner) + f.dx;
    ENSURE(top >= 0 && left >= 0 && top + spec_.size() <= spec_.H && left + spec_.size() <= spec_.W,
           "pattern '%s' at corner %d moved by (%d, %d) leaves the %dx%d image", f.name.c_str(), f.corner, f.dy, f.dx,
           spec_.H, spec_.W);
    origins_.push_back({top, left});
  }
  ensure_tensor(bank_, shape, type, ctx).copy_from(bank_host_, ctx);
}

void Stamper::stamp(Context& ctx, Tensor& x, int64_t first, const int32_t* ids, int64_t count) {
  ENSURE(x.rank() == 4 && x.dim(1) == spec_.H && x.dim(2) == spec_.W && x.dim(3) == spec_.channels,
         "stamping %dx%dx%d patterns onto a batch of shape %s", spec_.H, spec_.W, spec_.channels,
         shape_str(x.shape()).c_str());
  ENSURE(first >= 0 && count >= 0 && first + count <= x.dim(0), "stamping rows [%lld, %lld) of a batch of %lld",
         static_cast<long long>(first), static_cast<long long>(first + count), static_cast<long long>(x.dim(0)));
  if (count == 0) return;
  Tensor& id_host = ensure_host_tensor(ids_host_, {count}, DType::I32);
  Tensor& origin_host = ensure_host_tensor(origin_host_, {2 * count}, DType::I32);
  for (int64_t i = 0; i < count; ++i) {
    const int32_t p = ids[i];
    ENSURE(p < static_cast<int32_t>(origins_.size()), "pattern %d of %zu", p, origins_.size());
    id_host.data<int32_t>()[i] = p;
    origin_host.data<int32_t>()[2 * i] = p < 0 ? 0 : origins_[static_cast<size_t>(p)][0];
    origin_host.data<int32_t>()[2 * i + 1] = p < 0 ? 0 : origins_[static_cast<size_t>(p)][1];
  }
  ensure_tensor(ids_, {count}, DType::I32, ctx).copy_from(id_host, ctx);
  ensure_tensor(origin_, {2 * count}, DType::I32, ctx).copy_from(origin_host, ctx);
  Tensor rows = x.slice(first, first + count);
  const StampShape s{static_cast<int>(count), spec_.H,      spec_.W,
                     spec_.channels,          spec_.size(), static_cast<int>(bank_.numel() / patch())};
  ops::stamp(ctx, s, bank_, ids_, origin_, rows);
}

void validate(const ProtectConfig& c) {
  ENSURE(std::isfinite(c.poison_rate) && c.poison_rate > 0 && c.poison_rate <= 1,
         "--poison-rate must be in (0, 1], got %g", c.poison_rate);
  ENSURE(std::isfinite(c.forged_rate) && c.forged_rate >= 0 && c.forged_rate <= 1,
         "--forged-rate must be in [0, 1], got %g", c.forged_rate);
  ENSURE(std::isfinite(c.focus_share) && c.focus_share >= 0 && c.focus_share <= 1,
         "--new-user-share must be in [0, 1], got %g", c.focus_share);
  ENSURE(std::isfinite(c.owner_share) && c.owner_share <= 1, "--owner-share must be in [0, 1], got %g", c.owner_share);
  ENSURE(!c.degrade_rate || (std::isfinite(*c.degrade_rate) && *c.degrade_rate >= 0 && *c.degrade_rate <= 1),
         "--degrade-rate must be in [0, 1], got %g", c.degrade_rate.value_or(0));
}

namespace {

// The degradations and their ranges: one table for the draws, their description and the check
// that every one fits the images.
struct Degradation {
  TransformKind kind;
  const char* name;
  double lo, hi;
  bool integer;
};
constexpr Degradation kDegradations[] = {
    {TransformKind::Median, "median", 3, 3, true},  {TransformKind::Jpeg, "jpeg", 30, 90, true},
    {TransformKind::Blur, "blur", 0.5, 1.5, false}, {TransformKind::Noise, "noise", 2, 16, false},
    {TransformKind::Bits, "bits", 3, 5, true},      {TransformKind::ShrinkPad, "shrinkpad", 1, 4, true},
};

std::string range_text(const Degradation& d) {
  return d.lo == d.hi ? strfmt("%s:%g", d.name, d.lo) : strfmt("%s:%g..%g", d.name, d.lo, d.hi);
}

// One draw from kDegradations: the kind, then its parameter uniform in its range (no draw for
// a fixed one).
Transform draw_degradation(Rng& rng) {
  const Degradation& d = kDegradations[rng.below(std::size(kDegradations))];
  double v = d.lo;
  if (d.lo != d.hi)
    v = d.integer ? d.lo + static_cast<double>(rng.below(static_cast<uint64_t>(d.hi - d.lo + 1)))
                  : d.lo + (d.hi - d.lo) * rng.uniform();
  return {d.kind, v, range_text(d)};
}

}  // namespace

const char* degradations() {
  static const std::string text = [] {
    std::string t;
    for (const Degradation& d : kDegradations) t += (t.empty() ? "" : ", ") + range_text(d);
    return t;
  }();
  return text.c_str();
}

ProtectComposer::ProtectComposer(const Scheme& scheme, const OwnerKey& key, const std::vector<Identity>& users,
                                 const PatternSpec& spec, const Normalization& norm, ProtectConfig config)
    : scheme_(scheme),
      key_id_(key.id()),
      spec_(spec),
      config_(config),
      negatives_(scheme.negatives()),
      stamper_(spec,
               scheme.stamp_stage() == StampStage::BeforeAugment ? std::nullopt : std::optional<Normalization>(norm)) {
  validate(config_);
  ENSURE(scheme_.stamp_stage() != StampStage::None && !negatives_.empty(),
         "fingerprint scheme %s neither stamps nor makes negatives", scheme_.version().c_str());
  const bool before_augment = scheme_.stamp_stage() == StampStage::BeforeAugment;
  degrade_rate_ = config_.degrade_rate.value_or(before_augment ? kDegradeRate : 0.0);
  ENSURE(degrade_rate_ == 0 || before_augment,
         "--degrade-rate: fingerprint scheme %s stamps after augmentation, on normalised batches; degraded samples "
         "need a scheme that stamps the images before it (v2)",
         scheme_.version().c_str());
  if (degrade_rate_ > 0)  // each degradation at its strongest must act on these images
    for (const Degradation& d : kDegradations)
      check_transform_fits({d.kind, d.hi, range_text(d)}, spec.H, spec.W, spec.channels);
  for (const Identity& u : users) users_.push_back(u.name);
  embedded_ = scheme_.owner_patterns(key, spec);
  owner_patterns_ = static_cast<int>(embedded_.size());
  std::vector<std::pair<int, int>> span;  // each user's patterns: [first, last) in embedded_
  for (const Identity& u : users) {
    const std::vector<Fingerprint> p = scheme_.patterns(key, u, spec);
    span.emplace_back(static_cast<int>(embedded_.size()), static_cast<int>(embedded_.size() + p.size()));
    embedded_.insert(embedded_.end(), p.begin(), p.end());
  }
  for (const std::string& f : config_.focus) {
    const auto it = std::find(users_.begin(), users_.end(), f);
    ENSURE(it != users_.end(), "user '%s' gets a share of the poisoned samples but is not embedded", f.c_str());
    const auto [first, last] = span[static_cast<size_t>(it - users_.begin())];
    for (int k = first; k < last; ++k) focus_.push_back(k);
  }
}

int ProtectComposer::poisoned(int batch) const {
  return std::max(1, static_cast<int>(std::lround(config_.poison_rate * batch)));
}

int ProtectComposer::forged(int batch) const {
  return config_.forged_rate > 0 ? std::max(1, static_cast<int>(std::lround(config_.forged_rate * batch))) : 0;
}

void ProtectComposer::relabel(uint64_t step, int batch, int32_t* labels) {
  Rng rng(mix_seed(config_.seed, step, 0x5eedf1a9));
  const int n_poison = poisoned(batch), count = extra(batch);
  ids_.assign(static_cast<size_t>(count), -1);
  if (patterns_.size() < embedded_.size())
    patterns_.assign(embedded_.begin(), embedded_.end());
  else
    patterns_.resize(embedded_.size());  // the embedded ones stay; the last step's forged ones go
  const bool has_owner_share = config_.owner_share >= 0;
  const uint64_t users = embedded_.size() - static_cast<uint64_t>(owner_patterns_);  // the users' patterns
  for (int i = 0; i < n_poison; ++i) {
    // Without focus users or an owner's share the stream is the same as it always was (no
    // extra draw). With an owner's share, what the owner leaves goes to the users only. An
    // owner with a single pattern (v1) costs no draw of its own.
    int k = 0;  // the owner
    if (!has_owner_share || (users > 0 && rng.uniform() >= config_.owner_share)) {
      const bool focus = !focus_.empty() && rng.uniform() < config_.focus_share;
      if (focus)
        k = focus_[rng.below(focus_.size())];
      else
        k = has_owner_share ? owner_patterns_ + static_cast<int>(rng.below(users))
                            : static_cast<int>(rng.below(embedded_.size()));
    } else if (owner_patterns_ > 1) {
      k = static_cast<int>(rng.below(static_cast<uint64_t>(owner_patterns_)));
    }
    ids_[static_cast<size_t>(i)] = k;
    labels[i] = embedded_[static_cast<size_t>(k)].label;
  }
  for (int i = n_poison; i < count; ++i) {
    ids_[static_cast<size_t>(i)] = static_cast<int32_t>(patterns_.size());
    patterns_.push_back(negative(negatives_[static_cast<size_t>(i - n_poison) % negatives_.size()], rng));
  }
  // A stream of its own, so that the patterns drawn above do not depend on the rate.
  degraded_.clear();
  if (degrade_rate_ <= 0) return;
  Rng drng(mix_seed(config_.seed, step, 0xde94ade));
  for (int i = 0; i < count; ++i)
    if (drng.uniform() < degrade_rate_) {
      const Transform t = draw_degradation(drng);
      degraded_.push_back({i, t, drng.next()});
    }
}

// Every negative keeps its true label. A forger's pattern comes from a key the owner never
// issued, drawn from the seeded stream. Random forgeries almost never come close to an issued
// pattern (their distance to a given one is about half the bits), so without near misses —
// an embedded pattern with between min_flips() and half of its bits flipped — the model
// learns a blurred boundary and the rare forgery a few bits from a user's pattern passes as
// that user. Two users' cells mixed (v2) is what insiders can make of the patterns in hand; a
// mix within min_flips() bits of either is a near miss instead, as it would teach the model to
// refuse an embedded pattern. (Patterns moved, shifted or flipped are not negatives under v2:
// its triggers move with the image, so a moved pattern still carries its own user's labels,
// and no other user's code.)
Fingerprint ProtectComposer::negative(Negative kind, Rng& rng) const {
  const int bits = spec_.bits();
  const auto pick = [&] { return embedded_[rng.below(embedded_.size())]; };
  switch (kind) {
    case Negative::ForgedKey: {
      const std::array<uint8_t, OwnerKey::kBytes> bytes = drawn_key_bytes(rng);
      // A claim to be a user named "forged"; its labels do not matter, the negative keeps its true one.
      Fingerprint claim;
      claim.name = "forged";
      const std::vector<Fingerprint> f =
          scheme_.forged(bytes, std::vector<Fingerprint>(static_cast<size_t>(spec_.code_length), claim), spec_);
      return f.size() == 1 ? f.front() : f[rng.below(f.size())];
    }
    case Negative::Mixed: {
      const Fingerprint a = pick(), b = pick();
      std::vector<int32_t> differ;
      for (int k = 0; k < bits; ++k)
        if (a.bits[static_cast<size_t>(k)] != b.bits[static_cast<size_t>(k)]) differ.push_back(k);
      const int n = static_cast<int>(differ.size());
      if (n < 2 * min_flips()) return near_miss(a, min_flips(), rng);
      // k of the cells where they differ come from b: k and n − k both at least min_flips().
      const int k = min_flips() + static_cast<int>(rng.below(static_cast<uint64_t>(n - 2 * min_flips() + 1)));
      const std::vector<int32_t> order = rng.permutation(n);
      Fingerprint f = a;
      for (int t = 0; t < k; ++t)
        f.bits[static_cast<size_t>(differ[static_cast<size_t>(order[static_cast<size_t>(t)])])] ^= 1;
      f.name = "mixed";
      return f;
    }
    case Negative::NearMiss:
      break;
  }
  return near_miss(pick(), min_flips(), rng);
}

std::array<uint8_t, OwnerKey::kBytes> drawn_key_bytes(Rng& rng) {
  std::array<uint8_t, OwnerKey::kBytes> bytes{};
  for (size_t b = 0; b < bytes.size(); b += 8) {
    const uint64_t r = rng.next();
    std::memcpy(bytes.data() + b, &r, 8);
  }
  return bytes;
}

Fingerprint near_miss(Fingerprint f, int least, Rng& rng) {
  const int bits = static_cast<int>(f.bits.size());
  const int flips = least + static_cast<int>(rng.below(static_cast<uint64_t>(bits / 2 - least + 1)));
  std::vector<int32_t> order = rng.permutation(bits);
  for (int k = 0; k < flips; ++k) f.bits[static_cast<size_t>(order[static_cast<size_t>(k)])] ^= 1;
  f.name = "near-miss";
  return f;
}

int ProtectComposer::min_flips() const {
  return std::max(4, spec_.bits() / 6);
}

void ProtectComposer::compose(uint64_t step, const int32_t* records, int batch, const Dataset& train, Rng& draw,
                              BatchRows& rows) {
  const int count = extra(batch);
  rows.resize(batch + count);
  const int32_t* labels = train.labels.data<int32_t>();
  for (int i = 0; i < batch + count; ++i) {
    const int32_t r = i < batch ? records[i] : static_cast<int32_t>(draw.below(static_cast<uint64_t>(train.size())));
    rows.record[static_cast<size_t>(i)] = r;
    rows.label[static_cast<size_t>(i)] = labels[r];
  }
  relabel(step, batch, rows.label.data() + batch);
  const int poison = poisoned(batch);
  for (int i = 0; i < count; ++i)
    rows.role[static_cast<size_t>(batch + i)] = i >= poison                                      ? kForgedRow
                                                : ids_[static_cast<size_t>(i)] < owner_patterns_ ? kOwnerRow
                                                                                                 : kUserRow;
}

void ProtectComposer::stamp(Context& ctx, Tensor& x, const BatchRows& rows) {
  const int first = rows.clean_prefix();
  alter(ctx, x, first, rows.size() - first);
}

void ProtectComposer::alter(Context& ctx, Tensor& x, int first, int count) {
  ENSURE(static_cast<size_t>(count) == ids_.size(), "alter of %d samples after relabel of %zu", count, ids_.size());
  stamper_.set_patterns(ctx, patterns_, embedded_rendered_ ? embedded_.size() : 0);
  embedded_rendered_ = true;
  stamper_.stamp(ctx, x, first, ids_.data(), count);
  if (!degraded_.empty()) degrade(ctx, x, first, count);
}

void ProtectComposer::degrade(Context& ctx, Tensor& x, int first, int count) {
  ENSURE(x.dtype() == DType::U8, "degraded samples are uint8 images, not a %s batch", dtype_name(x.dtype()));
  const int H = static_cast<int>(x.dim(1)), W = static_cast<int>(x.dim(2)), C = static_cast<int>(x.dim(3));
  Tensor rows = x.slice(first, first + count);
  const bool on_host = !rows.device().is_cuda();
  // A device batch makes a round trip through the host: a few rows per step.
  if (!on_host) {
    ensure_host_tensor(degrade_host_, rows.shape(), DType::U8).copy_from(rows, ctx);
    ctx.synchronize();
  }
  uint8_t* px = (on_host ? rows : degrade_host_).data<uint8_t>();
  const size_t image = static_cast<size_t>(H) * W * C;
  for (const Degraded& d : degraded_) {
    Rng rng(d.seed);
    apply_transform(d.transform, px + static_cast<size_t>(d.sample) * image, H, W, C, rng);
  }
  if (!on_host) {
    rows.copy_from(degrade_host_, ctx);
    ctx.synchronize();  // the staging is rewritten next step
  }
}

std::string ProtectComposer::negatives_description() const {
  std::string kinds;
  for (Negative n : negatives_) {
    const char* name = n == Negative::ForgedKey ? "forged keys" : n == Negative::NearMiss ? "near misses" : "mixed";
    kinds += (kinds.empty() ? "" : " + ") + std::string(name);
  }
  return strfmt("%s of >= %d bits", kinds.c_str(), min_flips());
}

std::string ProtectComposer::to_json() const {
  nlohmann::json j = {{"scheme", scheme_.version()},
                      {"key_id", key_id_},
                      {"users", users_},
                      {"poison_rate", config_.poison_rate},
                      {"forged_rate", config_.forged_rate},
                      {"negatives", negatives_description()}};
  if (spec_.code_length > 1) j["code_length"] = spec_.code_length;  // absent: v1 runs resume as before
  if (!config_.focus.empty()) {
    j["focus"] = config_.focus;
    j["focus_share"] = config_.focus_share;
  }
  if (config_.owner_share >= 0) j["owner_share"] = config_.owner_share;  // absent: older runs resume as before
  if (degrade_rate_ > 0) {
    j["degrade_rate"] = degrade_rate_;
    j["degradations"] = degradations();
  }
  return j.dump();
}

std::string ProtectionInfo::to_json() const {
  nlohmann::json j = {{"scheme", scheme},           {"key_id", key_id}, {"parent", parent},
                      {"owner_label", owner_label}, {"users", users},   {"poison_rate", poison_rate},
                      {"forged_rate", forged_rate}};
  if (code_length > 1) j["code_length"] = code_length;
  if (lock) {
    j["lock"] = true;
    j["revoked"] = revoked;
    j["refuse_rate"] = refuse_rate;
    j["spread"] = spread;
    if (near_miss_least > 0) j["near_miss_least"] = near_miss_least;
  }
  return j.dump();
}

ProtectionInfo ProtectionInfo::from_json(const std::string& json, const std::string& path) {
  ENSURE(!json.empty(), "%s is not a protected model (no protection record in its metadata)", path.c_str());
  const auto j = nlohmann::json::parse(json, nullptr, false);
  ENSURE(j.is_object(), "%s: the protection record is not a JSON object", path.c_str());
  // Integers only: converting a number like 1e49 to int is undefined.
  for (const char* key : {"owner_label", "code_length", "near_miss_least"})
    ENSURE(!j.contains(key) || j[key].is_number_integer(), "%s: the protection record's %s is not an integer",
           path.c_str(), key);
  ProtectionInfo p;
  try {
    p.scheme = j.at("scheme").get<std::string>();
    p.key_id = j.at("key_id").get<std::string>();
    p.parent = j.value("parent", std::string());
    p.owner_label = j.at("owner_label").get<int>();
    p.users = j.at("users").get<std::vector<std::string>>();
    p.poison_rate = j.value("poison_rate", 0.0);
    p.forged_rate = j.value("forged_rate", 0.0);
    p.code_length = j.value("code_length", 1);
    p.lock = j.value("lock", false);
    p.revoked = j.value("revoked", std::vector<std::string>());
    p.refuse_rate = j.value("refuse_rate", 0.0);
    p.spread = j.value("spread", 0.0);
    p.near_miss_least = j.value("near_miss_least", 0);
  } catch (const nlohmann::json::exception& e) {
    throw Error(strfmt("%s: malformed protection record (%s)", path.c_str(), e.what()));
  }
  try {
    // The record's code length must be one its scheme draws patterns for.
    scheme_for(p.scheme).spec(32, 32, 3, 2, p.code_length);
  } catch (const Error& e) {
    throw Error(strfmt("%s: %s", path.c_str(), e.what()));
  }
  return p;
}

std::string model_id(const SafetensorsReader& file) {
  std::vector<std::string> names = file.names();
  std::sort(names.begin(), names.end());
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> sha(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  ENSURE(sha && EVP_DigestInit_ex(sha.get(), EVP_sha256(), nullptr) == 1, "OpenSSL SHA-256 failed");
  for (const std::string& name : names) {
    const SafetensorsView& v = file.get(name);
    std::string head = name + '\0' + v.dtype + '\0';
    for (int64_t d : v.shape) head += std::to_string(d) + ',';
    head += '\0';
    ENSURE(
        EVP_DigestUpdate(sha.get(), head.data(), head.size()) == 1 && EVP_DigestUpdate(sha.get(), v.data, v.bytes) == 1,
        "OpenSSL SHA-256 failed");
  }
  uint8_t digest[32];
  unsigned int len = 0;
  ENSURE(EVP_DigestFinal_ex(sha.get(), digest, &len) == 1 && len == sizeof digest, "OpenSSL SHA-256 failed");
  return to_hex(digest, sizeof digest);
}

ModelContext model_context(const SafetensorsReader& file, const ModelMeta& meta) {
  ModelContext m;
  m.id = model_id(file);
  if (!meta.protection.empty()) {
    const ProtectionInfo p = ProtectionInfo::from_json(meta.protection, file.path());
    m.key_id = p.key_id;
    m.users = p.users;
    m.parent = p.parent;
    m.scheme = p.scheme;
    m.code_length = p.code_length;
    m.is_protected = true;
    m.locked = p.lock;
  }
  return m;
}

const Scheme& model_scheme(const ModelContext& model) {
  return model.scheme.empty() ? default_scheme() : scheme_for(model.scheme);
}

int model_code_length(const ModelContext& model, const Registry* registry, int classes) {
  if (model.code_length > 0) return model.code_length;
  return model_scheme(model).code_length(classes, registry ? registry->codes() : 0);
}

Identity identity(const Registry& registry, const std::string& name) {
  const std::optional<UserRecord> u = registry.user(name);
  return {name, u ? u->code : -1};
}

std::vector<Identity> identities(const Registry& registry, const std::vector<std::string>& names) {
  std::vector<Identity> out;
  for (const std::string& n : names) out.push_back(identity(registry, n));
  return out;
}

void check_model_key(const ModelContext& model, const OwnerKey& key, const std::string& path) {
  ENSURE(model.key_id.empty() || model.key_id == key.id(), "the key (id %s) is not the key of %s (id %s)",
         key.id().c_str(), path.c_str(), model.key_id.c_str());
}

void check_registry_key(const Registry& registry, const OwnerKey& key) {
  for (const ModelRecord& m : registry.models())
    ENSURE(m.key_id == key.id(), "registry %s holds models of another key (id %s, this key is %s)",
           registry.path().c_str(), m.key_id.c_str(), key.id().c_str());
}

std::vector<std::string> active_users(const Registry& registry) {
  std::vector<std::string> names;
  for (const UserRecord& u : registry.users())
    if (u.status == "active") names.push_back(u.name);
  return names;
}

std::vector<std::string> trained_users(const Registry* registry, const ModelContext& model) {
  std::optional<ModelRecord> record = registry ? registry->model(model.id) : std::nullopt;
  std::set<std::string> users;
  if (!record) users.insert(model.users.begin(), model.users.end());
  std::set<std::string> seen;
  while (record && seen.insert(record->id).second) {
    for (const EmbeddingRecord& e : record->embeddings) users.insert(e.user);
    record = record->parent.empty() ? std::nullopt : registry->model(record->parent);
  }
  return {users.begin(), users.end()};
}

std::vector<std::string> embedded_users(const Registry* registry, const ModelContext& model) {
  std::vector<std::string> users = trained_users(registry, model);
  if (registry && registry->model(model.id))
    std::erase_if(users, [&](const std::string& u) { return !registry->embedded(model.id, u); });
  return users;
}

std::string record_model(Registry& registry, const std::string& path, const std::string& net,
                         const std::string& dataset, const ProtectionInfo& info, const EmbeddingCheck* check,
                         const std::vector<std::string>& revoke) {
  const SafetensorsReader file(path);
  const std::string id = model_id(file);
  if (registry.model(id)) {  // recorded by an earlier run that stopped before revoking
    if (!revoke.empty()) registry.revoke_users(revoke);
    return id;
  }
  ModelRecord r;
  r.id = id;
  r.parent = info.parent;
  r.path = std::filesystem::absolute(path).lexically_normal().string();
  r.net = net;
  r.dataset = dataset;
  r.key_id = info.key_id;
  r.scheme = info.scheme;
  r.code_length = info.code_length;
  r.locked = info.lock;
  for (const std::string& u : info.users) {
    EmbeddingRecord e{u, std::nullopt, true};
    if (check) {
      const PatternCheck& c = check->user(u);
      e.detection = c.detection.rate;
      e.embedded = c.embedded;
    }
    r.embeddings.push_back(std::move(e));
  }
  if (check)
    for (const PatternCheck& c : check->revoked) r.embeddings.push_back({c.user, c.detection.rate, false});
  if (check) r.owner_detection = check->owner.detection.rate;
  registry.add_model(r, revoke);
  return id;
}

}  // namespace activeip
