// The owner's commands: key new; users add|list|show|revoke|log|token on the registry; verify
// (ownership), auth (one user: the owner's audit with the key, or a user presenting a token),
// forge (forged fingerprints), report (all of it, and the accuracy drop against a baseline
// when one is given). With --json each evaluating command prints exactly one JSON object.
// auth and verify exit 1 when the user is refused or the owner not verified, so scripts can
// test them.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/commands.h"
#include "engine/train/trainer.h"
#include "fingerprint/assess.h"
#include "fingerprint/token.h"
#include "fingerprint/verify.h"
#include "nets/model_io.h"

namespace activeip::cli {

namespace {

struct KeyOptions {
  std::string out;
};

int run_key_new(const KeyOptions& o) {
  const OwnerKey key = OwnerKey::generate();
  key.save(o.out);
  std::printf("wrote %s (key id %s, mode 0600): keep it secret; models record only its id\n", o.out.c_str(),
              key.id().c_str());
  return 0;
}

struct UsersOptions {
  std::string registry;
  std::vector<std::string> names;
  bool json = false;
};

// models: the ids of the models the user is embedded in; embeddings: every model the user was
// trained into, with the detection measured at the end of training (null before it was
// measured) and whether it reached τ.
nlohmann::json user_json(const Registry& r, const UserRecord& u) {
  nlohmann::json embeddings = nlohmann::json::array();
  for (const auto& [model, e] : r.embeddings_of(u.name))
    embeddings.push_back({{"model", model},
                          {"embedded", e.embedded},
                          {"detection", e.detection ? nlohmann::json(*e.detection) : nlohmann::json()}});
  return {{"name", u.name},
          {"status", u.status},
          {"created", u.created},
          {"code", u.code},
          {"models", r.models_of(u.name)},
          {"embeddings", embeddings}};
}

int run_users_add(const UsersOptions& o) {
  as_usage([&] {
    for (const std::string& n : o.names) check_user_name(n);
  });
  Registry r = Registry::open(o.registry, true);
  r.add_users(o.names);
  for (const std::string& n : o.names)
    std::printf("added %s (code %lld)\n", n.c_str(), static_cast<long long>(r.user(n)->code));
  return 0;
}

int run_users_revoke(const UsersOptions& o) {
  Registry r = Registry::open(o.registry, false);
  r.revoke_users(o.names);
  for (const std::string& n : o.names) std::printf("revoked %s\n", n.c_str());
  return 0;
}

int run_users_list(const UsersOptions& o) {
  const Registry r = Registry::open(o.registry, false);
  const std::vector<UserRecord> users = r.users();
  if (o.json) {
    nlohmann::json j = {{"registry", o.registry}, {"users", nlohmann::json::array()}};
    for (const UserRecord& u : users) j["users"].push_back(user_json(r, u));
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("%-24s %-8s %-6s %-20s %s\n", "user", "status", "code", "created", "models");
  for (const UserRecord& u : users)
    std::printf("%-24s %-8s %-6lld %-20s %zu\n", u.name.c_str(), u.status.c_str(), static_cast<long long>(u.code),
                u.created.c_str(), r.models_of(u.name).size());
  return 0;
}

int run_users_show(const UsersOptions& o) {
  const Registry r = Registry::open(o.registry, false);
  nlohmann::json all = nlohmann::json::array();
  for (const std::string& n : o.names) {
    const std::optional<UserRecord> u = r.user(n);
    ENSURE(u.has_value(), "no user '%s' in %s", n.c_str(), o.registry.c_str());
    all.push_back(user_json(r, *u));
  }
  if (o.json) {
    std::printf("%s\n", (all.size() == 1 ? all[0] : nlohmann::json{{"users", all}}).dump().c_str());
    return 0;
  }
  for (const auto& u : all) {
    std::printf("user     %s\nstatus   %s\ncode     %lld\ncreated  %s\nmodels  ", u["name"].get<std::string>().c_str(),
                u["status"].get<std::string>().c_str(), static_cast<long long>(u["code"].get<int64_t>()),
                u["created"].get<std::string>().c_str());
    if (u["models"].empty()) std::printf(" (none)");
    for (const auto& m : u["models"]) std::printf(" %s", m.get<std::string>().c_str());
    std::printf("\n");
    for (const auto& e : u["embeddings"])
      if (!e["embedded"].get<bool>())
        std::printf("         %s: not embedded in this model (detection %.3f at the end of training)\n",
                    e["model"].get<std::string>().c_str(),
                    e["detection"].is_null() ? 0.0 : e["detection"].get<double>());
  }
  return 0;
}

struct TokenOptions {
  std::string registry, key, user, out;
};

int run_users_token(const TokenOptions& o) {
  as_usage([&] { check_user_name(o.user); });
  const OwnerKey key = OwnerKey::load(o.key);
  const Registry r = Registry::open(o.registry, false);
  const UserToken token = issue_token(r, key, o.user);
  token.save(o.out);
  std::printf("wrote %s for %s (code %lld, key id %s, mode 0600): patterns for %zu model%s; it holds no key\n",
              o.out.c_str(), token.user.c_str(), static_cast<long long>(token.code), token.key_id.c_str(),
              token.models.size(), token.models.size() == 1 ? "" : "s");
  for (const TokenModel& m : token.models)
    std::printf("  %s  %s on %s, scheme %s, %s\n", m.id.c_str(), m.net.c_str(), m.dataset.c_str(), m.scheme.c_str(),
                m.lock ? "locked: the lock pattern"
                       : strfmt("%d pattern%s", m.code_length, m.code_length == 1 ? "" : "s").c_str());
  return 0;
}

int run_users_log(const UsersOptions& o) {
  const Registry r = Registry::open(o.registry, false);
  const std::vector<EventRecord> events = r.events();
  if (o.json) {
    nlohmann::json j = {{"registry", o.registry}, {"events", nlohmann::json::array()}};
    for (const EventRecord& e : events)
      j["events"].push_back(
          {{"id", e.id}, {"time", e.time}, {"kind", e.kind}, {"subject", e.subject}, {"detail", e.detail}});
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  for (const EventRecord& e : events)
    std::printf("%5lld  %s  %-12s %s%s%s\n", static_cast<long long>(e.id), e.time.c_str(), e.kind.c_str(),
                e.subject.c_str(), e.detail.empty() ? "" : "  ", e.detail.c_str());
  return 0;
}

// What verify, auth, forge and report share: the model, the key, the data, the probes.
struct ProbeOptions {
  std::string model, key, registry;
  DataOptions data;
  DeviceOptions device;
  ProbeConfig probe;
  bool json = false;

  // key_required = false: --key is optional (auth, which takes --token instead).
  void add_to(CLI::App* cmd, bool with_registry, bool key_required = true) {
    cmd->add_option("--model", model, "Checkpoint (.safetensors)")->required();
    if (key_required)
      cmd->add_option("--key", key, "Owner key file (mode 0600)")->required();
    else
      cmd->add_option("--key", key, "Owner key file (mode 0600): the owner's audit (a user presents --token instead)");
    if (with_registry) cmd->add_option("--registry", registry, "User registry (SQLite)")->required();
    data.add_to(cmd, false);
    cmd->add_option("--limit-test", data.limit_test, "Use only the first N test records")->check(positive_number());
    cmd->add_option("--probes", probe.probes, "Probe images per target")
        ->capture_default_str()
        ->check(number_in(1, 1e6));
    cmd->add_option("--probe-seed", probe.seed, "Seed of the probe set")->capture_default_str();
    cmd->add_option("--tau", probe.tau, "Detection threshold")->capture_default_str()->check(number_in(1e-9, 1));
    cmd->add_option("--batch", probe.batch, "Inference batch size")
        ->capture_default_str()
        ->check(number_in(1, 1 << 16));
    device.add_to(cmd);
    cmd->add_flag("--json", json, "Print one JSON object");
  }
};

// A model loaded for probing, with its test split and what the file says of its protection.
struct Probed {
  Context ctx;
  LoadedModel m;
  ModelContext info;
  DataSplits data;
  std::optional<OwnerKey> key;  // absent when no --key was given (auth --token)
  std::unique_ptr<Prober> prober;

  // registry: where the users' codes come from (null for the owner's verification alone).
  Probed(const ProbeOptions& o, Device device, const Registry* registry) : ctx(device, o.device.threads) {
    if (!o.key.empty()) key = OwnerKey::load(o.key);
    o.device.configure(ctx);
    m = load_model(o.model, ctx);
    info = model_context(SafetensorsReader(o.model), m.meta);
    data = load_test_split(m.meta, o.model, o.data.spec());
    prober = std::make_unique<Prober>(*m.net, ctx, data.test, m.meta.norm, o.probe, model_scheme(info),
                                      model_code_length(info, registry, m.net->info().num_classes));
  }
};

std::unique_ptr<Probed> open_probed(const ProbeOptions& o, const Registry* registry) {
  const Device device = o.device.parsed();
  return std::make_unique<Probed>(o, device, registry);
}

int run_verify(const ProbeOptions& o) {
  auto p = open_probed(o, nullptr);
  OwnerVerification v = verify_model_owner(*p->prober, *p->key, p->info);
  std::string reason;
  if (!p->info.key_id.empty() && p->info.key_id != p->key->id()) {
    reason = strfmt("the key (id %s) is not the key of %s (id %s)", p->key->id().c_str(), o.model.c_str(),
                    p->info.key_id.c_str());
    v.verified = false;
  } else if (!v.verified) {
    reason = strfmt("detection %.3f with p = %.3g: the model does not answer this key's trigger", v.detection.rate,
                    v.p_value);
  }
  if (o.json) {
    nlohmann::json j = nlohmann::json::parse(v.to_json());
    if (!reason.empty()) j["reason"] = reason;
    j["device"] = p->ctx.device().str();
    j["threads"] = p->ctx.threads();
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf(
        "owner %s: trigger detection %.3f (%lld/%lld probes) -> label %d, mean confidence %.3f, p = %.3g "
        "(log10 %.1f, p0 %.3f)\n",
        v.verified ? "VERIFIED" : "NOT verified", v.detection.rate, static_cast<long long>(v.detection.hits),
        static_cast<long long>(v.detection.n), v.detection.target, v.detection.mean_confidence, v.p_value, v.log10_p,
        v.p0);
    if (!reason.empty()) std::printf("  %s\n", reason.c_str());
  }
  return v.verified ? 0 : 1;
}

struct AuthOptions {
  ProbeOptions p;
  std::string user, token;
};

// With --key: the owner's audit of a user. With --token: the token's presenter claims to be
// --user, and the model and the registry alone decide.
int run_auth(const AuthOptions& o) {
  as_usage([&] { check_user_name(o.user); });
  if (o.p.key.empty() && o.token.empty())
    throw UsageError("auth needs --key (the owner's audit of a user) or --token (a user presenting a token)");
  if (!o.p.key.empty() && !o.token.empty())
    throw UsageError("--key and --token exclude each other: the owner audits with the key, a user presents a token");
  std::optional<UserToken> token;
  if (!o.token.empty()) token = UserToken::load(o.token);
  const Registry registry = Registry::open(o.p.registry, false);
  auto p = open_probed(o.p, &registry);
  const AuthResult r = token ? authenticate_token(*p->prober, *token, o.token, registry, p->info, o.user)
                             : authenticate(*p->prober, *p->key, registry, p->info, o.user);
  if (o.p.json) {
    nlohmann::json j = nlohmann::json::parse(r.to_json());
    if (token) {
      j["token"] = o.token;
      j["presented_by"] = token->user;
    }
    std::printf("%s\n", j.dump().c_str());
  } else if (r.authenticated) {
    std::printf("%s: AUTHENTICATED (detection %.3f -> label %d, %s)\n", r.user.c_str(), r.detection.rate,
                r.detection.target, r.status.c_str());
  } else {
    std::printf("%s: REFUSED: %s (detection %.3f)\n", r.user.c_str(), r.reason.c_str(), r.detection.rate);
  }
  return r.authenticated ? 0 : 1;
}

struct ForgeOptions {
  ProbeOptions p;
  int count = 1000;
  std::optional<uint64_t> seed;
};

std::vector<std::vector<Fingerprint>> claimable(const Probed& p, const Registry& registry) {
  return claimable_fingerprints(*p.prober, *p.key, registry, embedded_users(&registry, p.info));
}

int run_forge(const ForgeOptions& o) {
  const Registry registry = Registry::open(o.p.registry, false);
  auto p = open_probed(o.p, &registry);
  check_model_key(p->info, *p->key, o.p.model);
  const ForgeResult r = forge(*p->prober, claimable(*p, registry), o.count, o.seed);
  if (o.p.json) {
    std::printf("%s\n", r.to_json().c_str());
  } else {
    std::printf("forged fingerprints: %d of %d passed (pass rate %.4f), detection mean %.4f, max %.4f (tau %g)\n",
                r.passed, r.count, r.pass_rate, r.mean_detection, r.max_detection, o.p.probe.tau);
  }
  return 0;
}

struct ReportOptions {
  ForgeOptions f;
  std::string baseline;
  bool insiders = false;
};

int run_report(const ReportOptions& o) {
  const ProbeOptions& po = o.f.p;
  const Registry registry = Registry::open(po.registry, false);
  auto p = open_probed(po, &registry);
  check_model_key(p->info, *p->key, po.model);
  Assessment a;
  a.clean_accuracy = evaluate(*p->m.net, p->ctx, p->data.test, p->m.meta.norm, po.probe.batch).accuracy;
  if (!o.baseline.empty()) {  // without one, everything but the drop
    LoadedModel base = load_model(o.baseline, p->ctx);
    a.reference_accuracy = evaluate(*base.net, p->ctx, p->data.test, base.meta.norm, po.probe.batch).accuracy;
  }
  AssessConfig assess;
  assess.forge_count = o.f.count;
  assess.forge_seed = o.f.seed;
  assess.insiders = o.insiders;
  assess_protection(a, *p->prober, *p->key, &registry, p->info, assess);
  if (po.json) {
    const nlohmann::json baseline = o.baseline.empty() ? nlohmann::json() : nlohmann::json(o.baseline);
    nlohmann::json j = {{"model", po.model},
                        {"baseline", baseline},
                        {"dataset", po.data.name},
                        {"net", p->m.meta.net},
                        {"probes", po.probe.probes},
                        {"tau", po.probe.tau},
                        {"device", p->ctx.device().str()},
                        {"threads", p->ctx.threads()}};
    j.update(nlohmann::json::parse(a.to_json()));
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("%-34s %s\n", "model", po.model.c_str());
  a.print(stdout);
  return 0;
}

void add_forge_options(CLI::App* cmd, ForgeOptions& f) {
  cmd->add_option("--count", f.count, "Forged fingerprints")->capture_default_str()->check(number_in(1, 1e7));
  cmd->add_option("--forge-seed", f.seed, "Seed of the forged keys (default: fresh random keys)");
}

}  // namespace

void add_fingerprint(CLI::App& app, Handler& handler) {
  CLI::App* key = app.add_subcommand("key", "Owner keys");
  key->require_subcommand(1);
  auto k = std::make_shared<KeyOptions>();
  CLI::App* key_new = key->add_subcommand("new", "Create an owner key (32 random bytes, hex, mode 0600)");
  key_new->add_option("--out", k->out, "Key file to create (never overwritten)")->required();
  key_new->callback([k, &handler] { handler = [k] { return run_key_new(*k); }; });

  CLI::App* users = app.add_subcommand("users", "The user registry (SQLite)");
  users->require_subcommand(1);
  struct Verb {
    const char* name;
    const char* help;
    int (*run)(const UsersOptions&);
    bool names_required;
  };
  const Verb verbs[] = {{"add", "Register users (creates the registry if needed)", run_users_add, true},
                        {"list", "List the users", run_users_list, false},
                        {"show", "Show users and the models they are embedded in", run_users_show, true},
                        {"revoke", "Revoke users (they stop authenticating)", run_users_revoke, true},
                        {"log", "The registry's audit log (append-only)", run_users_log, false}};
  for (const Verb& v : verbs) {
    auto o = std::make_shared<UsersOptions>();
    CLI::App* cmd = users->add_subcommand(v.name, v.help);
    cmd->add_option("--registry", o->registry, "User registry (SQLite)")->required();
    if (v.names_required) cmd->add_option("names", o->names, "User names")->required();
    const std::string name = v.name;
    if (name == "list" || name == "show" || name == "log") cmd->add_flag("--json", o->json, "Print JSON");
    cmd->callback([o, run = v.run, &handler] { handler = [o, run] { return run(*o); }; });
  }
  auto t = std::make_shared<TokenOptions>();
  CLI::App* token = users->add_subcommand(
      "token", "Write a user's token: their patterns for every model they are embedded in (never the key)");
  token->add_option("--registry", t->registry, "User registry (SQLite)")->required();
  token->add_option("--key", t->key, "Owner key file (mode 0600)")->required();
  token->add_option("--user", t->user, "User name")->required();
  token->add_option("--out", t->out, "Token file to create (mode 0600, never overwritten)")->required();
  token->callback([t, &handler] { handler = [t] { return run_users_token(*t); }; });

  auto v = std::make_shared<ProbeOptions>();
  CLI::App* verify = app.add_subcommand("verify", "Owner verification: does the model answer the owner's trigger?");
  v->add_to(verify, false);
  verify->callback([v, &handler] { handler = [v] { return run_verify(*v); }; });

  auto a = std::make_shared<AuthOptions>();
  CLI::App* auth = app.add_subcommand(
      "auth", "Authenticate a user through the model: the owner's audit (--key) or a user's token (--token)");
  a->p.add_to(auth, true, false);
  auth->add_option("--user", a->user, "User name")->required();
  auth->add_option("--token", a->token, "The token the user presents (users token): no owner key needed");
  auth->callback([a, &handler] { handler = [a] { return run_auth(*a); }; });

  auto f = std::make_shared<ForgeOptions>();
  CLI::App* forge_cmd = app.add_subcommand("forge", "Present forged fingerprints as registered users");
  f->p.add_to(forge_cmd, true);
  add_forge_options(forge_cmd, *f);
  forge_cmd->callback([f, &handler] { handler = [f] { return run_forge(*f); }; });

  auto r = std::make_shared<ReportOptions>();
  CLI::App* report = app.add_subcommand("report", "Accuracy drop, owner verification, users and forged fingerprints");
  r->f.p.add_to(report, true);
  report->add_option("--baseline", r->baseline,
                     "The same net trained without protection (without it: no accuracy drop is reported)");
  add_forge_options(report, r->f);
  report->add_flag("--insiders", r->insiders,
                   "Also present every user's patterns as every other user: as issued, flipped, at the other corners "
                   "and shifted by 1-4 pixels");
  report->callback([r, &handler] { handler = [r] { return run_report(*r); }; });
}

}  // namespace activeip::cli
