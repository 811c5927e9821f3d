// `users token` and `auth --token` through the real binary on the v2 fixture model: the token
// written once with mode 0600, its user authenticated without the owner key, another user's
// token and a revoked user refused, and bad input — the usage errors, a truncated or foreign
// token, an existing output, a revoked or unknown user — refused with what is wrong named and
// no file written.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <fstream>
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
using test::rejected;
using test::TempDir;
using test::with;

namespace {

const std::vector<std::string> kProbe = {"--data", "synthetic", "--limit-test", "300", "--probes", "40"};

std::vector<std::string> token_auth(const std::string& token, const std::string& user) {
  return with(
      {"auth", "--model", "m.safetensors", "--registry", "users.db", "--user", user, "--token", token, "--json"},
      kProbe);
}

}  // namespace

TEST_CASE("cli token: users token and auth --token, end to end without the key") {
  TempDir dir;
  test::protected_model(dir, "protected-v2");
  const CliRun w = ok(dir, {"users", "token", "--registry", "users.db", "--key", "owner.key", "--user", "alice",
                            "--out", "alice.token"});
  CHECK(w.out.find("alice.token") != std::string::npos);
  struct stat st {};
  REQUIRE(stat((dir / "alice.token").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  const json t = json::parse(test::read_text(dir / "alice.token"));
  CHECK(t["format"] == "activeip-token");
  CHECK(t["user"] == "alice");
  CHECK(t["models"].size() == 1);
  CHECK(t["models"][0]["patterns"].size() == 2);
  ok(dir, {"users", "token", "--registry", "users.db", "--key", "owner.key", "--user", "bob", "--out", "bob.token"});

  // Never overwritten: the same command again is refused and the file keeps its bytes.
  const std::string before = test::read_text(dir / "alice.token");
  rejected(dir,
           {"users", "token", "--registry", "users.db", "--key", "owner.key", "--user", "bob", "--out", "alice.token"},
           1, {"alice.token", "already exists"});
  CHECK(test::read_text(dir / "alice.token") == before);

  // Its user passes, with no key on the command line.
  const CliRun pass = ok(dir, token_auth("alice.token", "alice"));
  const json j = json_of(pass);
  CHECK(j["authenticated"] == true);
  CHECK(j["user"] == "alice");
  CHECK(j["status"] == "active");
  CHECK(j["token"] == "alice.token");
  CHECK(j["presented_by"] == "alice");
  CHECK(j["n"] == 40);
  CHECK(j["detection_rate"].get<double>() >= 0.8);
  CHECK(j.contains("target_label"));
  const CliRun text = ok(
      dir, with({"auth", "--model", "m.safetensors", "--registry", "users.db", "--user", "bob", "--token", "bob.token"},
                kProbe));
  CHECK(text.out.find("AUTHENTICATED") != std::string::npos);

  // Alice's token presented as bob: refused, exit 1, one JSON object saying why.
  const CliRun as_bob = cli(dir, token_auth("alice.token", "bob"));
  INFO(describe(token_auth("alice.token", "bob"), as_bob));
  CHECK(as_bob.status == 1);
  const json k = json_of(as_bob);
  CHECK(k["authenticated"] == false);
  CHECK(k["presented_by"] == "alice");
  CHECK(k["reason"].get<std::string>().find("issued to 'alice'") != std::string::npos);

  // Revoked: her token stops working, and she gets no new one.
  ok(dir, {"users", "revoke", "--registry", "users.db", "alice"});
  const CliRun revoked = cli(dir, token_auth("alice.token", "alice"));
  CHECK(revoked.status == 1);
  CHECK(json_of(revoked)["status"] == "revoked");
  rejected(dir,
           {"users", "token", "--registry", "users.db", "--key", "owner.key", "--user", "alice", "--out", "new.token"},
           1, {"alice", "revoked"});
  rejected(dir,
           {"users", "token", "--registry", "users.db", "--key", "owner.key", "--user", "zed", "--out", "zed.token"}, 1,
           {"zed"});
  // bob is still fine.
  CHECK(json_of(ok(dir, token_auth("bob.token", "bob")))["authenticated"] == true);
}

TEST_CASE("cli token: usage errors and bad tokens are refused, naming what is wrong") {
  TempDir dir;
  test::protected_model(dir, "protected-v2");
  ok(dir, {"users", "token", "--registry", "users.db", "--key", "owner.key", "--user", "carol", "--out", "c.token"});
  const std::vector<std::string> base = with({"auth", "--model", "m.safetensors", "--registry", "users.db"}, kProbe);
  rejected(dir, with(base, {"--user", "carol"}), 2, {"--key", "--token"});
  rejected(dir, with(base, {"--user", "carol", "--key", "owner.key", "--token", "c.token"}), 2,
           {"--key", "--token", "exclude"});
  rejected(dir, with(base, {"--user", "owner", "--token", "c.token"}), 2, {"reserved"});
  rejected(dir, {"users", "token", "--registry", "users.db", "--key", "owner.key", "--out", "x.token"}, 2, {"--user"});
  rejected(dir, {"users", "token", "--registry", "users.db", "--key", "owner.key", "--user", "bad name", "--out", "x"},
           2, {"bad name"});

  const std::string good = test::read_text(dir / "c.token");
  {
    std::ofstream(dir / "cut.token") << good.substr(0, good.size() / 3);
    json foreign = json::parse(good);
    foreign["key_id"] = "0123456789abcdef";
    std::ofstream(dir / "foreign.token") << foreign.dump();
    std::ofstream(dir / "v7.token") << R"({"format": "activeip-token", "version": 7})";
  }
  rejected(dir, with(base, {"--user", "carol", "--token", "cut.token"}), 1, {"cut.token", "truncated"});
  rejected(dir, with(base, {"--user", "carol", "--token", "m.safetensors"}), 1, {"m.safetensors", "not JSON"});
  rejected(dir, with(base, {"--user", "carol", "--token", "v7.token"}), 1, {"v7.token", "version 7"});
  rejected(dir, with(base, {"--user", "carol", "--token", "foreign.token"}), 1, {"foreign.token", "another key"});
  rejected(dir, with(base, {"--user", "carol", "--token", "missing.token"}), 1, {"missing.token"});
  CHECK(json_of(ok(dir, token_auth("c.token", "carol")))["authenticated"] == true);
}
