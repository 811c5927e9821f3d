// User tokens through the library: issuing one (the scheme's own patterns for every model the
// user is embedded in, never the key), the file (mode 0600, never overwritten, read back the
// same) and its refusals — truncated, garbage, foreign, another version, tampered — each
// naming the file; and authentication by token on the v2 fixture model: its user passes, a
// token presented as someone else (renamed or not), a revoked user, another model's or
// another key's token do not. The fixtures are trained already: every case takes well under
// a second of probing.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/io/checkpoint.h"
#include "fingerprint/token.h"
#include "fingerprint/verify.h"
#include "nets/model_io.h"
#include "tests/cli_util.h"

using namespace activeip;
using test::TempDir;

namespace {

OwnerKey other_key() {
  std::array<uint8_t, OwnerKey::kBytes> b{};
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(200 - 7 * i);
  return OwnerKey(b);
}

void write_text(const std::string& path, const std::string& text) {
  test::write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
}

// A loaded fixture model with its prober.
struct Probed {
  Context ctx;
  LoadedModel m;
  ModelContext info;
  DataSplits data;
  std::unique_ptr<Prober> prober;

  Probed(const std::string& path, const Registry& registry) {
    m = load_model(path, ctx);
    info = model_context(SafetensorsReader(path), m.meta);
    data = load_test_split(m.meta, path, {"synthetic", "", 0, 300});
    ProbeConfig probe;
    probe.probes = 50;
    prober = std::make_unique<Prober>(*m.net, ctx, data.test, m.meta.norm, probe, model_scheme(info),
                                      model_code_length(info, &registry, m.net->info().num_classes));
  }
};

}  // namespace

TEST_CASE("token: issued patterns are the scheme's, and a written token reads back the same") {
  TempDir dir;
  test::protected_model(dir, "protected-v2");
  const OwnerKey key = OwnerKey::load(dir / "owner.key");
  const Registry registry = Registry::open(dir / "users.db", false);
  const std::string id = model_id(SafetensorsReader(dir / "m.safetensors"));

  for (const std::string user : {"alice", "bob", "carol"}) {
    CAPTURE(user);
    const UserToken t = issue_token(registry, key, user);
    CHECK(t.user == user);
    CHECK(t.code == registry.user(user)->code);
    CHECK(t.key_id == key.id());
    REQUIRE(t.models.size() == 1);
    const TokenModel& m = t.models[0];
    CHECK(m.id == id);
    CHECK(m.scheme == "v2");
    CHECK(m.code_length == 2);
    CHECK(m.H == 32);
    CHECK(m.W == 32);
    CHECK(m.C == 3);
    CHECK(m.classes == 10);
    CHECK(m.net == "convnet");
    CHECK(m.dataset == "synthetic");
    const Scheme& scheme = scheme_for("v2");
    CHECK(m.patterns == scheme.patterns(key, identity(registry, user), scheme.spec(32, 32, 3, 10, 2)));
    CHECK(t.model(id) == &m);

    const std::string path = dir / (user + ".token");
    t.save(path);
    struct stat st {};
    REQUIRE(stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(UserToken::load(path) == t);
    // Never the key: neither its bytes nor its hex.
    const std::string text = test::read_text(path);
    CHECK(text.find(to_hex(key.bytes().data(), key.bytes().size())) == std::string::npos);
    const nlohmann::json j = nlohmann::json::parse(text);
    CHECK(j["format"] == "activeip-token");
    CHECK(j["version"] == 1);
    CHECK(j["models"][0]["patterns"][0]["top"] == scheme.spec(32, 32, 3, 10, 2).top(m.patterns[0].corner));
  }

  // A v1 model's part: its scheme's single pattern, with the key's label.
  TempDir v1;
  test::protected_model(v1);
  const OwnerKey key1 = OwnerKey::load(v1 / "owner.key");
  const Registry registry1 = Registry::open(v1 / "users.db", false);
  const UserToken t1 = issue_token(registry1, key1, "alice");
  REQUIRE(t1.models.size() == 1);
  CHECK(t1.models[0].scheme == "v1");
  CHECK(t1.models[0].code_length == 1);
  CHECK(t1.models[0].patterns ==
        scheme_for("v1").patterns(key1, identity(registry1, "alice"), scheme_for("v1").spec(32, 32, 3, 10, 1)));
  t1.save(v1 / "alice.token");
  CHECK(UserToken::load(v1 / "alice.token") == t1);
}

TEST_CASE("token: a token file is written once, whole, with mode 0600") {
  TempDir dir;
  test::protected_model(dir, "protected-v2");
  const Registry registry = Registry::open(dir / "users.db", false);
  const UserToken t = issue_token(registry, OwnerKey::load(dir / "owner.key"), "alice");
  t.save(dir / "alice.token");
  const std::string before = test::read_text(dir / "alice.token");
  const auto listing = dir.listing();
  const UserToken bob = issue_token(registry, OwnerKey::load(dir / "owner.key"), "bob");
  const std::string again = test::error_of([&] { bob.save(dir / "alice.token"); });
  CHECK(again.find(dir / "alice.token") != std::string::npos);
  CHECK(again.find("already exists") != std::string::npos);
  CHECK(test::read_text(dir / "alice.token") == before);
  const std::string nowhere = test::error_of([&] { t.save(dir / "no/such/dir/a.token"); });
  CHECK(nowhere.find("no/such/dir/a.token") != std::string::npos);
  CHECK(dir.listing() == listing);  // no temporary file left behind
}

TEST_CASE("token: truncated, garbage, foreign, other-version and tampered files are refused, naming the file") {
  TempDir dir;
  test::protected_model(dir, "protected-v2");
  const Registry registry = Registry::open(dir / "users.db", false);
  const UserToken t = issue_token(registry, OwnerKey::load(dir / "owner.key"), "alice");
  const std::string good = t.to_json();
  const nlohmann::json j = nlohmann::json::parse(good);

  const auto refused = [&](const std::string& name, const std::string& text, const std::string& needle) {
    CAPTURE(name);
    const std::string path = dir / name;
    write_text(path, text);
    const std::string e = test::error_of([&] { UserToken::load(path); });
    CAPTURE(e);
    CHECK(e.find(path) != std::string::npos);
    CHECK(e.find(needle) != std::string::npos);
  };
  const auto edited = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json k = j;
    edit(k);
    return k.dump();
  };
  refused("empty.token", "", "empty");
  refused("half.token", good.substr(0, good.size() / 2), "truncated");
  refused("cut.token", good.substr(0, good.size() - 3), "truncated");
  refused("garbage.token", std::string("\x89PNG\r\n\x1a\n\xff\x00\x13", 11), "not JSON");
  refused("nul.token", good + std::string(1, '\0') + "{}", "NUL");
  refused("array.token", "[1, 2, 3]", "not an activeip token");
  refused("other.token", R"({"format": "activeip-registry-export", "version": 1})", "not an activeip token");
  refused("v2.token", edited([](nlohmann::json& k) { k["version"] = 2; }), "version 2");
  refused("noversion.token", edited([](nlohmann::json& k) { k.erase("version"); }), "\"version\" is missing");
  refused("nouser.token", edited([](nlohmann::json& k) { k.erase("user"); }), "\"user\" is missing");
  refused("owner.token", edited([](nlohmann::json& k) { k["user"] = "owner"; }), "reserved");
  refused("key.token", edited([](nlohmann::json& k) { k["key_id"] = "not-hex"; }), "key_id");
  refused("nomodels.token", edited([](nlohmann::json& k) { k["models"] = nlohmann::json::array(); }), "no model");
  refused("twice.token", edited([](nlohmann::json& k) { k["models"].push_back(k["models"][0]); }), "listed twice");
  refused("scheme.token", edited([](nlohmann::json& k) { k["models"][0]["scheme"] = "v9"; }), "v9");
  refused("short.token", edited([](nlohmann::json& k) { k["models"][0]["patterns"].erase(1); }), "1 patterns");
  refused("bits.token", edited([](nlohmann::json& k) {
            k["models"][0]["patterns"][0]["bits"] = k["models"][0]["patterns"][0]["bits"].get<std::string>() + "1";
          }),
          "bits");
  refused("ternary.token", edited([](nlohmann::json& k) {
            std::string b = k["models"][0]["patterns"][0]["bits"];
            b[3] = '2';
            k["models"][0]["patterns"][0]["bits"] = b;
          }),
          "bits");
  refused("moved.token", edited([](nlohmann::json& k) {
            k["models"][0]["patterns"][0]["top"] = k["models"][0]["patterns"][0]["top"].get<int>() + 1;
          }),
          "position");
  refused("label.token", edited([](nlohmann::json& k) {
            k["models"][0]["patterns"][1]["label"] = (k["models"][0]["patterns"][1]["label"].get<int>() + 1) % 10;
          }),
          "label");
  refused("corner.token", edited([](nlohmann::json& k) { k["models"][0]["patterns"][0]["corner"] = 7; }), "corner");
  refused("type.token", edited([](nlohmann::json& k) { k["models"][0]["code_length"] = "2"; }), "integer");
  refused("huge.token", edited([](nlohmann::json& k) { k["code"] = 18446744073709551615ull; }), "code");
  refused("patch.token", edited([](nlohmann::json& k) { k["models"][0]["patch"]["grid"] = 6; }), "grid");
  // Another kind of file altogether: a model.
  const std::string model = dir / "m.safetensors";
  const std::string e = test::error_of([&] { UserToken::load(model); });
  CHECK(e.find(model) != std::string::npos);
  const std::string missing = test::error_of([&] { UserToken::load(dir / "nobody.token"); });
  CHECK(missing.find(dir / "nobody.token") != std::string::npos);
  const std::string folder = test::error_of([&] { UserToken::load(dir.path().string()); });
  CHECK(folder.find("not a regular file") != std::string::npos);
  write_text(dir / "good.token", good);
  CHECK(UserToken::load(dir / "good.token") == t);
}

TEST_CASE("token: none for an unknown, revoked or unembedded user, or under another key") {
  TempDir dir;
  test::protected_model(dir, "protected-v2");
  const OwnerKey key = OwnerKey::load(dir / "owner.key");
  Registry registry = Registry::open(dir / "users.db", false);
  registry.add_users({"dave"});
  registry.revoke_users({"bob"});
  const auto refused = [&](const std::string& user, const OwnerKey& k, const std::string& needle) {
    CAPTURE(user);
    const std::string e = test::error_of([&] { issue_token(registry, k, user); });
    CAPTURE(e);
    CHECK(e.find(needle) != std::string::npos);
  };
  refused("zed", key, "no user 'zed'");
  refused("bob", key, "revoked");
  refused("dave", key, "embedded in no model");
  refused("alice", other_key(), "another key");
  refused("owner", key, "reserved");
}

TEST_CASE("token: a token authenticates its user through the model, and nobody else") {
  TempDir dir;
  test::protected_model(dir, "protected-v2");
  const OwnerKey key = OwnerKey::load(dir / "owner.key");
  Registry registry = Registry::open(dir / "users.db", false);
  Probed p(dir / "m.safetensors", registry);
  const std::vector<std::string> users = {"alice", "bob", "carol"};
  std::map<std::string, UserToken> tokens;
  for (const std::string& u : users) tokens.emplace(u, issue_token(registry, key, u));

  for (const std::string& u : users) {
    CAPTURE(u);
    const AuthResult r = authenticate_token(*p.prober, tokens.at(u), u + ".token", registry, p.info, u);
    CAPTURE(r.reason);
    CHECK(r.authenticated);
    CHECK(r.status == "active");
    CHECK(r.detection.n == 50);
    // The same patterns and labels as the owner's audit: the same detection.
    const AuthResult audit = authenticate(*p.prober, key, registry, p.info, u);
    CHECK(r.detection.rate == audit.detection.rate);
    CHECK(r.detection.target == audit.detection.target);
  }

  // Every ordered pair: U's token presented as V, as issued (the name says U) and renamed to V
  // (the model alone must refuse: U's patterns answer U's code, not V's).
  for (const std::string& u : users)
    for (const std::string& v : users) {
      if (u == v) continue;
      CAPTURE(u);
      CAPTURE(v);
      const AuthResult named = authenticate_token(*p.prober, tokens.at(u), "u.token", registry, p.info, v);
      CHECK_FALSE(named.authenticated);
      CHECK(named.reason.find("issued to '" + u + "'") != std::string::npos);
      UserToken renamed = tokens.at(u);
      renamed.user = v;
      renamed.code = registry.user(v)->code;
      for (TokenModel& m : renamed.models)
        for (Fingerprint& f : m.patterns) f.name = v;
      const AuthResult r = authenticate_token(*p.prober, renamed, "u.token", registry, p.info, v);
      CAPTURE(r.reason);
      CHECK_FALSE(r.authenticated);
      CHECK(r.detection.rate < p.prober->config().tau);
      CHECK(r.reason.find("below τ") != std::string::npos);
    }

  // Not this model's: another model id, or another key's token.
  UserToken elsewhere = tokens.at("alice");
  elsewhere.models[0].id = std::string(64, 'a');
  const AuthResult other = authenticate_token(*p.prober, elsewhere, "a.token", registry, p.info, "alice");
  CHECK_FALSE(other.authenticated);
  CHECK(other.reason.find("holds no patterns for this model") != std::string::npos);
  UserToken foreign = tokens.at("alice");
  foreign.key_id = other_key().id();
  const std::string e =
      test::error_of([&] { authenticate_token(*p.prober, foreign, "foreign.token", registry, p.info, "alice"); });
  CHECK(e.find("foreign.token") != std::string::npos);
  CHECK(e.find("another key") != std::string::npos);

  // A model derived from this one (recorded with it as parent, as enroll records its output)
  // that the token predates: the parent's patterns stand for it, as the registry's embedding
  // follows parents.
  ModelRecord child;
  child.id = std::string(64, 'c');
  child.parent = p.info.id;
  child.path = "child.safetensors";
  child.net = "convnet";
  child.dataset = "synthetic";
  child.key_id = key.id();
  child.scheme = "v2";
  child.code_length = 2;
  child.embeddings = {{"alice", 1.0, true}};
  registry.add_model(child);
  ModelContext derived = p.info;
  derived.id = child.id;
  const AuthResult via_parent =
      authenticate_token(*p.prober, tokens.at("alice"), "a.token", registry, derived, "alice");
  CAPTURE(via_parent.reason);
  CHECK(via_parent.authenticated);

  // Unregistered, then revoked.
  const AuthResult nobody = authenticate_token(*p.prober, tokens.at("alice"), "a.token", registry, p.info, "zed");
  CHECK_FALSE(nobody.authenticated);
  CHECK(nobody.status == "unregistered");
  registry.revoke_users({"alice"});
  const AuthResult revoked = authenticate_token(*p.prober, tokens.at("alice"), "a.token", registry, p.info, "alice");
  CHECK_FALSE(revoked.authenticated);
  CHECK(revoked.status == "revoked");
  CHECK(revoked.reason.find("revoked") != std::string::npos);

  // A model the registry does not record: refused as auth refuses it.
  const Registry empty = Registry::open(dir / "empty.db", true);
  const AuthResult unrecorded = authenticate_token(*p.prober, tokens.at("bob"), "b.token", empty, p.info, "bob");
  CHECK_FALSE(unrecorded.authenticated);
}

TEST_CASE("token: a v1 model's users cannot authenticate by token: their labels need the key") {
  TempDir dir;
  test::protected_model(dir);
  const Registry registry = Registry::open(dir / "users.db", false);
  Probed p(dir / "m.safetensors", registry);
  const UserToken t = issue_token(registry, OwnerKey::load(dir / "owner.key"), "alice");
  const AuthResult r = authenticate_token(*p.prober, t, "alice.token", registry, p.info, "alice");
  CHECK_FALSE(r.authenticated);
  CHECK(r.reason.find("scheme v1") != std::string::npos);
}
