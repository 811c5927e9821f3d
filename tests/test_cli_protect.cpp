// The owner's commands through the real binary: key new, users add|list|show|revoke,
// train --protect, auth, verify, forge, report and enroll on the suite's protected synthetic
// model and short runs (these check the plumbing, the JSON fields and the exit statuses;
// whether training embeds users is test_protect.cpp's job and the end of this file's), and
// bad input: every refusal names what is wrong, exits non-zero and changes no file.
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
using test::json_of;
using test::ok;
using test::protected_model;
using test::protected_training;
using test::rejected;
using test::TempDir;
using test::with;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kProbe = {"--data", "synthetic", "--limit-test", "100", "--probes", "20"};

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
  // The model embeds alice and the owner: auth and verify pass, with the fields of DESIGN §4.
  const CliRun a = cli(dir, with(with(with({"auth", "--user", "alice", "--json"}, model), reg), kProbe));
  INFO(describe({"auth"}, a));
  REQUIRE(a.status == 0);
  const json auth = json_of(a);
  for (const char* k : {"user", "authenticated", "detection_rate", "target_label", "status", "n"})
    CHECK_MESSAGE(auth.contains(k), k);
  CHECK(auth["n"] == 20);
  CHECK(auth["status"] == "active");
  CHECK(auth["authenticated"] == true);

  const CliRun v = cli(dir, with(with({"verify", "--json"}, model), kProbe));
  INFO(describe({"verify"}, v));
  REQUIRE(v.status == 0);
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
  CHECK(report["users"]["authenticated"] == 2);
  CHECK(report["owner"].contains("verified"));
  CHECK(report["owner"]["scheme"] == "v1");
  CHECK_FALSE(report.contains("insiders"));  // only when asked for
  // --insiders: alice's patterns presented as bob and bob's as alice, in every form; the v1
  // fixture's patterns sit 1 pixel from the edges, so shifts stop at 1.
  const json insiders = json_of(
      ok(dir, with(with(with({"report", "--count", "5", "--insiders", "--json"}, model), reg), kProbe)))["insiders"];
  CHECK(insiders["users"] == 2);
  CHECK(insiders["max_shift"] == 1);
  CHECK(insiders["variants"] == 2 + 3 + 4);
  CHECK(insiders["claims"] == 2 * 9);
  CHECK(insiders["passed"] == 0);

  // enroll: carol joins through a short fine-tune; the new model records its parent.
  ok(dir, {"users", "add", "--registry", "users.db", "carol"});
  rejected(dir,
           {"enroll", "--model", "m.safetensors", "--key", "owner.key", "--registry", "users.db", "--users", "zed",
            "--out", "m2.safetensors", "--data", "synthetic"},
           1, {"zed"});
  const auto enroll_carol = [](const std::string& out) {
    return std::vector<std::string>{"enroll",
                                    "--model",
                                    "m.safetensors",
                                    "--key",
                                    "owner.key",
                                    "--registry",
                                    "users.db",
                                    "--users",
                                    "carol",
                                    "--out",
                                    out,
                                    "--data",
                                    "synthetic",
                                    "--limit-train",
                                    "128",
                                    "--limit-test",
                                    "64",
                                    "--epochs",
                                    "1",
                                    "--batch",
                                    "32"};
  };
  protected_training(dir, enroll_carol("m2.safetensors"));
  // --resume continues an enroll's own checkpoint (complete here) and refuses any other model.
  CHECK(protected_training(dir, with(enroll_carol("m2.safetensors"), {"--resume"})).out.find("nothing to do") !=
        std::string::npos);
  rejected(dir, with(enroll_carol("m.safetensors"), {"--resume"}), 1,
           {"m.safetensors is not an enroll of m.safetensors"});
  const json info2 = json_of(ok(dir, {"info", "--model", "m2.safetensors", "--json"}));
  CHECK(info2["protection"]["users"] == json({"alice", "bob", "carol"}));
  CHECK(info2["protection"]["parent"].get<std::string>().size() == 64);
  // Every model a user was trained into has its measured detection in the registry.
  const json carol = json_of(ok(dir, {"users", "show", "--registry", "users.db", "carol", "--json"}));
  REQUIRE(carol["embeddings"].size() == 1);
  CHECK(carol["embeddings"][0]["detection"].is_number());
  const json alice = json_of(ok(dir, {"users", "show", "--registry", "users.db", "alice", "--json"}));
  CHECK(alice["embeddings"].size() == 2);  // the fine-tune kept alice in the mix: m2 trains her too
}

TEST_CASE("cli protect: --owner-share, --clean-bn and --simulate-attack reach the training, which the log records") {
  TempDir dir;
  protected_model(dir);
  protected_training(dir, {"train",
                           "--net",
                           "convnet",
                           "--data",
                           "synthetic",
                           "--epochs",
                           "1",
                           "--limit-train",
                           "64",
                           "--out",
                           "x.safetensors",
                           "--protect",
                           "--key",
                           "owner.key",
                           "--registry",
                           "users.db",
                           "--owner-share",
                           "0.25",
                           "--clean-bn",
                           "--log",
                           "share.jsonl",
                           "--simulate-attack",
                           "1",
                           "--simulate-steps",
                           "2"});
  const std::string log = test::read_text(dir / "share.jsonl");
  CHECK(log.find(R"("owner_share":0.25)") != std::string::npos);
  CHECK(log.find(R"("clean_bn":true)") != std::string::npos);
  CHECK(log.find(R"("simulated_attack":{"every":1,)") != std::string::npos);
}

TEST_CASE("cli protect: refusals name what is wrong and write nothing") {
  TempDir dir;
  protected_model(dir);
  const std::vector<std::string> train = {"train", "--net",         "convnet", "--data", "synthetic",    "--epochs",
                                          "1",     "--limit-train", "64",      "--out",  "x.safetensors"};
  rejected(dir, with(train, {"--protect"}), 2, {"--key"});
  rejected(dir, with(train, {"--key", "owner.key"}), 2, {"--protect"});
  rejected(dir, with(train, {"--clean-bn"}), 2, {"--clean-bn", "--protect"});
  rejected(dir, with(train, {"--simulate-attack", "5"}), 2, {"--simulate-attack", "--protect"});
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

// ---------------------------------------------------------------------------------------
// Protected training reports what it embedded (DESIGN §3): every pattern's detection on
// held-out probes at the end, one line each, a log record and the registry's embeddings; a
// pattern below τ is not recorded as embedded, and the command exits 3 with the model written.

namespace {

const std::vector<std::string> kFiveUsers = {"alice", "bob", "carol", "dave", "erin"};

// The demo's key, five users and schedule (scripts/demo.sh), `epochs` long, writing `out`.
std::vector<std::string> demo_training(const TempDir& dir, const std::string& epochs, const std::string& out) {
  ok(dir, {"key", "new", "--out", "owner.key"});
  ok(dir, with({"users", "add", "--registry", "users.db"}, kFiveUsers));
  return {"train", "--net", "convnet", "--data",     "synthetic", "--epochs",  epochs,       "--batch",
          "64",    "--lr",  "0.1",     "--schedule", "onecycle",  "--seed",    "1",          "--out",
          out,     "--log", "l.jsonl", "--protect",  "--key",     "owner.key", "--registry", "users.db"};
}

// The log's last record: what the end of training measured.
json embedding_record(const TempDir& dir) {
  const std::string text = test::read_text(dir / "l.jsonl");
  REQUIRE(text.size() > 1);
  const size_t start = text.rfind('\n', text.size() - 2);
  const json j = json::parse(text.substr(start == std::string::npos ? 0 : start + 1), nullptr, false);
  REQUIRE(j.is_object());
  CHECK(j["event"] == "embedding");
  REQUIRE(j["users"].size() == kFiveUsers.size());
  return j;
}

// The line `train` printed for a pattern.
std::string pattern_line(const std::string& out, const std::string& name) {
  const size_t at = out.find("\n  " + name + " ");
  REQUIRE_MESSAGE(at != std::string::npos, "no line for " << name << " in:\n" << out);
  return out.substr(at + 1, out.find('\n', at + 1) - at - 1);
}

// Each user's line, log entry and registry record agree.
void check_recorded(const TempDir& dir, const CliRun& r, const json& measured) {
  for (const json& u : measured["users"]) {
    const std::string name = u["user"].get<std::string>();
    CAPTURE(name);
    const bool embedded = u["embedded"].get<bool>();
    CHECK(embedded == (u["detection_rate"].get<double>() >= measured["tau"].get<double>()));
    const std::string line = pattern_line(r.out, name);
    CHECK(line.find(strfmt("detection %.3f", u["detection_rate"].get<double>())) != std::string::npos);
    CHECK((line.find("NOT embedded") == std::string::npos) == embedded);
    const json shown = json_of(ok(dir, {"users", "show", "--registry", "users.db", name, "--json"}));
    REQUIRE(shown["embeddings"].size() == 1);
    CHECK(shown["embeddings"][0]["detection"] == u["detection_rate"]);
    CHECK(shown["embeddings"][0]["embedded"] == embedded);
    CHECK(shown["models"].size() == (embedded ? 1u : 0u));
  }
  const std::string owner = pattern_line(r.out, "owner");
  CHECK((owner.find("NOT embedded") == std::string::npos) == measured["owner"]["embedded"].get<bool>());
}

}  // namespace

TEST_CASE("cli protect: one epoch of protected training exits 3 and names every pattern that fell short") {
  TempDir dir;
  const std::vector<std::string> train = demo_training(dir, "1", "m.safetensors");
  const CliRun r = cli(dir, train);
  INFO(describe(train, r));
  REQUIRE(r.signal == 0);
  CHECK(r.status == 3);
  CHECK(fs::is_regular_file(dir / "m.safetensors"));  // the work is not lost
  const json measured = embedding_record(dir);
  CHECK(measured["complete"] == false);
  check_recorded(dir, r, measured);

  std::vector<std::string> short_of;
  for (const json& u : measured["users"])
    if (!u["embedded"].get<bool>()) short_of.push_back(u["user"].get<std::string>());
  REQUIRE(!short_of.empty());
  CHECK(r.out.find("protection incomplete") != std::string::npos);
  const size_t named = r.out.find("recorded as not embedded");
  REQUIRE(named != std::string::npos);
  const std::string shortfall = r.out.substr(named, r.out.find('\n', named) - named);
  for (const std::string& u : short_of) CHECK_MESSAGE(shortfall.find(u) != std::string::npos, u);
  CHECK(r.out.find("--epochs") != std::string::npos);
  CHECK(r.out.find("--poison-rate") != std::string::npos);

  // The registry refuses a user who fell short, and says why.
  const std::string user = short_of.front();
  const std::vector<std::string> auth = {"auth",     "--model", "m.safetensors", "--key",  "owner.key", "--registry",
                                         "users.db", "--data",  "synthetic",     "--user", user,        "--json"};
  const CliRun a = cli(dir, auth);
  INFO(describe(auth, a));
  CHECK(a.status == 1);
  const json refused = json_of(a);
  CHECK(refused["authenticated"] == false);
  CHECK(refused["reason"].get<std::string>().find("not embedded in this model (detection") != std::string::npos);
  CHECK(refused["reason"].get<std::string>().find("at the end of training)") != std::string::npos);
  CHECK(ok(dir, {"users", "show", "--registry", "users.db", user}).out.find("not embedded in this model (detection") !=
        std::string::npos);

  // --resume of the finished run measures again instead of failing, and changes nothing.
  const auto model = test::read_bytes(dir / "m.safetensors");
  const json events = json_of(ok(dir, {"users", "log", "--registry", "users.db", "--json"}))["events"];
  const CliRun again = cli(dir, with(train, {"--resume"}));
  INFO(describe({"train --resume"}, again));
  CHECK(again.status == 3);
  CHECK(again.out.find("nothing to do") != std::string::npos);
  CHECK(pattern_line(again.out, user) == pattern_line(r.out, user));
  CHECK(test::read_bytes(dir / "m.safetensors") == model);
  CHECK(json_of(ok(dir, {"users", "log", "--registry", "users.db", "--json"}))["events"] == events);

  // A user who fell short is not embedded, so enroll takes them again.
  protected_training(dir, {"enroll", "--model", "m.safetensors", "--key", "owner.key", "--registry", "users.db",
                           "--users", user, "--out", "m2.safetensors", "--data", "synthetic", "--limit-train", "128",
                           "--epochs", "1", "--batch", "32"});
  CHECK(json_of(ok(dir, {"users", "show", "--registry", "users.db", user, "--json"}))["embeddings"].size() == 2);
}

TEST_CASE("cli protect: the demo's recipe embeds every pattern and exits 0") {
  TempDir dir;
  const std::vector<std::string> train =
      with(demo_training(dir, "20", "m.safetensors"), {"--poison-rate", "0.3", "--forged-rate", "0.1"});
  const CliRun r = cli(dir, train);
  INFO(describe(train, r));
  REQUIRE(r.signal == 0);
  CHECK(r.status == 0);
  CHECK(r.out.find("NOT embedded") == std::string::npos);
  CHECK(r.out.find("protection incomplete") == std::string::npos);
  const json measured = embedding_record(dir);
  CHECK(measured["complete"] == true);
  CHECK(measured["owner"]["embedded"] == true);
  check_recorded(dir, r, measured);
  for (const json& u : measured["users"]) CHECK(u["embedded"] == true);

  ok(dir, {"auth", "--model", "m.safetensors", "--key", "owner.key", "--registry", "users.db", "--data", "synthetic",
           "--user", "carol"});
  rejected(dir,
           {"enroll", "--model", "m.safetensors", "--key", "owner.key", "--registry", "users.db", "--users", "alice",
            "--out", "m2.safetensors", "--data", "synthetic"},
           1, {"alice", "already embedded"});
}
