// Probe sets, detection rates, owner verification with its binomial test, user
// authentication against the registry, and forged fingerprints.
#include "fingerprint/verify.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "engine/core/random.h"
#include "fingerprint/protect.h"
#include "fingerprint/token.h"

namespace activeip {

namespace {

nlohmann::json detection_json(const Detection& d) {
  return {{"detection_rate", d.rate}, {"mean_confidence", d.mean_confidence}, {"target_label", d.target}, {"n", d.n}};
}

}  // namespace

void validate(const ProbeConfig& c) {
  ENSURE(c.probes >= 1, "--probes must be at least 1, got %d", c.probes);
  ENSURE(c.tau > 0 && c.tau <= 1, "--tau must be in (0, 1], got %g", c.tau);
  ENSURE(c.batch >= 1, "--batch must be at least 1, got %d", c.batch);
}

Prober::Prober(Network& net, Context& ctx, const Dataset& test, const Normalization& norm, ProbeConfig config,
               const Scheme& scheme, int code_length)
    : net_(net),
      ctx_(ctx),
      test_(test),
      norm_(norm),
      config_(config),
      scheme_(scheme),
      spec_(scheme.spec(test.H, test.W, test.C, net.info().num_classes, code_length)) {
  validate(config_);
  ENSURE(test.size() >= 1, "the %s test split is empty: there is nothing to probe with", test.name.c_str());
  order_ = Rng(mix_seed(config_.seed, 0x9206e5)).permutation(static_cast<int32_t>(test.size()));
}

Prober Prober::with_scheme(const Scheme& scheme, int code_length) const {
  Prober p(net_, ctx_, test_, norm_, config_, scheme, code_length);
  p.preprocess_ = preprocess_;
  return p;
}

std::vector<int32_t> Prober::probes(int target) const {
  const int32_t* labels = test_.labels.data<int32_t>();
  std::vector<int32_t> out;
  for (int32_t i : order_) {
    if (static_cast<int>(out.size()) == config_.probes) break;
    if (labels[i] != target) out.push_back(i);
  }
  ENSURE(!out.empty(), "no test image has a label other than %d: there is no probe set", target);
  return out;
}

Tensor Prober::stamped_logits(const std::vector<Fingerprint>& patterns, const PatternSpec& spec,
                              const std::vector<int32_t>& rows, const std::vector<int32_t>& ids) {
  Stamper stamper(spec, norm_);
  stamper.set_patterns(ctx_, patterns);
  return predict(net_, ctx_, test_, norm_, rows, config_.batch, [&](Context& ctx, Tensor& x, int64_t first) {
    stamper.stamp(ctx, x, 0, ids.data() + first, x.dim(0));
    if (preprocess_) preprocess_(ctx, x, first);
  });
}

std::vector<Detection> Prober::detect(const std::vector<Fingerprint>& patterns) {
  std::vector<int32_t> rows, ids;
  std::vector<Detection> out(patterns.size());
  for (size_t p = 0; p < patterns.size(); ++p) {
    const std::vector<int32_t> probe = probes(patterns[p].label);
    rows.insert(rows.end(), probe.begin(), probe.end());
    ids.insert(ids.end(), probe.size(), static_cast<int32_t>(p));
    out[p].target = patterns[p].label;
    out[p].n = static_cast<int64_t>(probe.size());
  }
  const Tensor logits = stamped_logits(patterns, spec_, rows, ids);
  const int C = num_classes();
  const float* z = logits.data<float>();
  for (size_t r = 0; r < rows.size(); ++r) {
    Detection& d = out[static_cast<size_t>(ids[r])];
    const float* row = z + r * static_cast<size_t>(C);
    const float top = *std::max_element(row, row + C);
    double sum = 0;
    for (int c = 0; c < C; ++c) sum += std::exp(static_cast<double>(row[c] - top));
    d.mean_confidence += std::exp(static_cast<double>(row[d.target] - top)) / sum;
    // argmax with the first maximum winning, as torch.argmax does.
    if (std::max_element(row, row + C) - row == d.target) ++d.hits;
  }
  for (Detection& d : out) {
    d.rate = static_cast<double>(d.hits) / static_cast<double>(d.n);
    d.mean_confidence /= static_cast<double>(d.n);
  }
  return out;
}

std::vector<int32_t> Prober::any_probes() const {
  const size_t n = std::min(order_.size(), static_cast<size_t>(config_.probes));
  return {order_.begin(), order_.begin() + static_cast<ptrdiff_t>(n)};
}

std::vector<std::vector<int32_t>> Prober::answers(const std::vector<Fingerprint>& patterns) {
  const std::vector<int32_t> probe = any_probes();
  std::vector<int32_t> rows, ids;
  for (size_t p = 0; p < patterns.size(); ++p) {
    rows.insert(rows.end(), probe.begin(), probe.end());
    ids.insert(ids.end(), probe.size(), static_cast<int32_t>(p));
  }
  std::vector<std::vector<int32_t>> out(patterns.size());
  if (patterns.empty()) return out;
  const Tensor logits = stamped_logits(patterns, spec_, rows, ids);
  const int C = num_classes();
  for (size_t r = 0; r < rows.size(); ++r) {
    const float* row = logits.data<float>() + r * static_cast<size_t>(C);
    out[static_cast<size_t>(ids[r])].push_back(static_cast<int32_t>(std::max_element(row, row + C) - row));
  }
  return out;
}

Detection Prober::correct(const std::vector<int32_t>& rows, const float* logits, size_t first) const {
  const int C = num_classes();
  const int32_t* labels = test_labels();
  Detection d;
  d.target = -1;
  d.n = static_cast<int64_t>(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    const float* row = logits + (first + r) * static_cast<size_t>(C);
    if (std::max_element(row, row + C) - row == labels[rows[r]]) ++d.hits;
  }
  d.rate = d.n > 0 ? static_cast<double>(d.hits) / static_cast<double>(d.n) : 0;
  return d;
}

std::vector<Detection> Prober::accuracy(const std::vector<Fingerprint>& patterns, const PatternSpec& spec) {
  const std::vector<int32_t> probe = any_probes();
  std::vector<int32_t> rows, ids;
  for (size_t p = 0; p < patterns.size(); ++p) {
    rows.insert(rows.end(), probe.begin(), probe.end());
    ids.insert(ids.end(), probe.size(), static_cast<int32_t>(p));
  }
  std::vector<Detection> out;
  if (patterns.empty()) return out;
  const Tensor logits = stamped_logits(patterns, spec, rows, ids);
  for (size_t p = 0; p < patterns.size(); ++p) out.push_back(correct(probe, logits.data<float>(), p * probe.size()));
  return out;
}

Detection Prober::clean_accuracy() {
  return top1(clean_ranks());
}

Detection top1(const std::vector<int>& ranks) {
  Detection d;
  d.target = -1;
  d.n = static_cast<int64_t>(ranks.size());
  d.hits = std::count(ranks.begin(), ranks.end(), 0);
  d.rate = d.n > 0 ? static_cast<double>(d.hits) / static_cast<double>(d.n) : 0;
  return d;
}

std::vector<int> Prober::clean_ranks() {
  const std::vector<int32_t> probe = any_probes();
  const Tensor logits = predict(net_, ctx_, test_, norm_, probe, config_.batch, preprocess_);
  const int C = num_classes();
  std::vector<int> ranks;
  for (size_t r = 0; r < probe.size(); ++r) {
    const float* z = logits.data<float>() + r * static_cast<size_t>(C);
    const int y = test_labels()[probe[r]];
    int rank = 0;
    for (int c = 0; c < C; ++c) rank += z[c] > z[y] || (z[c] == z[y] && c < y);
    ranks.push_back(rank);
  }
  return ranks;
}

Detection Prober::clean(int target) {
  const std::vector<int32_t> rows = probes(target);
  const Tensor logits = predict(net_, ctx_, test_, norm_, rows, config_.batch, preprocess_);
  const int C = num_classes();
  Detection d;
  d.target = target;
  d.n = static_cast<int64_t>(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    const float* row = logits.data<float>() + r * static_cast<size_t>(C);
    if (std::max_element(row, row + C) - row == target) ++d.hits;
  }
  d.rate = static_cast<double>(d.hits) / static_cast<double>(d.n);
  return d;
}

double binomial_tail_log10(int64_t k, int64_t n, double p) {
  ENSURE(n >= 0 && p >= 0 && p <= 1, "binomial tail of n=%lld, p=%g", static_cast<long long>(n), p);
  if (k <= 0) return 0;
  if (k > n) return -INFINITY;
  if (p <= 0) return -INFINITY;
  if (p >= 1) return 0;
  // log P(X = i) = lgamma(n+1) − lgamma(i+1) − lgamma(n−i+1) + i log p + (n−i) log(1−p),
  // summed from k to n with the largest term factored out.
  std::vector<double> terms;
  for (int64_t i = k; i <= n; ++i)
    terms.push_back(std::lgamma(double(n) + 1) - std::lgamma(double(i) + 1) - std::lgamma(double(n - i) + 1) +
                    double(i) * std::log(p) + double(n - i) * std::log1p(-p));
  const double top = *std::max_element(terms.begin(), terms.end());
  double sum = 0;
  for (double t : terms) sum += std::exp(t - top);
  return std::min(0.0, (top + std::log(sum)) / std::log(10.0));
}

std::string OwnerVerification::to_json() const {
  nlohmann::json j = detection_json(detection);
  j["verified"] = verified;
  j["p_value"] = p_value;
  j["log10_p_value"] = std::isfinite(log10_p) ? nlohmann::json(log10_p) : nlohmann::json(nullptr);
  j["p0"] = p0;
  j["scheme"] = scheme;
  if (tests > 1) j["schemes_tried"] = tests;
  return j.dump();
}

Detection weakest(const std::vector<Detection>& d) {
  ENSURE(!d.empty(), "no detections to choose the weakest of");
  return *std::min_element(d.begin(), d.end(), [](const Detection& a, const Detection& b) { return a.rate < b.rate; });
}

OwnerVerification verify_owner(Prober& prober, const OwnerKey& key) {
  const std::vector<Fingerprint> owner = prober.scheme().owner_patterns(key, prober.spec());
  ENSURE(!owner.empty(), "fingerprint scheme %s gives the owner no trigger", prober.scheme().version().c_str());
  const std::vector<Detection> detections = prober.detect(owner);
  std::optional<OwnerVerification> worst;
  for (const Detection& d : detections) {
    OwnerVerification v;
    v.detection = d;
    const Detection base = prober.clean(d.target);
    v.p0 = std::max(1.0 / prober.num_classes(), base.rate);
    v.log10_p = binomial_tail_log10(v.detection.hits, v.detection.n, v.p0);
    v.p_value = std::pow(10.0, v.log10_p);
    v.verified = v.detection.rate >= prober.config().tau && v.log10_p < std::log10(kOwnerPValue);
    const auto rank = [](const OwnerVerification& x) { return std::make_pair(x.verified, -x.log10_p); };
    if (!worst || rank(v) < rank(*worst)) worst = v;
  }
  worst->scheme = prober.scheme().version();
  return *worst;
}

OwnerVerification verify_owner_any_scheme(const Prober& prober, const OwnerKey& key) {
  const std::vector<std::string> versions = scheme_versions();
  std::optional<OwnerVerification> best;
  for (const std::string& v : versions) {
    // The owner's trigger does not depend on the users' codes: any length the scheme takes.
    const Scheme& scheme = scheme_for(v);
    Prober sibling = prober.with_scheme(scheme, scheme.code_length(prober.num_classes(), 0));
    const OwnerVerification o = verify_owner(sibling, key);
    if (!best || o.log10_p < best->log10_p) best = o;
  }
  best->tests = static_cast<int>(versions.size());
  best->log10_p = std::min(0.0, best->log10_p + std::log10(static_cast<double>(best->tests)));
  best->p_value = std::pow(10.0, best->log10_p);
  best->verified = best->detection.rate >= prober.config().tau && best->log10_p < std::log10(kOwnerPValue);
  return *best;
}

OwnerVerification verify_model_owner(Prober& prober, const OwnerKey& key, const ModelContext& model) {
  return model.scheme.empty() ? verify_owner_any_scheme(prober, key) : verify_owner(prober, key);
}

std::string AuthResult::to_json() const {
  nlohmann::json j = detection_json(detection);
  j["user"] = user;
  j["authenticated"] = authenticated;
  j["status"] = status;
  if (!reason.empty()) j["reason"] = reason;
  return j.dump();
}

AuthResult authenticate(Prober& prober, const OwnerKey& key, const Registry& registry, const ModelContext& model,
                        const std::string& user) {
  AuthResult r;
  r.user = user;
  check_user_name(user);
  const std::optional<UserRecord> record = registry.user(user);
  r.status = record ? record->status : "unregistered";
  const Identity who = identity(registry, user);
  if (record || prober.spec().code_length == 1)
    r.detection = weakest(prober.detect(prober.scheme().patterns(key, who, prober.spec())));
  const std::optional<ModelRecord> m = registry.model(model.id);
  const std::string model_key = m ? m->key_id : model.key_id;
  if (!record) {
    r.reason = strfmt("user '%s' is not registered in %s", user.c_str(), registry.path().c_str());
  } else if (record->status != "active") {
    r.reason = strfmt("user '%s' is %s", user.c_str(), record->status.c_str());
  } else if (!model_key.empty() && model_key != key.id()) {
    r.reason = strfmt("the key (id %s) is not this model's key (id %s)", key.id().c_str(), model_key.c_str());
  } else if (!m) {
    r.reason = strfmt("this model (id %.16s…) is not recorded in %s", model.id.c_str(), registry.path().c_str());
  } else if (const std::optional<EmbeddingRecord> e = registry.embedding(model.id, user); !e) {
    r.reason = strfmt("user '%s' is not embedded in this model", user.c_str());
  } else if (!e->embedded) {
    r.reason = strfmt("user '%s' is not embedded in this model (detection %.3f at the end of training)", user.c_str(),
                      e->detection.value_or(0.0));
  } else if (r.detection.rate < prober.config().tau) {
    r.reason = strfmt("the model answers the fingerprint of '%s' with detection %.3f, below τ = %g", user.c_str(),
                      r.detection.rate, prober.config().tau);
  }
  r.authenticated = r.reason.empty();
  return r;
}

std::string InsiderResult::to_json() const {
  const nlohmann::json j = {{"users", users},        {"variants", variants}, {"max_shift", max_shift},
                            {"claims", claims},      {"passed", passed},     {"max_detection", max_detection},
                            {"strongest", strongest}};
  return j.dump();
}

InsiderResult insiders(Prober& prober, const std::vector<std::vector<Fingerprint>>& users, int max_shift) {
  ENSURE(users.size() >= 2, "insiders need at least 2 users, got %zu", users.size());
  ENSURE(max_shift >= 0, "a largest shift of %d pixels", max_shift);
  // A shift past the margin would leave the image: v1's patterns sit 1 pixel from the edges.
  max_shift = std::min(max_shift, prober.spec().margin);
  // The forms a user can present its own patterns in, each a change of every pattern.
  std::vector<std::pair<std::string, std::function<Fingerprint(const Fingerprint&)>>> forms = {
      {"as issued", [](const Fingerprint& f) { return f; }},
      {"flipped", [&](const Fingerprint& f) { return mirrored(f, prober.spec()); }}};
  for (int k = 1; k <= 3; ++k)
    forms.emplace_back(strfmt("corner +%d", k), [k](Fingerprint f) {
      f.corner = (f.corner + k) % 4;
      return f;
    });
  for (int s = 1; s <= max_shift; ++s)
    for (const auto& [name, dy, dx] : std::vector<std::tuple<const char*, int, int>>{
             {"down", s, 0}, {"up", -s, 0}, {"right", 0, s}, {"left", 0, -s}}) {
      forms.emplace_back(strfmt("shifted %s %d", name, s), [dy = dy, dx = dx](Fingerprint f) {
        f.dy += dy;
        f.dx += dx;
        return f;
      });
    }
  const std::vector<int32_t> probe = prober.any_probes();
  const int32_t* labels = prober.test_labels();
  InsiderResult r;
  r.users = static_cast<int>(users.size());
  r.variants = static_cast<int>(forms.size());
  r.max_shift = max_shift;
  for (size_t u = 0; u < users.size(); ++u)
    for (const auto& [form, change] : forms) {
      std::vector<Fingerprint> shown;
      for (const Fingerprint& f : users[u]) shown.push_back(change(f));
      const std::vector<std::vector<int32_t>> answer = prober.answers(shown);
      for (size_t v = 0; v < users.size(); ++v) {
        if (v == u) continue;
        ENSURE(users[v].size() == shown.size(), "users with %zu and %zu patterns", users[v].size(), shown.size());
        double weakest_rate = 1;
        for (size_t j = 0; j < shown.size(); ++j) {
          const int target = users[v][j].label;
          int64_t n = 0, hits = 0;
          for (size_t i = 0; i < probe.size(); ++i) {
            if (labels[probe[i]] == target) continue;
            ++n;
            hits += answer[j][i] == target;
          }
          weakest_rate = std::min(weakest_rate, n ? static_cast<double>(hits) / static_cast<double>(n) : 0.0);
        }
        ++r.claims;
        r.passed += weakest_rate >= prober.config().tau;
        if (r.strongest.empty() || weakest_rate > r.max_detection) {
          r.max_detection = weakest_rate;
          r.strongest =
              strfmt("%s as %s (%s)", users[u].front().name.c_str(), users[v].front().name.c_str(), form.c_str());
        }
      }
    }
  return r;
}

namespace {

// The token's part for the recorded model `m`: its own, else that of the nearest model it
// derives from whose patterns are drawn as m's are (same scheme, same code length).
const TokenModel* token_part(const UserToken& token, const Registry& registry, const ModelRecord& m) {
  if (const TokenModel* own = token.model(m.id)) return own;
  std::set<std::string> seen = {m.id};
  std::optional<ModelRecord> at = m.parent.empty() ? std::nullopt : registry.model(m.parent);
  while (at && seen.insert(at->id).second) {
    const TokenModel* part = token.model(at->id);
    if (part && part->scheme == m.scheme && part->code_length == m.code_length) return part;
    at = at->parent.empty() ? std::nullopt : registry.model(at->parent);
  }
  return nullptr;
}

}  // namespace

AuthResult authenticate_token(Prober& prober, const UserToken& token, const std::string& token_path,
                              const Registry& registry, const ModelContext& model, const std::string& user) {
  AuthResult r;
  r.user = user;
  check_user_name(user);
  const std::optional<UserRecord> record = registry.user(user);
  r.status = record ? record->status : "unregistered";
  const std::optional<ModelRecord> m = registry.model(model.id);
  const std::string model_key = m ? m->key_id : model.key_id;
  ENSURE(model_key.empty() || token.key_id == model_key,
         "token %s was issued under another key (id %s) than this model's (id %s): it is not a token of this model's "
         "owner",
         token_path.c_str(), token.key_id.c_str(), model_key.c_str());
  const TokenModel* part = m ? token_part(token, registry, *m) : nullptr;
  const PatternSpec& spec = prober.spec();

  // What `user`'s patterns must be answered with: the registry's code of `user`, under the
  // model's scheme and code length as the registry records them.
  std::vector<int> labels;
  std::string label_problem;
  if (record && m) {
    try {
      const Scheme& scheme = scheme_for(m->scheme);
      labels = scheme.code_labels(record->code,
                                  scheme.spec(spec.H, spec.W, spec.channels, prober.num_classes(), m->code_length));
      if (labels.empty())
        label_problem = strfmt(
            "this model was trained under fingerprint scheme %s, whose labels follow from the owner key: a token "
            "cannot be checked without it (the owner can: auth --key)",
            m->scheme.c_str());
    } catch (const Error& e) {
      label_problem = e.what();
    }
  }
  std::string geometry_problem;
  if (part &&
      (part->H != spec.H || part->W != spec.W || part->C != spec.channels || part->classes != prober.num_classes()))
    geometry_problem =
        strfmt("token %s is for %d×%d×%d images and %d classes, this model takes %d×%d×%d and %d", token_path.c_str(),
               part->H, part->W, part->C, part->classes, spec.H, spec.W, spec.channels, prober.num_classes());
  else if (part && m && (part->scheme != m->scheme || part->code_length != m->code_length))
    geometry_problem = strfmt(
        "token %s has patterns of scheme %s, code length %d for this model, the registry records "
        "scheme %s, code length %d",
        token_path.c_str(), part->scheme.c_str(), part->code_length, m->scheme.c_str(), m->code_length);

  if (part && !labels.empty() && geometry_problem.empty()) {
    // The token's patterns, where it says, each asked for the claimed user's label.
    std::vector<Fingerprint> claim = part->patterns;
    for (size_t j = 0; j < claim.size(); ++j) claim[j].label = labels[j];
    Prober under = prober.with_scheme(scheme_for(m->scheme), m->code_length);
    r.detection = weakest(under.detect(claim));
  }

  if (!record) {
    r.reason = strfmt("user '%s' is not registered in %s", user.c_str(), registry.path().c_str());
  } else if (record->status != "active") {
    r.reason = strfmt("user '%s' is %s", user.c_str(), record->status.c_str());
  } else if (!m) {
    r.reason = strfmt("this model (id %.16s…) is not recorded in %s", model.id.c_str(), registry.path().c_str());
  } else if (!label_problem.empty()) {
    r.reason = label_problem;
  } else if (!part) {
    r.reason = strfmt("token %s holds no patterns for this model (id %.16s…); it holds them for %zu other model%s",
                      token_path.c_str(), model.id.c_str(), token.models.size(), token.models.size() == 1 ? "" : "s");
  } else if (!geometry_problem.empty()) {
    r.reason = geometry_problem;
  } else if (const std::optional<EmbeddingRecord> e = registry.embedding(model.id, user); !e) {
    r.reason = strfmt("user '%s' is not embedded in this model", user.c_str());
  } else if (!e->embedded) {
    r.reason = strfmt("user '%s' is not embedded in this model (detection %.3f at the end of training)", user.c_str(),
                      e->detection.value_or(0.0));
  } else if (token.user != user) {
    r.reason = strfmt("token %s was issued to '%s', not to '%s'", token_path.c_str(), token.user.c_str(), user.c_str());
  } else if (r.detection.rate < prober.config().tau) {
    r.reason =
        strfmt("the model answers the patterns of token %s with detection %.3f on the code of '%s', below τ = %g",
               token_path.c_str(), r.detection.rate, user.c_str(), prober.config().tau);
  }
  r.authenticated = r.reason.empty();
  return r;
}

std::string ForgeResult::to_json() const {
  const nlohmann::json j = {{"count", count},
                            {"passed", passed},
                            {"pass_rate", pass_rate},
                            {"mean_detection", mean_detection},
                            {"max_detection", max_detection},
                            {"max_pattern_detection", max_pattern_detection}};
  return j.dump();
}

ForgeResult forge(Prober& prober, const std::vector<std::vector<Fingerprint>>& claimed, int count,
                  std::optional<uint64_t> seed) {
  ENSURE(count >= 1, "--count must be at least 1, got %d", count);
  ENSURE(!claimed.empty(), "forging needs at least one registered user to claim to be");
  std::optional<Rng> rng;
  if (seed) rng.emplace(mix_seed(*seed, 0xf0f6e));
  std::vector<Fingerprint> forged;
  std::vector<size_t> first;  // forgery i's patterns: forged[first[i], first[i + 1])
  for (int i = 0; i < count; ++i) {
    std::array<uint8_t, OwnerKey::kBytes> bytes{};
    size_t pick = 0;
    if (rng) {
      bytes = drawn_key_bytes(*rng);
      pick = rng->below(claimed.size());
    } else {
      bytes = OwnerKey::generate().bytes();
      // The claim needs no secrecy: a seeded stream from fresh random bits picks it.
      uint64_t r = 0;
      std::memcpy(&r, OwnerKey::generate().bytes().data(), sizeof r);
      pick = Rng(r).below(claimed.size());
    }
    // The claim: the patterns carry the labels of the user the forger pretends to be.
    const std::vector<Fingerprint> f = prober.scheme().forged(bytes, claimed[pick], prober.spec());
    first.push_back(forged.size());
    forged.insert(forged.end(), f.begin(), f.end());
  }
  first.push_back(forged.size());
  const std::vector<Detection> d = prober.detect(forged);
  ForgeResult r;
  r.count = count;
  for (int i = 0; i < count; ++i) {
    const auto begin = d.begin() + static_cast<ptrdiff_t>(first[static_cast<size_t>(i)]);
    const auto end = d.begin() + static_cast<ptrdiff_t>(first[static_cast<size_t>(i) + 1]);
    const double rate = weakest({begin, end}).rate;
    r.passed += rate >= prober.config().tau;
    r.mean_detection += rate;
    r.max_detection = std::max(r.max_detection, rate);
    for (auto x = begin; x != end; ++x) r.max_pattern_detection = std::max(r.max_pattern_detection, x->rate);
  }
  r.pass_rate = static_cast<double>(r.passed) / count;
  r.mean_detection /= count;
  return r;
}

}  // namespace activeip
