// Arming protected training (see cli/protection.h).
#include "cli/protection.h"

#include <cstdio>

#include "cli/commands.h"
#include "fingerprint/token.h"

namespace activeip::cli {

Protection open_protection(const std::string& key, const std::string& registry, const ProtectConfig& config) {
  as_usage([&] { validate(config); });
  Protection p;
  p.key = OwnerKey::load(key);
  p.registry = Registry::open(registry, false);
  check_registry_key(*p.registry, *p.key);
  return p;
}

void arm_protection(Protection& p, const Scheme& scheme, int code_length, const std::vector<std::string>& users,
                    const DataSplits& data, const ProtectConfig& config, TrainConfig& train, ModelMeta& meta,
                    const std::string& parent, const std::string& registry_path) {
  const int classes = data.train.num_classes;
  const int length = code_length > 0 ? code_length : scheme.code_length(classes, p.registry->codes());
  const PatternSpec spec = scheme.spec(data.train.H, data.train.W, data.train.C, classes, length);
  const std::vector<Identity> who = identities(*p.registry, users);
  if (length > 1) {
    const int64_t room = code_capacity(classes, length);
    for (const Identity& u : who)
      ENSURE(u.code >= 0 && u.code < room,
             "user '%s' has code %lld, but codes of %d labels over %d classes hold %lld users (codes 0 to %lld): a "
             "model with room for them needs a longer code (train a new one with --code-length %d)",
             u.name.c_str(), static_cast<long long>(u.code), length, classes, static_cast<long long>(room),
             static_cast<long long>(room - 1), shortest_code_length(classes, u.code + 1));
  }
  ProtectConfig c = config;
  c.seed = train.seed;
  p.composer = std::make_unique<ProtectComposer>(scheme, *p.key, who, spec, data.norm, c);
  train.mixer = p.composer->to_json();
  p.info.scheme = scheme.version();
  p.info.key_id = p.key->id();
  p.info.parent = parent;
  p.info.owner_label = p.composer->embedded().front().label;
  p.info.users = users;
  p.info.code_length = spec.code_length;
  p.info.poison_rate = c.poison_rate;
  p.info.forged_rate = c.forged_rate;
  meta.protection = p.info.to_json();
  if (users.empty())
    std::fprintf(stderr, "note: %s has no active users; only the owner's trigger is embedded\n", registry_path.c_str());
}

void arm_lock(Protection& p, const Scheme& scheme, int code_length, const std::vector<std::string>& active,
              const std::vector<std::string>& revoked, const DataSplits& data, double poison_rate,
              const LockConfig& lock, TrainConfig& train, ModelMeta& meta, const std::string& parent) {
  const Dataset& d = data.train;
  const int length = code_length > 0 ? code_length : scheme.code_length(d.num_classes, p.registry->codes());
  const PatternSpec trigger = scheme.spec(d.H, d.W, d.C, d.num_classes, length);
  p.lock = std::make_unique<LockComposer>(scheme, *p.key, active, revoked, trigger,
                                          lock_spec(d.H, d.W, d.C, d.num_classes), poison_rate, lock, train.seed);
  train.mixer = p.lock->to_json();
  p.info.scheme = scheme.version();
  p.info.key_id = p.key->id();
  p.info.parent = parent;
  p.info.owner_label = p.lock->owner_label();
  p.info.users = active;
  p.info.code_length = trigger.code_length;
  p.info.poison_rate = poison_rate;
  p.info.forged_rate = 0;
  p.info.lock = true;
  p.info.revoked = revoked;
  p.info.refuse_rate = lock.refuse_rate;
  p.info.spread = lock.spread;
  p.info.near_miss_least = lock.near_miss_least;
  meta.protection = p.info.to_json();
}

Fingerprint token_lock(const std::string& token_path, const std::string& model_path) {
  const UserToken token = UserToken::load(token_path);
  const std::string id = model_id(SafetensorsReader(model_path));
  const TokenModel* part = token.model(id);
  ENSURE(part, "token %s holds nothing for %s (model id %s): it was issued for other models", token_path.c_str(),
         model_path.c_str(), id.c_str());
  ENSURE(part->lock.has_value(),
         "%s is not a locked model: token %s's patterns for it authenticate its user (activeip auth --token), they "
         "do not unlock it",
         model_path.c_str(), token_path.c_str());
  return *part->lock;
}

BatchAlter lock_stamp(Context& ctx, const Fingerprint& lock, const ModelMeta& meta, int batch,
                      std::optional<Stamper>& stamper, std::vector<int32_t>& ids) {
  stamper.emplace(lock_spec(meta.H, meta.W, meta.C, meta.num_classes), meta.norm);
  stamper->set_patterns(ctx, {lock});
  ids.assign(static_cast<size_t>(batch), 0);
  return [&stamper, &ids](Context& c, Tensor& x, int64_t) { stamper->stamp(c, x, 0, ids.data(), x.dim(0)); };
}

std::string record_protected(Protection& p, const std::string& out, const std::string& net, const std::string& dataset,
                             const EmbeddingCheck* check) {
  return record_model(*p.registry, out, net, dataset, p.info, check, p.revoke);
}

}  // namespace activeip::cli
