// The owner's commands through the real binary: key new, users add|list|show|revoke,
// train --protect, auth, verify, forge, report and enroll on tiny synthetic runs (these
// check the plumbing, the JSON fields and the exit statuses; whether users really
// authenticate is test_protect.cpp's job), and bad input: every refusal names what is
// wrong, exits non-zero and changes no file.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/cli_util.h"

using namespace activeip;
using nlohmann::json;
using test::cli;
using test::CliRun;
using test::describe;
using test::ok;
using test::protected_model;
using test::rejected;
using test::TempDir;
using test::with;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kProbe = {"--data", "synthetic", "--limit-test", "100", "--probes", "20"};

json json_of(const CliRun& r) {
  const json j = json::parse(r.out, nullptr, false);
  REQUIRE_MESSAGE(j.is_object(), "stdout is not one JSON object: " << r.out);
  return j;
}

}  // namespace

TEST_CASE("cli protect: key new writes a 0600 key and never overwrites one") {
  TempDir dir;
  const CliRun r = ok(dir, {"key", "new", "--out", "owner.key"});
  CHECK(r.out.find("key id") != std::string::npos);
  struct stat st {};
  REQUIRE(stat((dir / "owner.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  const std::string before = test::read_text(dir / "owner.key");
  rejected(dir, {"key", "new", "--out", "owner.key"}, 1, {"owner.key", "already exists"});
  CHECK(test::read_text(dir / "owner.key") == before);
  rejected(dir, {"key", "new", "--out", "no/such/dir/k.key"}, 1, {"no/such/dir/k.key"});
  rejected(dir, {"key", "frobnicate"}, 2, {"frobnicate"});
}

TEST_CASE("cli protect: users add, list, show and revoke, and their refusals") {
  TempDir dir;
  rejected(dir, {"users", "list", "--registry", "users.db"}, 1, {"users.db", "does not exist"});
  rejected(dir, {"users", "add", "--registry", "users.db", "owner"}, 2, {"owner", "reserved"});
  rejected(dir, {"users", "add", "--registry", "users.db", "bad name"}, 2, {"bad name"});
  ok(dir, {"users", "add", "--registry", "users.db", "alice", "bob"});
  const std::string db = test::read_text(dir / "users.db");
  rejected(dir, {"users", "add", "--registry", "users.db", "carol", "alice"}, 1, {"alice", "already registered"});
  rejected(dir, {"users", "revoke", "--registry", "users.db", "zed"}, 1, {"zed"});
  rejected(dir, {"users", "show", "--registry", "users.db", "zed"}, 1, {"zed"});
  CHECK(test::read_text(dir / "users.db") == db);  // refusals wrote nothing

  json list = json_of(ok(dir, {"users", "list", "--registry", "users.db", "--json"}));
  REQUIRE(list["users"].size() == 2);
  CHECK(list["users"][0]["name"] == "alice");
  CHECK(list["users"][0]["status"] == "active");
  ok(dir, {"users", "revoke", "--registry", "users.db", "bob"});
  const json bob = json_of(ok(dir, {"users", "show", "--registry", "users.db", "bob", "--json"}));
  CHECK(bob["status"] == "revoked");
  CHECK(bob["models"].empty());
  rejected(dir, {"users", "revoke", "--registry", "users.db", "bob"}, 1, {"bob", "revoked"});
  const json log = json_of(ok(dir, {"users", "log", "--registry", "users.db", "--json"}));
  REQUIRE(log["events"].size() == 3);  // two additions and one revocation; refusals left no trace
  CHECK(log["events"][2]["kind"] == "user.revoke");
  CHECK(log["events"][2]["subject"] == "bob");

  test::write_bytes(dir / "junk.db", test::random_bytes(300, 3));
  rejected(dir, {"users", "add", "--registry", "junk.db", "carol"}, 1, {"junk.db", "not an activeip registry"});
}

TEST_CASE("cli protect: protected train, auth, verify, forge, report and enroll round trip") {
  TempDir dir;
  protected_model(dir);
  const json info = json_of(ok(dir, {"info", "--model", "m.safetensors", "--json"}));
  CHECK(info["protected"] == true);
  CHECK(info["protection"]["users"] == json({"alice", "bob"}));
  CHECK(info["protection"]["key_id"].get<std::string>().size() == 16);
  CHECK(test::read_text(dir / "m.safetensors").find(test::read_text(dir / "owner.key").substr(0, 64)) ==
        std::string::npos);  // never the key

  const std::vector<std::string> model = {"--model", "m.safetensors", "--key", "owner.key"};
  const std::vector<std::string> reg = {"--registry", "users.db"};
  // One epoch on 256 images embeds nothing reliably: auth and verify may refuse (exit 1), but
  // they must answer with the fields of DESIGN §4.
  const CliRun a = cli(dir, with(with(with({"auth", "--user", "alice", "--json"}, model), reg), kProbe));
  INFO(describe({"auth"}, a));
  REQUIRE((a.status == 0 || a.status == 1));
  const json auth = json_of(a);
  for (const char* k : {"user", "authenticated", "detection_rate", "target_label", "status", "n"})
    CHECK_MESSAGE(auth.contains(k), k);
  CHECK(auth["n"] == 20);
  CHECK(auth["status"] == "active");
  CHECK((auth["authenticated"] == (a.status == 0)));

  const CliRun v = cli(dir, with(with({"verify", "--json"}, model), kProbe));
  INFO(describe({"verify"}, v));
  REQUIRE((v.status == 0 || v.status == 1));
  const json ver = json_of(v);
  for (const char* k : {"verified", "detection_rate", "mean_confidence", "p_value", "target_label", "n"})
    CHECK_MESSAGE(ver.contains(k), k);

  const json forged =
      json_of(ok(dir, with(with(with({"forge", "--count", "5", "--forge-seed", "1", "--json"}, model), reg), kProbe)));
  CHECK(forged["count"] == 5);
  for (const char* k : {"passed", "pass_rate", "mean_detection", "max_detection"}) CHECK_MESSAGE(forged.contains(k), k);

  const json report = json_of(ok(
      dir, with(with(with({"report", "--baseline", "m.safetensors", "--count", "5", "--json"}, model), reg), kProbe)));
  for (const char* k : {"clean_accuracy", "baseline_accuracy", "accuracy_drop", "owner", "users", "forged"})
    CHECK_MESSAGE(report.contains(k), k);
  CHECK(report["accuracy_drop"] == 0.0);
  CHECK(report["users"]["count"] == 2);
  CHECK(report["owner"].contains("verified"));

  // enroll: carol joins through a short fine-tune; the new model records its parent.
  ok(dir, {"users", "add", "--registry", "users.db", "carol"});
  rejected(dir,
           {"enroll", "--model", "m.safetensors", "--key", "owner.key", "--registry", "users.db", "--users", "alice",
            "--out", "m2.safetensors", "--data", "synthetic"},
           1, {"alice", "already embedded"});
  rejected(dir,
           {"enroll", "--model", "m.safetensors", "--key", "owner.key", "--registry", "users.db", "--users", "zed",
            "--out", "m2.safetensors", "--data", "synthetic"},
           1, {"zed"});
  ok(dir, {"enroll",
           "--model",
           "m.safetensors",
           "--key",
           "owner.key",
           "--registry",
           "users.db",
           "--users",
           "carol",
           "--out",
           "m2.safetensors",
           "--data",
           "synthetic",
           "--limit-train",
           "128",
           "--limit-test",
           "64",
           "--epochs",
           "1",
           "--batch",
           "32"});
  const json info2 = json_of(ok(dir, {"info", "--model", "m2.safetensors", "--json"}));
  CHECK(info2["protection"]["users"] == json({"alice", "bob", "carol"}));
  CHECK(info2["protection"]["parent"].get<std::string>().size() == 64);
  const json carol = json_of(ok(dir, {"users", "show", "--registry", "users.db", "carol", "--json"}));
  CHECK(carol["models"].size() == 1);
  const json alice = json_of(ok(dir, {"users", "show", "--registry", "users.db", "alice", "--json"}));
  CHECK(alice["models"].size() == 2);  // the fine-tune kept alice in the mix: m2 embeds her too
}

TEST_CASE("cli protect: --owner-share reaches the mixer, which the log records") {
  TempDir dir;
  protected_model(dir);
  ok(dir, {"train", "--net", "convnet", "--data", "synthetic", "--epochs", "1", "--limit-train", "64", "--out",
           "x.safetensors", "--protect", "--key", "owner.key", "--registry", "users.db", "--owner-share", "0.25",
           "--log", "share.jsonl"});
  CHECK(test::read_text(dir / "share.jsonl").find(R"("owner_share":0.25)") != std::string::npos);
}

TEST_CASE("cli protect: refusals name what is wrong and write nothing") {
  TempDir dir;
  protected_model(dir);
  const std::vector<std::string> train = {"train", "--net",         "convnet", "--data", "synthetic",    "--epochs",
                                          "1",     "--limit-train", "64",      "--out",  "x.safetensors"};
  rejected(dir, with(train, {"--protect"}), 2, {"--key"});
  rejected(dir, with(train, {"--key", "owner.key"}), 2, {"--protect"});
  rejected(dir, with(train, {"--protect", "--key", "owner.key", "--registry", "none.db"}), 1,
           {"none.db", "does not exist"});
  rejected(dir, with(train, {"--protect", "--key", "owner.key", "--registry", "users.db", "--poison-rate", "0"}), 2,
           {"--poison-rate"});
  rejected(dir, with(train, {"--protect", "--key", "owner.key", "--registry", "users.db", "--owner-share", "1.5"}), 2,
           {"--owner-share", "1.5"});

  // A key readable by others is refused before anything is read.
  fs::copy_file(dir / "owner.key", dir / "open.key");
  fs::permissions(dir / "open.key", fs::perms::others_read, fs::perm_options::add);
  rejected(dir, with(with({"verify", "--model", "m.safetensors", "--key", "open.key"}, kProbe), {}), 1,
           {"open.key", "chmod 600"});

  // Another owner's key: verify and auth answer "no" and say why; forge refuses.
  ok(dir, {"key", "new", "--out", "other.key"});
  const std::vector<std::string> other = {"--model", "m.safetensors", "--key", "other.key"};
  const CliRun v = cli(dir, with(with({"verify", "--json"}, other), kProbe));
  CHECK(v.status == 1);
  CHECK(json_of(v)["verified"] == false);
  CHECK(json_of(v)["reason"].get<std::string>().find("not the key") != std::string::npos);
  const CliRun a = cli(dir, with(with({"auth", "--user", "alice", "--registry", "users.db", "--json"}, other), kProbe));
  CHECK(a.status == 1);
  CHECK(json_of(a)["authenticated"] == false);
  CHECK(json_of(a)["reason"].get<std::string>().find("not this model's key") != std::string::npos);
  rejected(dir, with(with({"forge", "--registry", "users.db"}, other), kProbe), 1, {"not the key"});

  // Unknown and revoked users are refused with authenticated = false.
  const std::vector<std::string> mine = {"--model", "m.safetensors", "--key", "owner.key", "--registry", "users.db"};
  const CliRun unknown = cli(dir, with(with({"auth", "--user", "zed", "--json"}, mine), kProbe));
  CHECK(unknown.status == 1);
  CHECK(json_of(unknown)["authenticated"] == false);
  CHECK(json_of(unknown)["status"] == "unregistered");
  ok(dir, {"users", "revoke", "--registry", "users.db", "bob"});
  const CliRun revoked = cli(dir, with(with({"auth", "--user", "bob"}, mine), kProbe));
  CHECK(revoked.status == 1);
  CHECK(revoked.out.find("revoked") != std::string::npos);
  rejected(dir, with(with({"auth", "--user", "bad name"}, mine), kProbe), 2, {"bad name"});
  rejected(dir, with(with({"verify", "--model", "m.safetensors", "--key", "owner.key", "--tau", "2"}, {}), kProbe), 2,
           {"--tau"});
  rejected(dir,
           {"verify", "--model", "m.safetensors", "--key", "owner.key", "--data", "fashion-mnist", "--data-dir", "."},
           1, {"28x28x1"});
}
