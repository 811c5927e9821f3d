// The protection report shared by `report` and the attack commands.
#include "fingerprint/assess.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "engine/core/random.h"
#include "fingerprint/lock.h"

namespace activeip {

std::string UsersSummary::to_json() const {
  nlohmann::json per = nlohmann::json::array();
  for (const AuthResult& a : per_user) per.push_back(nlohmann::json::parse(a.to_json()));
  const nlohmann::json j = {{"count", count},
                            {"authenticated", authenticated},
                            {"mean_detection", mean_detection},
                            {"min_detection", min_detection},
                            {"per_user", per}};
  return j.dump();
}

UsersSummary authenticate_users(Prober& prober, const OwnerKey& key, const Registry& registry,
                                const ModelContext& model, const std::vector<std::string>& users) {
  UsersSummary s;
  double sum = 0, min = 1;
  for (const std::string& u : users) {
    AuthResult a = authenticate(prober, key, registry, model, u);
    ++s.count;
    s.authenticated += a.authenticated;
    sum += a.detection.rate;
    min = std::min(min, a.detection.rate);
    s.per_user.push_back(std::move(a));
  }
  s.mean_detection = s.count ? sum / s.count : 0.0;
  s.min_detection = s.count ? min : 0.0;
  return s;
}

std::vector<std::vector<Fingerprint>> claimable_fingerprints(const Prober& prober, const OwnerKey& key,
                                                             const Registry& registry,
                                                             const std::vector<std::string>& users) {
  std::vector<std::vector<Fingerprint>> out;
  for (const std::string& u : users) out.push_back(prober.scheme().patterns(key, identity(registry, u), prober.spec()));
  ENSURE(!out.empty(), "no user is embedded in this model: there is no one to claim to be");
  return out;
}

std::string Assessment::to_json() const {
  nlohmann::json j = {{"clean_accuracy", clean_accuracy}};
  // Without a reference both fields are there and null, so a reader need not guess.
  j[reference + "_accuracy"] = reference_accuracy ? nlohmann::json(*reference_accuracy) : nlohmann::json();
  j["accuracy_drop"] = reference_accuracy ? nlohmann::json(*reference_accuracy - clean_accuracy) : nlohmann::json();
  if (owner) j["owner"] = nlohmann::json::parse(owner->to_json());
  if (users) j["users"] = nlohmann::json::parse(users->to_json());
  if (forged) j["forged"] = nlohmann::json::parse(forged->to_json());
  if (insiders) j["insiders"] = nlohmann::json::parse(insiders->to_json());
  if (lock) j["lock"] = nlohmann::json::parse(lock->to_json());
  return j.dump();
}

void Assessment::print(std::FILE* out) const {
  std::fprintf(out, "%-34s %.2f%%\n", "clean accuracy", 100 * clean_accuracy);
  if (reference_accuracy) {
    std::fprintf(out, "%-34s %.2f%%\n", (reference + " accuracy").c_str(), 100 * *reference_accuracy);
    std::fprintf(out, "%-34s %+.2f points\n", "accuracy drop", 100 * (*reference_accuracy - clean_accuracy));
  } else {
    std::fprintf(out, "%-34s none (no %s model given: no accuracy drop)\n", (reference + " accuracy").c_str(),
                 reference.c_str());
  }
  if (owner)
    std::fprintf(out, "%-34s %s (detection %.3f, p = %.3g)\n", "owner verification",
                 owner->verified ? "verified" : "NOT verified", owner->detection.rate, owner->p_value);
  if (users)
    std::fprintf(out, "%-34s %d of %d (detection mean %.3f, min %.3f)\n", "users authenticated", users->authenticated,
                 users->count, users->mean_detection, users->min_detection);
  if (forged)
    std::fprintf(out, "%-34s %d of %d (detection mean %.4f, max %.4f)\n", "forged fingerprints passed", forged->passed,
                 forged->count, forged->mean_detection, forged->max_detection);
  if (insiders)
    std::fprintf(out, "%-34s %d of %d (%d users, %d forms; strongest %.3f: %s)\n", "insider claims passed",
                 insiders->passed, insiders->claims, insiders->users, insiders->variants, insiders->max_detection,
                 insiders->strongest.c_str());
  if (lock) lock->print(out);
}

void assess_protection(Assessment& a, Prober& prober, const OwnerKey& key, const Registry* registry,
                       const ModelContext& model, const AssessConfig& config) {
  a.owner = verify_model_owner(prober, key, model);
  if (!registry) return;
  if (model.locked) {
    std::vector<std::string> active, revoked;
    for (const std::string& u : trained_users(registry, model)) {
      const std::optional<UserRecord> r = registry->user(u);
      (r && r->status == "active" ? active : revoked).push_back(u);
    }
    for (const UserRecord& u : registry->users())
      if (u.status == "revoked" && std::find(revoked.begin(), revoked.end(), u.name) == revoked.end())
        revoked.push_back(u.name);
    a.lock = assess_lock(prober, key, active, revoked, {config.forge_count, config.forge_seed});
    return;
  }
  // Every user trained in: one whose fingerprint fell short of τ at the end of training is
  // counted, and refused with that reason.
  const std::vector<std::string> users = trained_users(registry, model);
  a.users = authenticate_users(prober, key, *registry, model, users);
  if (users.empty()) return;
  const std::vector<std::vector<Fingerprint>> claimable = claimable_fingerprints(prober, key, *registry, users);
  a.forged = forge(prober, claimable, config.forge_count, config.forge_seed);
  if (config.insiders && users.size() >= 2) a.insiders = insiders(prober, claimable, config.insider_shift);
}

bool EmbeddingCheck::complete() const {
  return owner.verified && short_users().empty() && still_unlocking().empty();
}

std::vector<std::string> EmbeddingCheck::still_unlocking() const {
  std::vector<std::string> out;
  for (const PatternCheck& u : revoked)
    if (u.embedded) out.push_back(u.user);
  return out;
}

std::vector<std::string> EmbeddingCheck::short_users() const {
  std::vector<std::string> out;
  for (const PatternCheck& u : users)
    if (!u.embedded) out.push_back(u.user);
  return out;
}

const PatternCheck& EmbeddingCheck::user(const std::string& name) const {
  for (const PatternCheck& u : users)
    if (u.user == name) return u;
  throw Error(strfmt("user '%s' was not measured at the end of training", name.c_str()));
}

std::string EmbeddingCheck::to_json() const {
  const auto each = [](const std::vector<PatternCheck>& checks) {
    nlohmann::json per = nlohmann::json::array();
    for (const PatternCheck& u : checks)
      per.push_back({{"user", u.user},
                     {"target_label", u.detection.target},
                     {"detection_rate", u.detection.rate},
                     {"embedded", u.embedded}});
    return per;
  };
  nlohmann::json j = {{"tau", tau},
                            {"complete", complete()},
                            {"owner",
                             {{"user", kOwnerName},
                              {"target_label", owner.detection.target},
                              {"detection_rate", owner.detection.rate},
                              {"p_value", owner.p_value},
                              {"embedded", owner.verified}}},
                            {"users", each(users)}};
  if (!revoked.empty()) j["revoked"] = each(revoked);
  return j.dump();
}

EmbeddingCheck check_embedding(Prober& prober, const OwnerKey& key, const std::vector<Identity>& users) {
  EmbeddingCheck c;
  c.tau = prober.config().tau;
  c.owner = verify_owner(prober, key);
  // Every user's patterns in one batched pass; a user is embedded when the weakest of them is.
  std::vector<Fingerprint> patterns;
  std::vector<size_t> first;
  for (const Identity& u : users) {
    first.push_back(patterns.size());
    const std::vector<Fingerprint> p = prober.scheme().patterns(key, u, prober.spec());
    patterns.insert(patterns.end(), p.begin(), p.end());
  }
  first.push_back(patterns.size());
  const std::vector<Detection> d = patterns.empty() ? std::vector<Detection>{} : prober.detect(patterns);
  for (size_t i = 0; i < users.size(); ++i) {
    const Detection w =
        weakest({d.begin() + static_cast<ptrdiff_t>(first[i]), d.begin() + static_cast<ptrdiff_t>(first[i + 1])});
    c.users.push_back({users[i].name, w, w.rate >= c.tau});
  }
  return c;
}

namespace {

AccuracySpread spread_of(const std::vector<Detection>& d) {
  AccuracySpread s;
  s.count = static_cast<int>(d.size());
  for (const Detection& x : d) {
    s.mean += x.rate / static_cast<double>(d.size());
    s.max = std::max(s.max, x.rate);
  }
  return s;
}

// The minimum lift over the clean inputs' accuracy at which a lock pattern counts as unlocking.
double unlock_lift(int classes) {
  return 0.5 * (1.0 - 1.0 / classes);
}

}  // namespace

EmbeddingCheck check_lock(Prober& prober, const OwnerKey& key, const std::vector<std::string>& users,
                          const std::vector<std::string>& revoked) {
  const PatternSpec spec = lock_spec(prober.spec().H, prober.spec().W, prober.spec().channels, prober.num_classes());
  EmbeddingCheck c;
  c.tau = prober.config().tau;
  c.owner = verify_owner(prober, key);
  std::vector<Fingerprint> patterns;
  for (const std::string& u : users) patterns.push_back(lock_pattern(key, u, spec));
  for (const std::string& u : revoked) patterns.push_back(lock_pattern(key, u, spec));
  const std::vector<Detection> d = prober.accuracy(patterns, spec);
  const double clean = prober.clean_accuracy().rate;
  const auto unlocks = [&](size_t i) { return d[i].rate - clean >= unlock_lift(prober.num_classes()); };
  for (size_t i = 0; i < users.size(); ++i) c.users.push_back({users[i], d[i], unlocks(i)});
  for (size_t i = 0; i < revoked.size(); ++i) {
    const size_t k = users.size() + i;
    c.revoked.push_back({revoked[i], d[k], unlocks(k)});
  }
  return c;
}

std::string AccuracySpread::to_json() const {
  return nlohmann::json{{"count", count}, {"mean_accuracy", mean}, {"max_accuracy", max}}.dump();
}

LockAssessment assess_lock(Prober& prober, const OwnerKey& key, const std::vector<std::string>& users,
                           const std::vector<std::string>& revoked, const LockReportConfig& config) {
  ENSURE(config.forge_count >= 1, "--count must be at least 1, got %d", config.forge_count);
  ENSURE(!users.empty(), "a locked model's report needs at least one user whose pattern unlocks it");
  const PatternSpec spec = lock_spec(prober.spec().H, prober.spec().W, prober.spec().channels, prober.num_classes());
  LockAssessment a;
  const std::vector<int> ranks = prober.clean_ranks();
  a.unauthorized = top1(ranks);
  for (const int r : ranks) {
    a.unauthorized_second += (r == 1) / static_cast<double>(ranks.size());
    a.unauthorized_last += (r == prober.num_classes() - 1) / static_cast<double>(ranks.size());
  }

  std::vector<Fingerprint> own;
  for (const std::string& u : users) own.push_back(lock_pattern(key, u, spec));
  const std::vector<Detection> d = prober.accuracy(own, spec);
  a.min_authorized = 1;
  for (size_t i = 0; i < users.size(); ++i) {
    a.authorized.emplace_back(users[i], d[i]);
    a.min_authorized = std::min(a.min_authorized, d[i].rate);
    a.mean_authorized += d[i].rate / static_cast<double>(users.size());
  }

  std::optional<Rng> rng;
  if (config.forge_seed) rng.emplace(mix_seed(*config.forge_seed, 0x10cf0e));
  std::vector<Fingerprint> forged;
  for (int i = 0; i < config.forge_count; ++i) {
    forged.push_back(forged_lock_pattern(rng ? drawn_key_bytes(*rng) : OwnerKey::generate().bytes(), spec));
  }
  a.forged = spread_of(prober.accuracy(forged, spec));

  // Near misses: for k = 1 … 8 bits, config.near_misses patterns with k random bits flipped,
  // the users' patterns in turn; the choice is seeded by k, so a report repeats itself.
  std::vector<Fingerprint> near;
  for (int k = 1; k <= 8; ++k) {
    Rng pick(mix_seed(static_cast<uint64_t>(k), 0x4ea7));
    for (int i = 0; i < config.near_misses; ++i) {
      Fingerprint m = own[static_cast<size_t>(i) % own.size()];
      const std::vector<int32_t> order = pick.permutation(spec.bits());
      for (int b = 0; b < k; ++b) m.bits[static_cast<size_t>(order[static_cast<size_t>(b)])] ^= 1;
      near.push_back(m);
    }
  }
  const std::vector<Detection> nd = prober.accuracy(near, spec);
  const size_t per_k = static_cast<size_t>(config.near_misses);
  for (int k = 0; k < 8; ++k)
    a.near_miss.push_back(spread_of(
        {nd.begin() + static_cast<ptrdiff_t>(k * per_k), nd.begin() + static_cast<ptrdiff_t>((k + 1) * per_k)}));

  std::vector<Fingerprint> moved;
  for (const Fingerprint& f : own)
    for (int c = 1; c < 4; ++c) {
      Fingerprint m = f;
      m.corner = (f.corner + c) % 4;
      moved.push_back(m);
    }
  a.moved = spread_of(prober.accuracy(moved, spec));

  std::vector<Fingerprint> gone;
  for (const std::string& u : revoked) gone.push_back(lock_pattern(key, u, spec));
  a.revoked = spread_of(prober.accuracy(gone, spec));
  return a;
}

std::string LockAssessment::to_json() const {
  nlohmann::json per_user = nlohmann::json::array();
  for (const auto& [user, d] : authorized) per_user.push_back({{"user", user}, {"accuracy", d.rate}, {"n", d.n}});
  nlohmann::json near = nlohmann::json::array();
  for (size_t k = 0; k < near_miss.size(); ++k) {
    nlohmann::json j = nlohmann::json::parse(near_miss[k].to_json());
    j["flips"] = k + 1;
    near.push_back(j);
  }
  return nlohmann::json{
      {"authorized", {{"per_user", per_user}, {"min_accuracy", min_authorized}, {"mean_accuracy", mean_authorized}}},
      {"unauthorized_accuracy", unauthorized.rate},
      {"unauthorized_second", unauthorized_second},
      {"unauthorized_last", unauthorized_last},
      {"n", unauthorized.n},
      {"forged", nlohmann::json::parse(forged.to_json())},
      {"near_miss", near},
      {"moved", nlohmann::json::parse(moved.to_json())},
      {"revoked", nlohmann::json::parse(revoked.to_json())}}
      .dump();
}

void LockAssessment::print(std::FILE* out) const {
  std::fprintf(out, "lock (accuracy on %lld test images):\n", static_cast<long long>(unauthorized.n));
  std::fprintf(out, "  authorized (each user's lock pattern): min %.4f  mean %.4f over %zu users\n", min_authorized,
               mean_authorized, authorized.size());
  std::fprintf(out, "  unauthorized (clean inputs):           %.4f  (true class second %.4f, last %.4f)\n",
               unauthorized.rate, unauthorized_second, unauthorized_last);
  const auto line = [&](const std::string& what, const AccuracySpread& s) {
    if (s.count > 0) std::fprintf(out, "  %-38s mean %.4f  max %.4f  (%d)\n", what.c_str(), s.mean, s.max, s.count);
  };
  line("forged lock patterns:", forged);
  for (size_t k = 0; k < near_miss.size(); ++k) line(strfmt("near misses, %zu bits flipped:", k + 1), near_miss[k]);
  line("patterns at another corner:", moved);
  line("revoked users' patterns:", revoked);
}

}  // namespace activeip
