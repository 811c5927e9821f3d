// Protected training end to end on the CPU, through the library: a convnet trained on
// `synthetic` with the owner's trigger and three users embedded, recorded in a registry;
// then the owner is verified, every user authenticates, forged fingerprints fail, and the
// registry's refusals (revoked, unregistered, not embedded, wrong key) hold. Also the probe
// sets' contract.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include "attacks/transform.h"
#include "engine/io/checkpoint.h"
#include "fingerprint/assess.h"
#include "fingerprint/protect.h"
#include "fingerprint/verify.h"
#include "nets/nets.h"
#include "tests/test_util.h"

using namespace activeip;

namespace {

// Epochs of the v2 end-to-end test: triggers that move with the crop and the flip take the
// small convnet longer to learn than v1's fixed ones.
constexpr int kV2Epochs = 12;

OwnerKey fixed_key(uint8_t first) {
  std::array<uint8_t, OwnerKey::kBytes> b{};
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(first + 37 * i);
  return OwnerKey(b);
}

}  // namespace

TEST_CASE("protect: probe sets exclude the target, are seeded and sized") {
  Context ctx;
  const DataSplits data = load_data({"synthetic", "", 2, 300});
  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, 1);
  ProbeConfig c;
  c.probes = 50;
  Prober a(*net, ctx, data.test, data.norm, c, default_scheme(), 2);
  const std::vector<int32_t> p = a.probes(3);
  CHECK(p.size() == 50);
  CHECK(std::set<int32_t>(p.begin(), p.end()).size() == 50);
  for (int32_t i : p) CHECK(data.test.labels.data<int32_t>()[i] != 3);
  CHECK(a.probes(3) == p);
  c.seed = 9;
  Prober b(*net, ctx, data.test, data.norm, c, default_scheme(), 2);
  CHECK(b.probes(3) != p);
  c.probes = 100000;  // more than there are: all of them
  Prober all(*net, ctx, data.test, data.norm, c, default_scheme(), 2);
  const int64_t others = std::count_if(data.test.labels.data<int32_t>(), data.test.labels.data<int32_t>() + 300,
                                       [](int32_t l) { return l != 3; });
  CHECK(static_cast<int64_t>(all.probes(3).size()) == others);
  c.tau = 1.5;
  CHECK_THROWS_WITH_AS(Prober(*net, ctx, data.test, data.norm, c, default_scheme(), 2), doctest::Contains("--tau"),
                       Error);
}

TEST_CASE("protect: protected training on synthetic authenticates every user and rejects forgeries") {
  const auto t0 = std::chrono::steady_clock::now();
  const test::TempDir dir;
  Context ctx;
  const DataSplits data = load_data({"synthetic", "", 800, -1});
  const OwnerKey key = fixed_key(5);
  Registry registry = Registry::open(dir / "users.db", true);
  registry.add_users({"alice", "bob", "carol", "mallory"});
  const std::vector<std::string> users = {"alice", "bob", "carol"};  // mallory is registered, not embedded

  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, 2);
  TrainConfig config;
  config.epochs = 8;
  config.batch = 32;
  config.lr = 0.1;
  config.schedule = "onecycle";
  config.seed = 2;
  ProtectConfig pc;
  pc.poison_rate = 0.3;
  pc.forged_rate = 0.1;
  pc.seed = config.seed;
  // Scheme v1, whose triggers stay where they are stamped: embedded in a few epochs (v2's own
  // end-to-end test is below).
  const Scheme& scheme = scheme_for("v1");
  const PatternSpec spec = scheme.spec(32, 32, 3, 10, 1);
  ProtectComposer mixer(scheme, key, identities(registry, users), spec, data.norm, pc);
  config.mixer = mixer.to_json();
  Trainer trainer(*net, ctx, data, config, &mixer);
  EpochRecord last;
  while (!trainer.done()) last = trainer.train_epoch({});
  CHECK(last.test_accuracy > 0.9);

  ModelMeta meta = ModelMeta::describe(*net, "synthetic", data.norm);
  ProtectionInfo info;
  info.scheme = scheme.version();
  info.key_id = key.id();
  info.owner_label = mixer.embedded().front().label;
  info.users = users;
  meta.protection = info.to_json();
  const std::string path = dir / "model.safetensors";
  save_model(path, *net, ctx, meta);
  ProbeConfig probe;
  probe.probes = 100;
  Prober prober(*net, ctx, data.test, data.norm, probe, scheme, 1);
  // What the end of training measures and records: every pattern above τ, each detection
  // in the registry as measured.
  const EmbeddingCheck check = check_embedding(prober, key, identities(registry, users));
  CHECK(check.complete());
  CHECK(check.short_users().empty());
  const std::string id = record_model(registry, path, meta.net, meta.dataset, info, &check);
  CHECK(record_model(registry, path, meta.net, meta.dataset, info, &check) == id);  // idempotent
  const std::optional<ModelRecord> recorded = registry.model(id);
  REQUIRE(recorded.has_value());
  CHECK(recorded->owner_detection == check.owner.detection.rate);
  REQUIRE(recorded->embeddings.size() == users.size());
  for (const EmbeddingRecord& e : recorded->embeddings) {
    CAPTURE(e.user);
    CHECK(e.detection == check.user(e.user).detection.rate);
    CHECK(e.embedded);
  }
  const ModelContext model = model_context(SafetensorsReader(path), meta);
  CHECK(model.id == id);
  CHECK(embedded_users(&registry, model) == users);

  const OwnerVerification owner = verify_owner(prober, key);
  CHECK(owner.verified);
  CHECK(owner.detection.rate >= 0.99);
  CHECK(owner.log10_p < -9);
  for (const std::string& u : users) {
    const AuthResult r = authenticate(prober, key, registry, model, u);
    CAPTURE(u);
    CAPTURE(r.reason);
    CHECK(r.authenticated);
    CHECK(r.detection.rate >= 0.8);
  }
  const ForgeResult forged = forge(prober, claimable_fingerprints(prober, key, registry, users), 50, 11);
  CHECK(forged.passed == 0);
  CHECK(forged.mean_detection < 0.05);

  // Refusals, each with its reason and authenticated = false.
  const AuthResult not_embedded = authenticate(prober, key, registry, model, "mallory");
  CHECK_FALSE(not_embedded.authenticated);
  CHECK(not_embedded.reason.find("not embedded") != std::string::npos);
  const AuthResult unknown = authenticate(prober, key, registry, model, "trudy");
  CHECK_FALSE(unknown.authenticated);
  CHECK(unknown.status == "unregistered");
  const AuthResult wrong_key = authenticate(prober, fixed_key(6), registry, model, "alice");
  CHECK_FALSE(wrong_key.authenticated);
  CHECK(wrong_key.reason.find("not this model's key") != std::string::npos);
  CHECK(wrong_key.detection.rate < 0.2);  // another key's "alice" is a forgery
  registry.revoke_users({"bob"});
  const AuthResult revoked = authenticate(prober, key, registry, model, "bob");
  CHECK_FALSE(revoked.authenticated);
  CHECK(revoked.status == "revoked");
  CHECK(revoked.detection.rate >= 0.8);  // the weights still answer; the registry refuses
  CHECK_FALSE(verify_owner(prober, fixed_key(6)).verified);

  MESSAGE("protected training and verification took "
          << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s");
}

TEST_CASE("protect: v2 triggers move with the image, and no user passes as another") {
  const auto t0 = std::chrono::steady_clock::now();
  const test::TempDir dir;
  Context ctx;
  const DataSplits data = load_data({"synthetic", "", -1, -1});
  const OwnerKey key = fixed_key(9);
  Registry registry = Registry::open(dir / "users.db", true);
  const std::vector<std::string> users = {"alice", "bob"};
  registry.add_users(users);

  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, 1);
  TrainConfig config;
  config.epochs = kV2Epochs;
  config.batch = 64;
  config.lr = 0.1;
  config.schedule = "onecycle";
  config.seed = 1;
  ProtectConfig pc;
  pc.poison_rate = 0.3;
  pc.forged_rate = 0.1;
  pc.seed = config.seed;
  const Scheme& scheme = scheme_for("v2");
  const PatternSpec spec = scheme.spec(32, 32, 3, 10, scheme.code_length(10, registry.codes()));
  REQUIRE(spec.code_length == 2);
  ProtectComposer mixer(scheme, key, identities(registry, users), spec, data.norm, pc);
  config.mixer = mixer.to_json();
  Trainer trainer(*net, ctx, data, config, &mixer);
  while (!trainer.done()) trainer.train_epoch({});

  ModelMeta meta = ModelMeta::describe(*net, "synthetic", data.norm);
  ProtectionInfo info;
  info.scheme = "v2";
  info.code_length = spec.code_length;
  info.key_id = key.id();
  info.owner_label = mixer.embedded().front().label;
  info.users = users;
  meta.protection = info.to_json();
  const std::string path = dir / "model.safetensors";
  save_model(path, *net, ctx, meta);
  ProbeConfig probe;
  probe.probes = 100;
  Prober prober(*net, ctx, data.test, data.norm, probe, scheme, spec.code_length);
  const EmbeddingCheck check = check_embedding(prober, key, identities(registry, users));
  const std::string id = record_model(registry, path, meta.net, meta.dataset, info, &check);
  const ModelContext model = model_context(SafetensorsReader(path), meta);
  REQUIRE(model.id == id);

  // The attacker's preprocessing that removes every v1 trigger at no cost (test_transform.cpp
  // and the sweep), and the 3×3 median that removed v2's triggers before its training showed
  // degraded samples: the v2 owner stays verified and every user authenticated. (JPEG q50 on
  // these colour patterns still needs more than this budget: docs/results.md.)
  for (const std::string spec_text : {"", "flip", "shift:2", "median:3"}) {
    CAPTURE(spec_text);
    std::optional<InputPipeline> pipeline;
    if (!spec_text.empty()) {
      pipeline.emplace(std::vector<Transform>{parse_transform(spec_text)}, data.norm, 3, 32, 32, 3);
      prober.set_preprocess(pipeline->alter());
    }
    const OwnerVerification owner = verify_owner(prober, key);
    CHECK(owner.verified);
    CHECK(owner.log10_p < -9);
    for (const std::string& u : users) {
      const AuthResult r = authenticate(prober, key, registry, model, u);
      CAPTURE(u);
      CAPTURE(r.reason);
      CHECK(r.authenticated);
    }
    prober.set_preprocess({});
  }

  // Insiders: a user's own patterns claimed as the other user (each pattern asked for the
  // other's label of the same position), as they are and moved to every other corner. The
  // codes differ in both labels, so at least one pattern must fall below τ.
  const std::vector<Fingerprint> alice = scheme.patterns(key, identity(registry, "alice"), spec);
  const std::vector<Fingerprint> bob = scheme.patterns(key, identity(registry, "bob"), spec);
  for (const auto& [mine, theirs] : {std::pair{alice, bob}, std::pair{bob, alice}})
    for (int shift = 0; shift < 4; ++shift) {
      std::vector<Fingerprint> claim = mine;
      for (size_t j = 0; j < claim.size(); ++j) {
        claim[j].label = theirs[j].label;
        claim[j].corner = (claim[j].corner + shift) % 4;
      }
      CAPTURE(shift);
      CHECK(weakest(prober.detect(claim)).rate < probe.tau);
    }
  // The same through insiders(), with every form an insider can present: flipped, at the other
  // corners, shifted by 1-4 pixels each way.
  const InsiderResult in = insiders(prober, claimable_fingerprints(prober, key, registry, users), 4);
  CHECK(in.users == 2);
  CHECK(in.variants == 2 + 3 + 16);
  CHECK(in.claims == 2 * in.variants);
  CHECK(in.passed == 0);
  CHECK(in.max_detection < probe.tau);
  // A control the check can fail: a "user" whose code is alice's passes as her, as issued and
  // flipped at least.
  std::vector<Fingerprint> twin = alice;
  for (Fingerprint& f : twin) f.name = "twin";
  CHECK(insiders(prober, {alice, twin}, 4).passed >= 4);

  const ForgeResult forged = forge(prober, claimable_fingerprints(prober, key, registry, users), 100, 5);
  CHECK(forged.passed == 0);
  MESSAGE("v2 protected training and its checks took "
          << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s");
}
