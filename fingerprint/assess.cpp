// The protection report shared by `report` and the attack commands.
#include "fingerprint/assess.h"

#include <algorithm>
#include <nlohmann/json.hpp>

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
}

void assess_protection(Assessment& a, Prober& prober, const OwnerKey& key, const Registry* registry,
                       const ModelContext& model, const AssessConfig& config) {
  a.owner = verify_model_owner(prober, key, model);
  if (!registry) return;
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
  return owner.verified && short_users().empty();
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
  nlohmann::json per = nlohmann::json::array();
  for (const PatternCheck& u : users)
    per.push_back({{"user", u.user},
                   {"target_label", u.detection.target},
                   {"detection_rate", u.detection.rate},
                   {"embedded", u.embedded}});
  const nlohmann::json j = {{"tau", tau},
                            {"complete", complete()},
                            {"owner",
                             {{"user", kOwnerName},
                              {"target_label", owner.detection.target},
                              {"detection_rate", owner.detection.rate},
                              {"p_value", owner.p_value},
                              {"embedded", owner.verified}}},
                            {"users", per}};
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

}  // namespace activeip
