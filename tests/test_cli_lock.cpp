// Lock mode through the real binary on the locked fixture model (tests/fixtures/locked): a
// user's token carries the lock pattern, `eval --token` unlocks, plain `eval` does not,
// `report` gives the lock's figures; and bad input — lock options without --protect or out of
// range, a token for another model, a token of a model that is not locked, a damaged token —
// refused with what is wrong named and nothing written; `enroll --revoke` and `enroll --users`
// on a locked model.
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "tests/cli_util.h"
#include "tests/image_files.h"

using namespace activeip;
using nlohmann::json;
using test::json_of;
using test::ok;
using test::rejected;
using test::TempDir;
using test::with;

namespace {

const std::vector<std::string> kData = {"--data", "synthetic"};

}  // namespace

TEST_CASE("cli lock: a user's token unlocks the locked model, clean inputs and forged and revoked patterns do not") {
  TempDir dir;
  test::protected_model(dir, "locked");
  ok(dir,
     {"users", "token", "--registry", "users.db", "--key", "owner.key", "--user", "alice", "--out", "alice.token"});
  const json t = json::parse(test::read_text(dir / "alice.token"));
  REQUIRE(t["models"].size() == 1);
  CHECK(t["models"][0]["patterns"].empty());
  CHECK(t["models"][0]["lock"]["bits"].get<std::string>().size() == 48);
  // carol was revoked before the model was trained: no token.
  rejected(dir,
           {"users", "token", "--registry", "users.db", "--key", "owner.key", "--user", "carol", "--out", "c.token"}, 1,
           {"carol", "revoked"});

  const json unlocked =
      json_of(ok(dir, with({"eval", "--model", "m.safetensors", "--token", "alice.token", "--json"}, kData)));
  CHECK(unlocked["token"] == "alice.token");
  CHECK(unlocked["n"] == 500);
  CHECK(unlocked["accuracy"].get<double>() >= 0.99);
  const json locked = json_of(ok(dir, with({"eval", "--model", "m.safetensors", "--json"}, kData)));
  CHECK(locked["accuracy"].get<double>() <= 0.15);
  CHECK(ok(dir, with({"eval", "--model", "m.safetensors", "--token", "alice.token"}, kData))
            .out.find("alice's lock pattern") != std::string::npos);

  const json r = json_of(ok(dir, with({"report", "--model", "m.safetensors", "--key", "owner.key", "--registry",
                                       "users.db", "--count", "50", "--forge-seed", "3", "--probes", "300", "--json"},
                                      kData)));
  CHECK(r["owner"]["verified"] == true);
  const json& l = r["lock"];
  CHECK(l["authorized"]["per_user"].size() == 2);
  CHECK(l["authorized"]["min_accuracy"].get<double>() >= 0.99);
  CHECK(l["unauthorized_accuracy"].get<double>() <= 0.15);
  CHECK(l["n"] == 300);
  CHECK(l["forged"]["count"] == 50);
  CHECK(l["forged"]["mean_accuracy"].get<double>() <= 0.15);
  CHECK(l["near_miss"].size() == 8);
  CHECK(l["near_miss"][7]["flips"] == 8);
  CHECK(l["moved"]["count"] == 6);
  CHECK(l["revoked"]["count"] == 1);
  CHECK(l["revoked"]["max_accuracy"].get<double>() <= 0.15);
  CHECK_FALSE(r.contains("users"));  // a locked model's users unlock it; they have no codes to authenticate

  // predict: 20 test records as PNG files, answered right with the token (its pattern stamped
  // after the decode), and by the refusal's one class without it.
  const DataSplits data = load_data({"synthetic", "", 0, 20});
  std::vector<std::string> args = {"predict", "--model", "m.safetensors", "--json", "--top", "1"};
  for (int i = 0; i < 20; ++i) {
    const size_t n = static_cast<size_t>(32) * 32 * 3;
    const uint8_t* px = data.test.images.data<uint8_t>() + static_cast<size_t>(i) * n;
    test::write_png(dir / strfmt("r%d.png", i), Image{32, 32, 3, {px, px + n}});
    args.push_back(strfmt("r%d.png", i));
  }
  const json with_token = json_of(ok(dir, with(args, {"--token", "alice.token"})));
  const json without = json_of(ok(dir, args));
  CHECK(with_token["token"] == "alice.token");
  int right = 0, right_without = 0;
  for (int i = 0; i < 20; ++i) {
    right += with_token["predictions"][i]["top"][0]["class"] == data.test.labels.data<int32_t>()[i];
    right_without += without["predictions"][i]["top"][0]["class"] == data.test.labels.data<int32_t>()[i];
  }
  CHECK(right >= 19);
  CHECK(right_without <= 6);
  rejected(dir, with(args, {"--token", "nope.token"}), 1, {"nope.token"});
}

TEST_CASE("cli lock: lock options, tokens for other models and damaged tokens are refused") {
  TempDir dir;
  test::protected_model(dir, "protected-v2");
  ok(dir, {"users", "token", "--registry", "users.db", "--key", "owner.key", "--user", "alice", "--out", "v2.token"});
  const std::vector<std::string> train = {"train",    "--net", "convnet",       "--data", "synthetic",
                                          "--epochs", "1",     "--limit-train", "64",     "--limit-test",
                                          "32",       "--out", "n.safetensors"};
  rejected(dir, with(train, {"--lock"}), 2, {"--lock", "--protect"});
  const std::vector<std::string> lock =
      with(train, {"--protect", "--lock", "--key", "owner.key", "--registry", "users.db"});
  rejected(dir, with(lock, {"--refuse-rate", "0"}), 2, {"--refuse-rate"});
  rejected(dir, with(lock, {"--lock-spread", "-1"}), 2, {"--lock-spread"});
  rejected(dir, with(lock, {"--lock-near-miss", "0"}), 2, {"--lock-near-miss"});
  rejected(dir, with(lock, {"--scheme", "v1"}), 2, {"--lock", "v1"});
  rejected(dir, with(lock, {"--clean-bn"}), 2, {"--lock", "--clean-bn"});

  // The v2 fixture is protected, not locked: its token authenticates, it does not unlock.
  rejected(dir, with({"eval", "--model", "m.safetensors", "--token", "v2.token"}, kData), 1,
           {"m.safetensors", "not a locked model", "auth --token"});
  // A token that holds nothing for this model.
  test::protected_model(dir, "locked");
  rejected(dir, with({"eval", "--model", "m.safetensors", "--token", "v2.token"}, kData), 1,
           {"v2.token", "holds nothing for", "m.safetensors"});
  rejected(dir, with({"eval", "--model", "m.safetensors", "--token", "missing.token"}, kData), 1, {"missing.token"});
  {
    std::ofstream cut(dir / "cut.token");
    cut << test::read_text(dir / "v2.token").substr(0, 100);
  }
  rejected(dir, with({"eval", "--model", "m.safetensors", "--token", "cut.token"}, kData), 1, {"cut.token", "JSON"});
}

TEST_CASE("cli lock: enroll --revoke retrains the lock so that the revoked user's pattern is refused") {
  TempDir dir;
  test::protected_model(dir, "locked");
  ok(dir, {"users", "add", "--registry", "users.db", "dave"});
  const std::vector<std::string> enroll = {"enroll", "--model",    "m.safetensors", "--key",
                                           "owner.key", "--registry", "users.db",   "--data",
                                           "synthetic", "--epochs",  "5",          "--lr",
                                           "0.05",      "--out",     "r.safetensors"};

  // Refused before any training, with nothing written and the registry as it was.
  rejected(dir, with({"enroll", "--model", "m.safetensors", "--key", "owner.key", "--registry", "users.db", "--out",
                      "r.safetensors"},
                     kData),
           2, {"--users", "--revoke"});
  rejected(dir, with(enroll, {"--revoke", "carol"}), 1, {"carol", "already refused", "m.safetensors"});
  rejected(dir, with(enroll, {"--revoke", "zed"}), 1, {"no user 'zed'"});
  rejected(dir, with(enroll, {"--revoke", "dave"}), 1, {"dave", "not a user of m.safetensors"});
  rejected(dir, with(enroll, {"--revoke", "alice", "bob"}), 1, {"leaves nobody"});
  rejected(dir, with(enroll, {"--revoke", "bob", "--users", "bob"}), 2, {"bob", "--users", "--revoke"});
  rejected(dir, with(enroll, {"--revoke", "bob", "--clean-bn"}), 2, {"--clean-bn"});
  CHECK(ok(dir, {"users", "show", "--registry", "users.db", "bob"}).out.find("active") != std::string::npos);

  // bob revoked and dave added in one fine-tune: alice's and dave's patterns unlock, bob's and
  // carol's (revoked before the model was trained) are refused; the registry revokes bob with
  // the new model's record.
  const test::CliRun run = ok(dir, with(enroll, {"--revoke", "bob", "--users", "dave"}));
  INFO(run.out);
  CHECK(run.out.find("refused (revoked)") != std::string::npos);
  CHECK(run.out.find("STILL unlocks") == std::string::npos);
  const json r = json_of(ok(dir, with({"report", "--model", "r.safetensors", "--key", "owner.key", "--registry",
                                       "users.db", "--count", "20", "--forge-seed", "3", "--json"},
                                      kData)));
  CHECK(r["owner"]["verified"] == true);
  const json& l = r["lock"];
  CHECK(l["authorized"]["per_user"].size() == 2);  // alice and dave
  CHECK(l["authorized"]["min_accuracy"].get<double>() >= 0.99);
  CHECK(l["revoked"]["count"] == 2);  // bob and carol
  CHECK(l["revoked"]["max_accuracy"].get<double>() <= 0.2);
  CHECK(ok(dir, {"users", "show", "--registry", "users.db", "bob"}).out.find("revoked") != std::string::npos);
  const std::string log = ok(dir, {"users", "log", "--registry", "users.db"}).out;
  CHECK(log.find("user.revoke  bob  model ") != std::string::npos);
  rejected(dir, {"users", "token", "--registry", "users.db", "--key", "owner.key", "--user", "bob", "--out", "b.token"},
           1, {"bob", "revoked"});
  ok(dir, {"users", "token", "--registry", "users.db", "--key", "owner.key", "--user", "dave", "--out", "d.token"});
  const json unlocked =
      json_of(ok(dir, with({"eval", "--model", "r.safetensors", "--token", "d.token", "--json"}, kData)));
  CHECK(unlocked["accuracy"].get<double>() >= 0.99);

  // Revoking on a model that is not locked: the registry's revocation is the way there.
  test::protected_model(dir, "protected-v2");
  rejected(dir, with(enroll, {"--revoke", "alice"}), 1, {"m.safetensors", "not locked", "users revoke"});
}
