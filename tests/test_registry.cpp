// registry: creation and reopening, users (add, list, revoke) and models (embeddings, parent
// chains), refusals that must leave users, models, events and the file itself unchanged (the
// transaction test), the append-only audit log, and files that are missing, not SQLite, or
// SQLite but not ours — which are reported and never modified.
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "fingerprint/registry.h"
#include "tests/test_util.h"

using namespace activeip;
using test::TempDir;
namespace fs = std::filesystem;

namespace {

using test::error_of;

// Model ids are SHA-256 digests in hex; any 64 hex digits do for the registry.
std::string model_id(char c) {
  return std::string(64, c);
}

ModelRecord model_with(char c, std::vector<std::string> users, const std::string& parent = "") {
  ModelRecord m;
  m.id = model_id(c);
  m.parent = parent;
  m.path = std::string("runs/model_") + c + ".safetensors";
  m.net = "resnet20";
  m.dataset = "cifar10";
  m.key_id = "0123456789abcdef";
  for (std::string& u : users) m.embeddings.push_back({std::move(u), std::nullopt, true});
  return m;
}

// Runs a raw statement on the file, as a hand-run sqlite3 shell would; returns SQLite's message
// ("" on success).
std::string raw_exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  char* msg = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &msg);
  const std::string out = rc == SQLITE_OK ? "" : (msg ? msg : "error");
  sqlite3_free(msg);
  sqlite3_close(db);
  return out;
}

// Everything a reader can see, plus the bytes of the file.
struct Snapshot {
  std::vector<UserRecord> users;
  std::vector<ModelRecord> models;
  std::vector<EventRecord> events;
  std::vector<uint8_t> bytes;
  bool operator==(const Snapshot&) const = default;
};

Snapshot snapshot(const Registry& r) {
  return {r.users(), r.models(), r.events(), test::read_bytes(r.path())};
}

// A failed call must throw an Error containing `expect` and leave everything as it was.
void expect_refused(Registry& r, const std::function<void(Registry&)>& call, const std::string& expect) {
  const Snapshot before = snapshot(r);
  const std::string err = error_of([&] { call(r); });
  INFO("error: " << err);
  CHECK(err.find(expect) != std::string::npos);
  CHECK(snapshot(r) == before);
}

bool is_utc_timestamp(const std::string& s) {
  if (s.size() != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z')
    return false;
  for (int i : {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18})
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

}  // namespace

TEST_CASE("registry: creation and reopening") {
  TempDir dir;
  const std::string path = dir / "users.db";
  {
    Registry r = Registry::open(path, true);
    CHECK(r.path() == path);
    CHECK(fs::exists(path));
    CHECK(r.users().empty());
    CHECK(r.models().empty());
    CHECK(r.events().empty());
    r.add_users({"alice"});
  }
  // Reopened with and without create: the data is kept, the schema is not recreated.
  for (bool create : {false, true}) {
    Registry r = Registry::open(path, create);
    REQUIRE(r.users().size() == 1);
    CHECK(r.users()[0].name == "alice");
    CHECK(r.events().size() == 1);
  }
  // Move-only handle: the moved-to object works, the moved-from one is destroyed harmlessly.
  Registry a = Registry::open(path, false);
  Registry b = std::move(a);
  CHECK(b.user("alice").has_value());
  Registry c = Registry::open(path, false);
  c = std::move(b);
  CHECK(c.path() == path);
  CHECK(c.users().size() == 1);

  // A relative path is a file name, even one that SQLite would otherwise read as special.
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path());
  std::string err = error_of([] { Registry::open(":memory:", true).add_users({"zed"}); });
  fs::current_path(cwd);
  CHECK(err == "(no error)");
  CHECK(fs::exists(dir / ":memory:"));
}

TEST_CASE("registry: add, list and show users") {
  TempDir dir;
  Registry r = Registry::open(dir / "users.db", true);
  r.add_users({"carol", "alice"});
  r.add_users({"bob.smith@example.org", "Dave_2-x"});

  const std::vector<UserRecord> users = r.users();
  REQUIRE(users.size() == 4);
  // Ordered by name (byte order: upper case first).
  CHECK(users[0].name == "Dave_2-x");
  CHECK(users[1].name == "alice");
  CHECK(users[2].name == "bob.smith@example.org");
  CHECK(users[3].name == "carol");
  for (const auto& u : users) {
    CHECK(u.status == "active");
    CHECK(is_utc_timestamp(u.created));
  }
  REQUIRE(r.user("alice").has_value());
  CHECK(*r.user("alice") == users[1]);
  CHECK_FALSE(r.user("zoe").has_value());
  CHECK_FALSE(r.user("Alice").has_value());  // names are case-sensitive, as their fingerprints

  // One event per user, in the order given.
  const std::vector<EventRecord> ev = r.events();
  REQUIRE(ev.size() == 4);
  const char* order[] = {"carol", "alice", "bob.smith@example.org", "Dave_2-x"};
  for (size_t i = 0; i < ev.size(); ++i) {
    CHECK(ev[i].kind == "user.add");
    CHECK(ev[i].subject == order[i]);
    CHECK(ev[i].detail == "");
    CHECK(is_utc_timestamp(ev[i].time));
    if (i > 0) CHECK(ev[i].id > ev[i - 1].id);
  }

  // A 64-character name is the longest allowed.
  r.add_users({std::string(64, 'x')});
  CHECK(r.user(std::string(64, 'x')).has_value());
}

TEST_CASE("registry: each user gets the next code, kept across reopenings and never given again") {
  TempDir dir;
  const std::string path = dir / "users.db";
  {
    Registry r = Registry::open(path, true);
    CHECK(r.codes() == 0);
    r.add_users({"carol", "alice"});
    r.add_users({"bob"});
    CHECK(r.user("carol")->code == 0);
    CHECK(r.user("alice")->code == 1);
    CHECK(r.user("bob")->code == 2);
    r.revoke_users({"bob"});
    // A refused batch gives no code away.
    CHECK_THROWS_AS(r.add_users({"dave", "alice"}), Error);
    CHECK(r.codes() == 3);
  }
  Registry r = Registry::open(path, false);
  CHECK(r.user("alice")->code == 1);
  CHECK(r.user("bob")->code == 2);  // revoked, and its code stays taken
  r.add_users({"dave", "erin"});
  CHECK(r.user("dave")->code == 3);
  CHECK(r.user("erin")->code == 4);
  CHECK(r.codes() == 5);
  std::set<int64_t> codes;
  for (const UserRecord& u : r.users()) codes.insert(u.code);
  CHECK(codes == std::set<int64_t>{0, 1, 2, 3, 4});

  // A model records the scheme and code length it was trained with, and whether it is locked.
  ModelRecord m = model_with('c', {"dave", "erin"});
  m.scheme = "v2";
  m.code_length = 3;
  m.locked = true;
  r.add_model(m);
  CHECK(r.model(m.id)->scheme == "v2");
  CHECK(r.model(m.id)->code_length == 3);
  CHECK(r.model(m.id)->locked);
  ModelRecord bad = model_with('d', {"dave"});
  bad.code_length = 0;
  CHECK_THROWS_WITH_AS(r.add_model(bad), doctest::Contains("code length"), Error);
  CHECK_FALSE(r.model(bad.id).has_value());
}

TEST_CASE("registry: revoke") {
  TempDir dir;
  Registry r = Registry::open(dir / "users.db", true);
  r.add_users({"alice", "bob", "carol"});
  r.revoke_users({"bob", "alice"});
  CHECK(r.user("alice")->status == "revoked");
  CHECK(r.user("bob")->status == "revoked");
  CHECK(r.user("carol")->status == "active");
  const std::vector<EventRecord> ev = r.events();
  REQUIRE(ev.size() == 5);
  CHECK(ev[3].kind == "user.revoke");
  CHECK(ev[3].subject == "bob");
  CHECK(ev[4].kind == "user.revoke");
  CHECK(ev[4].subject == "alice");
  // Persisted.
  Registry again = Registry::open(dir / "users.db", false);
  CHECK(again.user("bob")->status == "revoked");
}

TEST_CASE("registry: a model recorded with revocations revokes in the same transaction") {
  TempDir dir;
  Registry r = Registry::open(dir / "users.db", true);
  r.add_users({"alice", "bob", "carol"});
  ModelRecord m = model_with('a', {"alice"});
  m.locked = true;
  m.embeddings.push_back({"bob", 0.1, false});  // a revoked user's pattern, refused
  r.add_model(m, {"bob"});
  CHECK(r.user("bob")->status == "revoked");
  CHECK_FALSE(r.embedded(m.id, "bob"));
  const std::vector<EventRecord> ev = r.events();
  REQUIRE(ev.size() == 5);
  CHECK(ev[3].kind == "model.add");
  CHECK(ev[4].kind == "user.revoke");
  CHECK(ev[4].subject == "bob");
  CHECK(ev[4].detail == "model " + m.id);

  // A revocation that cannot be made (bob is revoked already): the model is not recorded either.
  const ModelRecord next = model_with('b', {"alice"}, m.id);
  expect_refused(
      r, [&](Registry& reg) { reg.add_model(next, {"carol", "bob"}); }, "user 'bob' is already revoked");
  CHECK_FALSE(r.model(next.id).has_value());
  CHECK(r.user("carol")->status == "active");
}

TEST_CASE("registry: invalid user names are refused") {
  TempDir dir;
  Registry r = Registry::open(dir / "users.db", true);
  r.add_users({"alice"});
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"owner", "reserved"},
      {"", "1 to 64 characters"},
      {"-x", "must start with a letter or a digit"},
      {".x", "must start with a letter or a digit"},
      {std::string(65, 'a'), "65 characters, at most 64"},
      {"a b", "' ' at position 2 is not allowed"},
      {"a/b", "'/' at position 2 is not allowed"},
      {std::string("a\0b", 3), "'\\x00' at position 2"},
      {"caf\xc3\xa9", "'\\xc3' at position 4"},
  };
  for (const auto& [name, expect] : cases) {
    CAPTURE(name);
    CHECK_THROWS_AS(check_user_name(name), Error);
    expect_refused(
        r, [&](Registry& reg) { reg.add_users({name}); }, expect);
  }
  for (const char* ok : {"a", "0", "A.b_c@d-e", "owner2", "Owner"}) {
    CAPTURE(ok);
    CHECK_NOTHROW(check_user_name(ok));
  }
}

TEST_CASE("registry: refused user changes write nothing") {
  TempDir dir;
  Registry r = Registry::open(dir / "users.db", true);
  r.add_users({"alice", "bob"});
  r.revoke_users({"bob"});

  expect_refused(
      r, [](Registry& reg) { reg.add_users({}); }, "no user names given");
  expect_refused(
      r,
      [](Registry& reg) {
        reg.add_users({"carol", "dave", "carol"});
      },
      "user 'carol' is listed twice");
  // Invalid names anywhere in the list: nobody is added.
  expect_refused(
      r,
      [](Registry& reg) {
        reg.add_users({"carol", "owner"});
      },
      "reserved");
  // carol and dave are inserted before alice is found: the rollback must undo them.
  expect_refused(
      r,
      [](Registry& reg) {
        reg.add_users({"carol", "dave", "alice"});
      },
      "user 'alice' is already registered");
  // A revoked name is never reissued.
  expect_refused(
      r, [](Registry& reg) { reg.add_users({"bob"}); }, "user 'bob' is already registered");

  expect_refused(
      r, [](Registry& reg) { reg.revoke_users({}); }, "no user names given");
  expect_refused(
      r, [&](Registry& reg) { reg.revoke_users({"zoe"}); }, "no user 'zoe' in " + r.path());
  expect_refused(
      r,
      [](Registry& reg) {
        reg.revoke_users({"alice", "zoe"});
      },
      "no user 'zoe'");
  expect_refused(
      r,
      [](Registry& reg) {
        reg.revoke_users({"alice", "bob"});
      },
      "user 'bob' is already revoked");
  expect_refused(
      r,
      [](Registry& reg) {
        reg.revoke_users({"alice", "alice"});
      },
      "listed twice");

  CHECK(r.user("alice")->status == "active");
  CHECK_FALSE(r.user("carol").has_value());
  CHECK(r.events().size() == 3);
}

TEST_CASE("registry: models, embeddings and parent chains") {
  TempDir dir;
  Registry r = Registry::open(dir / "users.db", true);
  r.add_users({"alice", "bob", "carol"});

  ModelRecord base = model_with('a', {"bob", "alice"});
  base.created = "2026-01-01T00:00:00Z";
  r.add_model(base);
  ModelRecord tuned = model_with('b', {"carol"}, base.id);
  tuned.created = "2026-01-02T00:00:00Z";
  r.add_model(tuned);
  ModelRecord pruned = model_with('c', {}, tuned.id);  // `created` filled in by the registry
  r.add_model(pruned);
  ModelRecord other = model_with('d', {"carol"});
  other.created = "2026-01-02T00:00:00Z";  // same time as `tuned`: ordered by id after it
  r.add_model(other);

  const std::optional<ModelRecord> got = r.model(base.id);
  REQUIRE(got.has_value());
  CHECK(got->embedded_users() == std::vector<std::string>{"alice", "bob"});  // sorted
  CHECK(got->parent == "");
  CHECK(got->path == base.path);
  CHECK(got->net == "resnet20");
  CHECK(got->dataset == "cifar10");
  CHECK(got->key_id == base.key_id);
  CHECK(got->created == base.created);
  CHECK_FALSE(r.model(model_id('e')).has_value());

  const std::vector<ModelRecord> all = r.models();
  REQUIRE(all.size() == 4);
  CHECK(all[0].id == base.id);
  CHECK(all[1].id == tuned.id);
  CHECK(all[2].id == other.id);
  CHECK(all[3].id == pruned.id);
  CHECK(is_utc_timestamp(all[3].created));
  CHECK(all[3].parent == tuned.id);
  CHECK(all[3].embeddings.empty());
  CHECK(all[1] == *r.model(tuned.id));

  CHECK(r.models_of("alice") == std::vector<std::string>{base.id});
  CHECK(r.models_of("carol") == std::vector<std::string>{tuned.id, other.id});
  CHECK(r.models_of("zoe").empty());

  // Through the parent links: pruned ← tuned ← base.
  CHECK(r.embedded(base.id, "alice"));
  CHECK_FALSE(r.embedded(base.id, "carol"));
  CHECK(r.embedded(tuned.id, "carol"));
  CHECK(r.embedded(tuned.id, "alice"));
  CHECK(r.embedded(pruned.id, "bob"));
  CHECK(r.embedded(pruned.id, "carol"));
  CHECK_FALSE(r.embedded(other.id, "alice"));
  CHECK_FALSE(r.embedded(model_id('e'), "alice"));
  CHECK_FALSE(r.embedded(pruned.id, "zoe"));

  // Revoking does not change what the weights carry; verification checks the status itself.
  r.revoke_users({"alice"});
  CHECK(r.embedded(pruned.id, "alice"));

  const std::vector<EventRecord> ev = r.events();
  REQUIRE(ev.size() == 8);
  CHECK(ev[3].kind == "model.add");
  CHECK(ev[3].subject == base.id);
  CHECK(ev[3].detail == "alice,bob");
  CHECK(ev[5].detail == "");

  // A cycle can only come from editing the file by hand; it must not hang the walk.
  CHECK(raw_exec(r.path(), "UPDATE models SET parent = '" + pruned.id + "' WHERE id = '" + base.id + "'") == "");
  CHECK_FALSE(r.embedded(pruned.id, "zoe"));
  CHECK(r.embedded(base.id, "carol"));
}

TEST_CASE("registry: refused models write nothing") {
  TempDir dir;
  Registry r = Registry::open(dir / "users.db", true);
  r.add_users({"alice", "bob"});
  r.add_model(model_with('a', {"alice"}));

  // The model row is inserted before the unknown user is found: the rollback must undo it.
  expect_refused(
      r,
      [](Registry& reg) {
        reg.add_model(model_with('b', {"alice", "zoe"}));
      },
      "user 'zoe' of model");
  expect_refused(
      r, [](Registry& reg) { reg.add_model(model_with('b', {"alice"}, model_id('f'))); },
      "parent model '" + model_id('f') + "'");
  expect_refused(
      r, [](Registry& reg) { reg.add_model(model_with('a', {"bob"})); },
      "model " + model_id('a') + " is already recorded");
  expect_refused(
      r,
      [](Registry& reg) {
        reg.add_model(model_with('b', {"bob", "bob"}));
      },
      "listed twice");
  expect_refused(
      r,
      [](Registry& reg) {
        ModelRecord m = model_with('b', {"bob"});
        m.id = "ABC";
        reg.add_model(m);
      },
      "not a SHA-256 in hex");
  expect_refused(
      r,
      [](Registry& reg) {
        ModelRecord m = model_with('b', {"bob"});
        m.id[0] = 'A';  // upper-case hex would never match a lookup by the computed digest
        reg.add_model(m);
      },
      "not a SHA-256 in hex");
  expect_refused(
      r,
      [](Registry& reg) {
        ModelRecord m = model_with('b', {"bob"});
        m.key_id = "";
        reg.add_model(m);
      },
      "has no key id");
  CHECK(r.models().size() == 1);
  CHECK(r.models_of("bob").empty());
}

TEST_CASE("registry: the audit log is append-only") {
  TempDir dir;
  const std::string path = dir / "users.db";
  std::vector<EventRecord> before;
  {
    Registry r = Registry::open(path, true);
    r.add_users({"alice", "bob"});
    r.revoke_users({"bob"});
    before = r.events();
  }
  REQUIRE(before.size() == 3);
  CHECK(raw_exec(path, "UPDATE events SET detail = 'x' WHERE id = 1").find("append-only") != std::string::npos);
  CHECK(raw_exec(path, "UPDATE events SET subject = 'mallory'").find("append-only") != std::string::npos);
  CHECK(raw_exec(path, "DELETE FROM events WHERE kind = 'user.revoke'").find("append-only") != std::string::npos);
  CHECK(raw_exec(path, "DELETE FROM events").find("append-only") != std::string::npos);
  CHECK(Registry::open(path, false).events() == before);
}

TEST_CASE("registry: missing, foreign and damaged files") {
  TempDir dir;

  SUBCASE("missing file without create") {
    const std::string path = dir / "none.db";
    const std::string err = error_of([&] { Registry::open(path, false); });
    CHECK(err.find("registry " + path + " does not exist") != std::string::npos);
    CHECK_FALSE(fs::exists(path));
  }
  SUBCASE("not a SQLite file") {
    const std::string path = dir / "garbage.db";
    std::vector<uint8_t> bytes = test::random_bytes(5000, 7);
    test::write_bytes(path, bytes);
    for (bool create : {false, true}) {
      CAPTURE(create);
      const std::string err = error_of([&] { Registry::open(path, create); });
      CHECK(err.find(path + " is not an activeip registry") != std::string::npos);
      CHECK(test::read_bytes(path) == bytes);
    }
    // Text that happens to be a few bytes long is no better.
    test::write_bytes(path, {'h', 'e', 'l', 'l', 'o', '\n'});
    CHECK(error_of([&] { Registry::open(path, false); }).find("not an activeip registry") != std::string::npos);
    CHECK(test::read_bytes(path).size() == 6);
  }
  SUBCASE("a SQLite database that is not ours") {
    const std::string path = dir / "other.db";
    REQUIRE(raw_exec(path, "CREATE TABLE users(name TEXT); INSERT INTO users VALUES('alice');") == "");
    const std::vector<uint8_t> bytes = test::read_bytes(path);
    for (bool create : {false, true}) {
      CAPTURE(create);
      const std::string err = error_of([&] { Registry::open(path, create); });
      CHECK(err.find(path + " is not an activeip registry") != std::string::npos);
      CHECK(test::read_bytes(path) == bytes);
    }
  }
  SUBCASE("an empty file is ours to initialise only with create") {
    const std::string path = dir / "empty.db";
    test::write_bytes(path, {});
    CHECK(error_of([&] { Registry::open(path, false); }).find("not an activeip registry") != std::string::npos);
    Registry r = Registry::open(path, true);
    r.add_users({"alice"});
    CHECK(r.users().size() == 1);
  }
  SUBCASE("a registry from a newer build") {
    const std::string path = dir / "newer.db";
    Registry::open(path, true);
    const long long newer = Registry::latest_schema_version() + 1;
    REQUIRE(raw_exec(path, strfmt("PRAGMA user_version = %lld", newer)) == "");
    const auto bytes = test::read_bytes(path);
    const std::string err = error_of([&] { Registry::open(path, false); });
    CHECK(err.find(strfmt("schema version %lld", newer)) != std::string::npos);
    CHECK(err.find("newer build") != std::string::npos);
    CHECK(test::read_bytes(path) == bytes);
  }
  SUBCASE("a directory") {
    CHECK(error_of([&] { Registry::open(dir.path().string(), true); }).find(dir.path().string()) != std::string::npos);
  }
}

TEST_CASE("registry: two handles on one file see each other's writes") {
  TempDir dir;
  const std::string path = dir / "users.db";
  Registry a = Registry::open(path, true);
  Registry b = Registry::open(path, true);
  a.add_users({"alice"});
  CHECK(b.user("alice").has_value());
  // b checks against what a committed, not a stale view.
  CHECK(error_of([&] { b.add_users({"alice"}); }).find("already registered") != std::string::npos);
  b.add_model(model_with('a', {"alice"}));
  CHECK(a.model(model_id('a')).has_value());
  CHECK(a.events().size() == 2);
}

TEST_CASE("registry: a writer waits for another process's transaction") {
  TempDir dir;
  const std::string path = dir / "users.db";
  Registry r = Registry::open(path, true);
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  std::thread release([other] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr);
  });
  const auto start = std::chrono::steady_clock::now();
  const std::string err = error_of([&] { r.add_users({"alice"}); });
  release.join();
  sqlite3_close(other);
  CHECK(err == "(no error)");
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(150));
  CHECK(r.user("alice").has_value());
}

TEST_CASE("registry: measured embeddings, and a user below tau is not embedded") {
  TempDir dir;
  Registry r = Registry::open(dir / "users.db", true);
  r.add_users({"alice", "bob", "carol"});
  ModelRecord base = model_with('a', {});
  base.created = "2026-01-01T00:00:00Z";
  base.owner_detection = 0.995;
  base.embeddings = {{"alice", 0.97, true}, {"bob", 0.12, false}};
  r.add_model(base);
  const std::optional<ModelRecord> got = r.model(base.id);
  REQUIRE(got.has_value());
  CHECK(*got == base);
  CHECK(got->embedded_users() == std::vector<std::string>{"alice"});
  CHECK(r.embedded(base.id, "alice"));
  CHECK_FALSE(r.embedded(base.id, "bob"));
  REQUIRE(r.embedding(base.id, "bob").has_value());
  CHECK(r.embedding(base.id, "bob")->detection == 0.12);
  CHECK_FALSE(r.embedding(base.id, "carol").has_value());
  CHECK(r.models_of("bob").empty());
  const auto bob = r.embeddings_of("bob");
  REQUIRE(bob.size() == 1);
  CHECK(bob[0].first == base.id);
  CHECK_FALSE(bob[0].second.embedded);
  CHECK(r.events().back().detail == "alice,bob; not embedded: bob");

  // A derived model's own measurement overrides its parent's, both ways.
  ModelRecord enrolled = model_with('b', {}, base.id);
  enrolled.embeddings = {{"alice", 0.4, false}, {"bob", 0.9, true}, {"carol", 0.85, true}};
  r.add_model(enrolled);
  CHECK_FALSE(r.embedded(enrolled.id, "alice"));
  CHECK(r.embedded(enrolled.id, "bob"));
  CHECK(r.embedded(enrolled.id, "carol"));
  ModelRecord pruned = model_with('c', {}, enrolled.id);  // an attacked copy measures nothing
  r.add_model(pruned);
  CHECK(r.embedded(pruned.id, "bob"));
  CHECK_FALSE(r.embedded(pruned.id, "alice"));

  // Refused without a trace: a detection outside [0, 1].
  const Snapshot before = snapshot(r);
  ModelRecord bad = model_with('d', {});
  bad.embeddings = {{"alice", 1.5, true}};
  CHECK(error_of([&] { r.add_model(bad); }).find("outside [0, 1]") != std::string::npos);
  bad.embeddings.clear();
  bad.owner_detection = -0.1;
  CHECK(error_of([&] { r.add_model(bad); }).find("outside [0, 1]") != std::string::npos);
  CHECK(snapshot(r) == before);
}

// tests/fixtures/registry-v1.db was written by the schema-1 build: users alice, bob and carol
// (carol revoked since), one protected model embedding all three, five events.
TEST_CASE("registry: a schema-1 registry is upgraded in place and keeps its records") {
  TempDir dir;
  const std::string path = dir / "users.db";
  test::write_bytes(path, test::read_bytes(ACTIVEIP_FIXTURES "/registry-v1.db"));
  const std::string id = "2ab39d9f1635ac76916aa04268d40f6491474e804e2041dc2176fbe885a8b5d7";
  {
    Registry r = Registry::open(path, false);
    const std::vector<UserRecord> users = r.users();
    REQUIRE(users.size() == 3);
    CHECK(users[2].name == "carol");
    CHECK(users[2].status == "revoked");
    const std::optional<ModelRecord> m = r.model(id);
    REQUIRE(m.has_value());
    CHECK_FALSE(m->owner_detection.has_value());
    CHECK(m->scheme == "v1");  // every model before schema 3 was trained under v1
    CHECK(m->code_length == 1);
    CHECK(m->embedded_users() == std::vector<std::string>{"alice", "bob", "carol"});
    for (const EmbeddingRecord& e : m->embeddings) CHECK_FALSE(e.detection.has_value());  // never measured
    CHECK(r.embedded(id, "bob"));
    CHECK_FALSE(m->locked);  // no model before schema 4 was locked
    const std::vector<EventRecord> ev = r.events();
    REQUIRE(ev.size() == 8);
    CHECK(ev[3].kind == "model.add");
    CHECK(ev[5].kind == "registry.upgrade");
    CHECK(ev[5].detail == "from schema 1");
    CHECK(ev[6].kind == "registry.upgrade");
    CHECK(ev[6].detail == "from schema 2");
    CHECK(ev[7].kind == "registry.upgrade");
    CHECK(ev[7].detail == "from schema 3");
    // The users got their codes in the order they were added, the revoked one included.
    CHECK(r.user("alice")->code == 0);
    CHECK(r.user("bob")->code == 1);
    CHECK(r.user("carol")->code == 2);
    CHECK(r.codes() == 3);
    // The upgraded file takes the new records.
    r.add_users({"dave"});
    CHECK(r.user("dave")->code == 3);
    ModelRecord child = model_with('e', {}, id);
    child.embeddings = {{"dave", 0.3, false}};
    r.add_model(child);
    CHECK_FALSE(r.embedded(child.id, "dave"));
  }
  // Opened again: upgraded once only.
  const Registry again = Registry::open(path, false);
  CHECK(again.events().size() == 10);
}

namespace {

// Schema 1 as the first build wrote it (the tables of tests/fixtures/registry-v1.db), with a
// user, a model embedding it and their events. `embeddings_extra` adds columns to the
// embeddings table, to make a file the migration cannot take.
std::string schema1_sql(const std::string& embeddings_extra = "") {
  return R"sql(
CREATE TABLE users(
  name TEXT PRIMARY KEY,
  created TEXT NOT NULL,
  status TEXT NOT NULL CHECK(status IN ('active','revoked')));
CREATE TABLE models(
  id TEXT PRIMARY KEY,
  parent TEXT REFERENCES models(id),
  path TEXT,
  net TEXT,
  dataset TEXT,
  key_id TEXT NOT NULL,
  created TEXT NOT NULL);
CREATE TABLE embeddings(
  model TEXT NOT NULL REFERENCES models(id),
  user TEXT NOT NULL REFERENCES users(name),)sql" +
         embeddings_extra + R"sql(
  PRIMARY KEY(model, user));
CREATE INDEX embeddings_by_user ON embeddings(user);
CREATE TABLE events(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time TEXT NOT NULL,
  kind TEXT NOT NULL,
  subject TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT '');
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
PRAGMA application_id = 1095323730;
PRAGMA user_version = 1;
INSERT INTO users VALUES('alice', '2026-01-02T03:04:05Z', 'active');
INSERT INTO models VALUES(')sql" +
         model_id('a') + R"sql(', NULL, 'runs/a.safetensors', 'convnet', 'synthetic', '0123456789abcdef',
                          '2026-01-02T03:04:06Z');
INSERT INTO embeddings(model, user) VALUES(')sql" +
         model_id('a') + R"sql(', 'alice');
INSERT INTO events(time, kind, subject, detail) VALUES('2026-01-02T03:04:05Z', 'user.add', 'alice', '');
INSERT INTO events(time, kind, subject, detail) VALUES('2026-01-02T03:04:06Z', 'model.add', ')sql" +
         model_id('a') + R"sql(', 'alice');
)sql";
}

// The shape of a registry's schema: every table's columns (name, type, not null, default,
// primary key), then the names of its indexes and triggers.
std::vector<std::string> schema_shape(const std::string& path) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  std::vector<std::string> out;
  const auto rows = [&](const std::string& sql) {
    std::vector<std::string> r;
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) {
      std::string row;
      for (int c = 0; c < sqlite3_column_count(s); ++c) {
        const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(s, c));
        row += std::string(t ? t : "NULL") + "|";
      }
      r.push_back(row);
    }
    sqlite3_finalize(s);
    return r;
  };
  for (const std::string& table : rows("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")) {
    const std::string name = table.substr(0, table.size() - 1);
    out.push_back("table " + name);
    for (const std::string& col :
         rows("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('" + name + "')"))
      out.push_back("  " + col);
  }
  for (const std::string& r :
       rows("SELECT type, name FROM sqlite_master WHERE type IN ('index', 'trigger') ORDER BY name"))
    out.push_back(r);
  sqlite3_close(db);
  return out;
}

}  // namespace

TEST_CASE("registry: a schema-1 registry goes through the migration table to the current schema") {
  TempDir dir;
  const std::string old_path = dir / "old.db", new_path = dir / "new.db";
  REQUIRE(raw_exec(old_path, schema1_sql()) == "");
  Registry::open(new_path, true);
  REQUIRE(schema_shape(old_path) != schema_shape(new_path));

  Registry r = Registry::open(old_path, false);
  CHECK(r.schema_version() == Registry::latest_schema_version());
  CHECK(Registry::open(new_path, false).schema_version() == Registry::latest_schema_version());
  // The same tables, columns, defaults, indexes and triggers as a registry made new.
  CHECK(schema_shape(old_path) == schema_shape(new_path));

  // Every record kept, the old model's embedding unmeasured and embedded.
  REQUIRE(r.users().size() == 1);
  CHECK(r.users()[0] == UserRecord{"alice", "2026-01-02T03:04:05Z", "active", 0});
  const std::optional<ModelRecord> m = r.model(model_id('a'));
  REQUIRE(m.has_value());
  CHECK(m->path == "runs/a.safetensors");
  CHECK(m->created == "2026-01-02T03:04:06Z");
  CHECK_FALSE(m->owner_detection.has_value());
  CHECK(m->embeddings == std::vector<EmbeddingRecord>{{"alice", std::nullopt, true}});

  // One event per step, after the old ones; the history reads them back.
  const std::vector<EventRecord> ev = r.events();
  const size_t steps = static_cast<size_t>(Registry::latest_schema_version() - 1);
  REQUIRE(ev.size() == 2 + steps);
  CHECK(ev[0].kind == "user.add");
  CHECK(ev[1].kind == "model.add");
  const std::vector<SchemaUpgrade> history = r.schema_history();
  REQUIRE(history.size() == steps);
  for (size_t i = 0; i < steps; ++i) {
    CAPTURE(i);
    CHECK(ev[2 + i].kind == "registry.upgrade");
    CHECK(history[i].from == static_cast<int64_t>(i) + 1);
    CHECK(history[i].to == static_cast<int64_t>(i) + 2);
    CHECK(history[i].time == ev[2 + i].time);
    CHECK_FALSE(history[i].description.empty());
  }
  CHECK(Registry::open(new_path, false).schema_history().empty());

  // Reopened: nothing left to do.
  const Registry again = Registry::open(old_path, false);
  CHECK(again.events().size() == ev.size());
  CHECK(again.schema_history() == history);
}

TEST_CASE("registry: a migration that fails part-way leaves the file as it was") {
  // Embeddings that already have a `detection` column: the step's first statement (a column
  // of models) goes through, its second fails.
  TempDir dir;
  const std::string path = dir / "odd.db";
  REQUIRE(raw_exec(path, schema1_sql("\n  detection REAL,")) == "");
  const std::vector<uint8_t> bytes = test::read_bytes(path);
  const std::vector<std::string> shape = schema_shape(path);
  const std::string err = error_of([&] { Registry::open(path, false); });
  INFO("error: " << err);
  CHECK(err.find(strfmt("has schema version 1 and could not be upgraded to %lld",
                        static_cast<long long>(Registry::latest_schema_version()))) != std::string::npos);
  CHECK(err.find("duplicate column name: detection") != std::string::npos);
  CHECK(test::read_bytes(path) == bytes);
  CHECK(schema_shape(path) == shape);  // models did not keep the first statement's column
}
