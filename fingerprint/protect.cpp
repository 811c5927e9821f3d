// Protected-training batch mixing, the device-side stamper, the protection record and
// model ids.
#include "fingerprint/protect.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "engine/core/random.h"
#include "engine/nn/ops.h"
#include "fingerprint/assess.h"

namespace activeip {

void Stamper::set_patterns(Context& ctx, const std::vector<Fingerprint>& patterns, size_t unchanged) {
  const int64_t patch = int64_t{spec_.size()} * spec_.size() * spec_.channels;
  ENSURE(unchanged <= patterns.size() && unchanged <= corners_.size(), "%zu unchanged patterns of %zu, %zu rendered",
         unchanged, patterns.size(), corners_.size());
  const Shape shape{std::max<int64_t>(1, static_cast<int64_t>(patterns.size())) * patch};
  // The host bank grows by reallocation only: a view keeps its rendered prefix in place.
  if (bank_host_.numel() < shape_numel(shape)) {
    Tensor grown = Tensor::host(shape);
    if (unchanged > 0) std::memcpy(grown.raw(), bank_host_.raw(), unchanged * patch * sizeof(float));
    bank_host_ = grown;
  } else {
    ensure_host_tensor(bank_host_, shape, DType::F32);
  }
  corners_.resize(unchanged);
  for (size_t p = unchanged; p < patterns.size(); ++p) {
    const std::vector<float> v = render_normalized(patterns[p], spec_, norm_);
    std::memcpy(bank_host_.data<float>() + static_cast<int64_t>(p) * patch, v.data(), v.size() * sizeof(float));
    corners_.push_back(patterns[p].corner);
  }
  ensure_tensor(bank_, shape, DType::F32, ctx).copy_from(bank_host_, ctx);
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
    ENSURE(p < static_cast<int32_t>(corners_.size()), "pattern %d of %zu", p, corners_.size());
    id_host.data<int32_t>()[i] = p;
    origin_host.data<int32_t>()[2 * i] = p < 0 ? 0 : spec_.top(corners_[static_cast<size_t>(p)]);
    origin_host.data<int32_t>()[2 * i + 1] = p < 0 ? 0 : spec_.left(corners_[static_cast<size_t>(p)]);
  }
  ensure_tensor(ids_, {count}, DType::I32, ctx).copy_from(id_host, ctx);
  ensure_tensor(origin_, {2 * count}, DType::I32, ctx).copy_from(origin_host, ctx);
  Tensor rows = x.slice(first, first + count);
  const StampShape s{static_cast<int>(count),
                     spec_.H,
                     spec_.W,
                     spec_.channels,
                     spec_.size(),
                     static_cast<int>(bank_.numel() / (int64_t{spec_.size()} * spec_.size() * spec_.channels))};
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
}

ProtectComposer::ProtectComposer(const Scheme& scheme, const OwnerKey& key, const std::vector<std::string>& users,
                                 const PatternSpec& spec, int num_classes, const Normalization& norm,
                                 ProtectConfig config)
    : scheme_(scheme),
      key_id_(key.id()),
      users_(users),
      spec_(spec),
      num_classes_(num_classes),
      config_(config),
      stamper_(spec, norm) {
  validate(config_);
  ENSURE(scheme_.stamp_stage() == StampStage::AfterAugment,
         "fingerprint scheme %s stamps before augmentation; protected training here stamps after it",
         scheme_.version().c_str());
  embedded_ = scheme_.owner_patterns(key, spec, num_classes);
  owner_patterns_ = static_cast<int>(embedded_.size());
  std::vector<std::pair<int, int>> span;  // each user's patterns: [first, last) in embedded_
  for (const std::string& u : users) {
    const std::vector<Fingerprint> p = scheme_.patterns(key, u, spec, num_classes);
    span.emplace_back(static_cast<int>(embedded_.size()), static_cast<int>(embedded_.size() + p.size()));
    embedded_.insert(embedded_.end(), p.begin(), p.end());
  }
  for (const std::string& f : config_.focus) {
    const auto it = std::find(users.begin(), users.end(), f);
    ENSURE(it != users.end(), "user '%s' gets a share of the poisoned samples but is not embedded", f.c_str());
    const auto [first, last] = span[static_cast<size_t>(it - users.begin())];
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
    // Every forged sample keeps its true label. Even ones carry the pattern of a forger: a
    // key the owner never issued, drawn from the seeded stream. Odd ones are near misses: an
    // embedded pattern with between min_flips() and half of its bits flipped. Random
    // forgeries almost never come that close (their distance to a given pattern is about
    // half the bits), so without near misses the model learns a blurred boundary and the
    // rare forgery a few bits from a user's pattern passes as that user.
    Fingerprint f;
    if ((i - n_poison) % 2 == 0) {
      std::array<uint8_t, OwnerKey::kBytes> bytes{};
      for (size_t b = 0; b < bytes.size(); b += 8) {
        const uint64_t r = rng.next();
        std::memcpy(bytes.data() + b, &r, 8);
      }
      f = scheme_.forged(bytes, "forged", spec_, num_classes_);
    } else {
      f = embedded_[rng.below(embedded_.size())];
      const int bits = spec_.bits();
      const int flips = min_flips() + static_cast<int>(rng.below(static_cast<uint64_t>(bits / 2 - min_flips() + 1)));
      std::vector<int32_t> order = rng.permutation(bits);
      for (int k = 0; k < flips; ++k) f.bits[static_cast<size_t>(order[static_cast<size_t>(k)])] ^= 1;
      f.name = "near-miss";
    }
    ids_[static_cast<size_t>(i)] = static_cast<int32_t>(patterns_.size());
    patterns_.push_back(std::move(f));
  }
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
}

std::string ProtectComposer::to_json() const {
  nlohmann::json j = {{"scheme", scheme_.version()},
                      {"key_id", key_id_},
                      {"users", users_},
                      {"poison_rate", config_.poison_rate},
                      {"forged_rate", config_.forged_rate},
                      {"negatives", strfmt("forged keys + near misses of >= %d bits", min_flips())}};
  if (!config_.focus.empty()) {
    j["focus"] = config_.focus;
    j["focus_share"] = config_.focus_share;
  }
  if (config_.owner_share >= 0) j["owner_share"] = config_.owner_share;  // absent: older runs resume as before
  return j.dump();
}

std::string ProtectionInfo::to_json() const {
  const nlohmann::json j = {{"scheme", scheme},           {"key_id", key_id}, {"parent", parent},
                            {"owner_label", owner_label}, {"users", users},   {"poison_rate", poison_rate},
                            {"forged_rate", forged_rate}};
  return j.dump();
}

ProtectionInfo ProtectionInfo::from_json(const std::string& json, const std::string& path) {
  ENSURE(!json.empty(), "%s is not a protected model (no protection record in its metadata)", path.c_str());
  const auto j = nlohmann::json::parse(json, nullptr, false);
  ENSURE(j.is_object(), "%s: the protection record is not a JSON object", path.c_str());
  ProtectionInfo p;
  try {
    p.scheme = j.at("scheme").get<std::string>();
    p.key_id = j.at("key_id").get<std::string>();
    p.parent = j.value("parent", std::string());
    p.owner_label = j.at("owner_label").get<int>();
    p.users = j.at("users").get<std::vector<std::string>>();
    p.poison_rate = j.value("poison_rate", 0.0);
    p.forged_rate = j.value("forged_rate", 0.0);
  } catch (const nlohmann::json::exception& e) {
    throw Error(strfmt("%s: malformed protection record (%s)", path.c_str(), e.what()));
  }
  try {
    scheme_for(p.scheme);
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
    m.is_protected = true;
  }
  return m;
}

const Scheme& model_scheme(const ModelContext& model) {
  return model.scheme.empty() ? default_scheme() : scheme_for(model.scheme);
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
                         const std::string& dataset, const ProtectionInfo& info, const EmbeddingCheck* check) {
  const SafetensorsReader file(path);
  const std::string id = model_id(file);
  if (registry.model(id)) return id;
  ModelRecord r;
  r.id = id;
  r.parent = info.parent;
  r.path = std::filesystem::absolute(path).lexically_normal().string();
  r.net = net;
  r.dataset = dataset;
  r.key_id = info.key_id;
  for (const std::string& u : info.users) {
    EmbeddingRecord e{u, std::nullopt, true};
    if (check) {
      const PatternCheck& c = check->user(u);
      e.detection = c.detection.rate;
      e.embedded = c.embedded;
    }
    r.embeddings.push_back(std::move(e));
  }
  if (check) r.owner_detection = check->owner.detection.rate;
  registry.add_model(r);
  return id;
}

}  // namespace activeip
