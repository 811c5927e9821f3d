// `activeip invert` through the real binary on the locked fixture model (tests/fixtures/locked):
// one JSON object with the per-position and best accuracies against the clean accuracy (and,
// with the owner's key, what the users' own lock patterns give), a human table, nothing written;
// a model that is not locked refused naming the file (exit 1), bad option values as usage
// errors (exit 2).
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/cli_util.h"

using namespace activeip;
using nlohmann::json;
using test::json_of;
using test::ok;
using test::rejected;
using test::TempDir;
using test::with;

namespace {

const std::vector<std::string> kBase = {"invert", "--model", "m.safetensors", "--data", "synthetic"};
// A short inversion: 5% of synthetic's training split, a few steps at two positions.
const std::vector<std::string> kInvert = with(kBase, {"--fraction", "0.05", "--steps", "8", "--batch", "16",
                                                      "--positions", "top-left", "center", "--seed", "3"});

}  // namespace

TEST_CASE("cli invert: the locked fixture's inversion report, as JSON and as a table, writing nothing") {
  TempDir dir;
  test::protected_model(dir, "locked");
  const auto before = dir.listing();
  const json j = json_of(ok(dir, with(kInvert, {"--json", "--key", "owner.key", "--registry", "users.db"})));
  CHECK(dir.listing() == before);
  CHECK(j["attack"] == "invert");
  CHECK(j["fraction"].get<double>() == doctest::Approx(0.05));
  CHECK(j["chance"].get<double>() == doctest::Approx(0.1));
  CHECK(j["steps"] == 8);
  CHECK(j["patch_size"] == 8);
  CHECK(j["attacker_records"].get<int64_t>() > 0);
  const double clean = j["clean_accuracy"].get<double>();
  CHECK(clean <= 0.15);
  REQUIRE(j["positions"].size() == 2);
  CHECK(j["positions"][0]["position"] == "top-left");
  CHECK(j["positions"][0]["top"] == 4);
  CHECK(j["positions"][1]["position"] == "center");
  CHECK(j["positions"][1]["left"] == 12);
  double best_attacker = 0;
  for (const json& p : j["positions"]) {
    for (const char* k : {"accuracy", "attacker_accuracy"}) {
      CHECK(p[k].get<double>() >= 0.0);
      CHECK(p[k].get<double>() <= 1.0);
    }
    best_attacker = std::max(best_attacker, p["attacker_accuracy"].get<double>());
  }
  const std::string best = j["best_position"];
  const json& chosen = j["positions"][best == "top-left" ? 0 : 1];
  CHECK(chosen["position"] == best);
  CHECK(chosen["attacker_accuracy"].get<double>() == best_attacker);
  CHECK(j["best_accuracy"].get<double>() == chosen["accuracy"].get<double>());
  // The users' own lock patterns, for reference: alice and bob unlock it (carol was revoked).
  REQUIRE(j["authorized"].size() == 2);
  for (const json& u : j["authorized"]) CHECK(u["accuracy"].get<double>() >= 0.99);

  // The same run as a table: the same figures, seeded.
  const test::CliRun t = ok(dir, kInvert);
  CHECK(t.out.find("best patch's test accuracy") != std::string::npos);
  CHECK(t.out.find(strfmt("%.4f at %s", j["best_accuracy"].get<double>(), best.c_str())) != std::string::npos);
  CHECK(t.out.find("no --key") != std::string::npos);
  CHECK(t.err.find("invert center: step 8/8") != std::string::npos);
  CHECK(dir.listing() == before);
}

TEST_CASE("cli invert: a model that is not locked is refused naming it, bad options are usage errors") {
  TempDir dir;
  test::protected_model(dir, "protected-v2");  // protected, not locked
  rejected(dir, kInvert, 1, {"m.safetensors", "is not a locked model"});
  rejected(dir, with(kBase, {"--fraction", "0"}), 2, {"--fraction"});
  rejected(dir, with(kBase, {"--fraction", "1.5"}), 2, {"--fraction"});
  rejected(dir, with(kBase, {"--steps", "0"}), 2, {"--steps"});
  rejected(dir, with(kBase, {"--lr", "-1"}), 2, {"--lr"});
  rejected(dir, with(kBase, {"--batch", "x"}), 2, {"--batch"});
  rejected(dir, with(kBase, {"--positions", "middle"}), 2, {"--positions", "middle"});
  rejected(dir, with(kBase, {"--registry", "users.db"}), 2, {"--registry", "--key"});
  rejected(dir, with(kBase, {"--bogus"}), 2, {"--bogus"});
  rejected(dir, {"invert", "--data", "synthetic"}, 2, {"--model"});
  rejected(dir, {"invert", "--model", "none.safetensors", "--data", "synthetic"}, 1, {"none.safetensors"});
}
