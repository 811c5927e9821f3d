// Distillation and overwriting through the real binary on the suite's protected synthetic model:
// distill writes a fresh, unprotected student, leaves the teacher's file as it was and
// reports the teacher's owner and users measured on the student; finetune --overwrite-key
// embeds the attacker's own trigger (its detection reported beside the original owner's) and
// the attacked copy records the attacker's key id, not the owner's; bad options exit 2
// naming the option and write nothing. train --fraction trains on the records the attacks take.
#include <doctest/doctest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/core/file_io.h"
#include "engine/data/dataset.h"
#include "fingerprint/protect.h"
#include "nets/model_io.h"
#include "tests/cli_util.h"

using namespace activeip;
using nlohmann::json;
using test::CliRun;
using test::ok;
using test::protected_model;
using test::read_text;
using test::rejected;
using test::TempDir;
using test::with;

namespace {

const std::vector<std::string> kProbe = {"--probes", "20", "--count", "20", "--forge-seed", "1", "--threads", "2"};

json report_of(const CliRun& r) {
  const json j = json::parse(r.out, nullptr, false);
  REQUIRE_MESSAGE(j.is_object(), "stdout is not one JSON object: " << r.out);
  for (const char* k : {"clean_accuracy", "original_accuracy", "accuracy_drop", "owner", "users", "forged", "attack"})
    CHECK_MESSAGE(j.contains(k), k);
  CHECK(j["users"]["count"] == 2);  // alice and bob, embedded in the original
  CHECK(j["forged"]["count"] == 20);
  CHECK(j["owner"].contains("verified"));
  const double acc = j["clean_accuracy"];
  CHECK(std::isfinite(acc));
  CHECK(acc >= 0);
  CHECK(acc <= 1);
  return j;
}

// The key id `activeip key new` prints.
std::string key_id_of(const CliRun& r) {
  const size_t at = r.out.find("key id ");
  REQUIRE(at != std::string::npos);
  return r.out.substr(at + 7, 16);
}

std::string protection_key_id(const std::string& model) {
  const SafetensorsReader file(model);
  const ModelMeta meta = ModelMeta::from_metadata(file.metadata(), model);
  REQUIRE_FALSE(meta.protection.empty());
  return ProtectionInfo::from_json(meta.protection, model).key_id;
}

}  // namespace

TEST_CASE("cli distill: a fresh student from the teacher's soft labels, the teacher's protection measured on it") {
  TempDir dir;
  protected_model(dir);
  const std::string teacher = read_text(dir / "m.safetensors");
  const json j = report_of(ok(dir, with({"distill",
                                         "--teacher",
                                         "m.safetensors",
                                         "--net",
                                         "convnet",
                                         "--out",
                                         "student.safetensors",
                                         "--data",
                                         "synthetic",
                                         "--limit-train",
                                         "256",
                                         "--limit-test",
                                         "64",
                                         "--fraction",
                                         "0.5",
                                         "--epochs",
                                         "1",
                                         "--batch",
                                         "32",
                                         "--lr",
                                         "0.05",
                                         "--temperature",
                                         "4",
                                         "--key",
                                         "owner.key",
                                         "--registry",
                                         "users.db",
                                         "--json"},
                                        kProbe)));
  CHECK(j["attack"]["kind"] == "distill");
  CHECK(j["attack"]["student_net"] == "convnet");
  CHECK(j["attack"]["temperature"] == 4.0);
  CHECK(j["attack"]["fraction"] == 0.5);
  CHECK(j["net"] == "convnet");
  CHECK(std::isfinite(j["original_accuracy"].get<double>()));
  CHECK(read_text(dir / "m.safetensors") == teacher);  // the teacher is only read

  // The student is a model of its own, with no protection record.
  Context ctx;
  const LoadedModel s = load_model(dir / "student.safetensors", ctx);
  CHECK(s.meta.net == "convnet");
  CHECK(s.meta.protection.empty());
  CHECK(s.meta.dataset == "synthetic");

  // Any registered net is a student; the text report names both accuracies.
  const CliRun r = ok(dir, with({"distill", "--teacher", "m.safetensors", "--net", "resnet20", "--out",
                                 "r20.safetensors", "--data", "synthetic", "--limit-train", "128", "--limit-test", "32",
                                 "--epochs", "1", "--batch", "32", "--fraction", "0.5"},
                                kProbe));
  CHECK(r.out.find("original accuracy") != std::string::npos);
  CHECK(r.err.find("agreement with the teacher") != std::string::npos);
  CHECK(load_model(dir / "r20.safetensors", ctx).meta.net == "resnet20");
}

TEST_CASE("cli finetune --overwrite-key: the attacker's trigger is embedded and the copy records its key") {
  TempDir dir;
  protected_model(dir);
  const std::string attacker = key_id_of(ok(dir, {"key", "new", "--out", "attacker.key"}));
  ok(dir, {"users", "add", "--registry", "attacker.db", "mallory"});
  const std::string owner = protection_key_id(dir / "m.safetensors");
  REQUIRE(owner != attacker);

  const json j = report_of(ok(dir, with({"finetune",
                                         "--model",
                                         "m.safetensors",
                                         "--mode",
                                         "ftal",
                                         "--out",
                                         "ow.safetensors",
                                         "--data",
                                         "synthetic",
                                         "--limit-train",
                                         "512",
                                         "--limit-test",
                                         "64",
                                         "--fraction",
                                         "1",
                                         "--epochs",
                                         "4",
                                         "--batch",
                                         "32",
                                         "--lr",
                                         "0.1",
                                         "--poison-rate",
                                         "0.3",
                                         "--key",
                                         "owner.key",
                                         "--registry",
                                         "users.db",
                                         "--overwrite-key",
                                         "attacker.key",
                                         "--overwrite-registry",
                                         "attacker.db",
                                         "--json"},
                                        kProbe)));
  // The original owner's report is still there (owner, alice and bob) ...
  CHECK(j["owner"]["target_label"].is_number());
  // ... and the attacker's own: its trigger embedded by the mixer, its user authenticated.
  REQUIRE(j.contains("attacker"));
  CHECK(j["attacker"]["key_id"] == attacker);
  CHECK(j["attack"]["overwrite"]["key_id"] == attacker);
  CHECK(j["attack"]["overwrite"]["users"] == json::array({"mallory"}));
  CHECK(j["attack"]["finetune"]["mixer"]["key_id"] == attacker);
  // The keys are fresh each run, so the trigger differs; one epoch embeds it to 0.75–1.0 in
  // trials. Chance is 1/10 (the probes exclude the target label), so 0.3 still proves the
  // mixer embedded it without hanging the test on a lucky key.
  const double detection = j["attacker"]["owner"]["detection_rate"];
  CHECK(detection >= 0.3);
  CHECK(j["attacker"]["users"]["count"] == 1);

  // The copy claims to be the attacker's: its protection record has the attacker's key id,
  // and the attacker's registry records it.
  CHECK(protection_key_id(dir / "ow.safetensors") == attacker);
  const CliRun show = ok(dir, {"users", "show", "--registry", "attacker.db", "mallory"});
  CHECK(show.out.find(j["attacker"]["model_id"].get<std::string>().substr(0, 16)) != std::string::npos);
}

// The digest of the training records a run names on stderr ("…, records 0123456789abcdef)").
std::string records_of(const CliRun& r) {
  const std::string mark = ", records ";
  const size_t at = r.err.find(mark);
  REQUIRE_MESSAGE(at != std::string::npos, "no records digest in: " << r.err);
  return r.err.substr(at + mark.size(), 16);
}

TEST_CASE("cli train --fraction: the records an attack with the same --fraction, --seed and --limit-train takes") {
  TempDir dir;
  protected_model(dir);
  const std::vector<std::string> data = {"--data", "synthetic", "--limit-train", "256", "--limit-test", "32",
                                         "--threads", "2", "--epochs", "1"};
  const std::vector<std::string> share = {"--fraction", "0.25", "--seed", "7"};
  const std::string ft = records_of(
      ok(dir, with(with({"finetune", "--model", "m.safetensors", "--mode", "ftll", "--out", "ft.safetensors"}, data),
                   share)));
  const std::string ds = records_of(ok(
      dir, with(with({"distill", "--teacher", "m.safetensors", "--net", "convnet", "--out", "ds.safetensors"}, data),
                share)));
  const CliRun trained =
      ok(dir, with(with({"train", "--net", "convnet", "--out", "scratch.safetensors"}, data), share));
  CHECK(records_of(trained) == ft);
  CHECK(records_of(trained) == ds);
  CHECK(trained.err.find("64 of 256 training records") != std::string::npos);
  // What is printed is the digest of seeded_subset's records of the first 256.
  const DataSplits splits = load_data(DataSpec{"synthetic", "", 256, 0});
  CHECK(records_of(trained) == records_digest(seeded_subset(splits.train, 0.25, 7)));
  // Another seed, another share.
  const std::string other = records_of(ok(
      dir, with(with({"train", "--net", "convnet", "--out", "other.safetensors", "--fraction", "0.25", "--seed", "8"},
                     data),
                {})));
  CHECK(other != ft);
  for (const std::string bad : {"0", "1.5", "x"})
    rejected(dir, with({"train", "--net", "convnet", "--out", "bad.safetensors", "--fraction", bad}, data),
             2, {"--fraction"});
}

TEST_CASE("cli distill and overwriting: bad options exit 2 naming the option") {
  TempDir dir;
  protected_model(dir);
  ok(dir, {"key", "new", "--out", "attacker.key"});
  const std::vector<std::string> d = {"distill",   "--teacher", "m.safetensors", "--data",
                                      "synthetic", "--out",     "s.safetensors"};
  rejected(dir, with(d, {"--net", "convnet", "--temperature", "0"}), 2, {"--temperature"});
  rejected(dir, with(d, {"--net", "convnet", "--fraction", "0"}), 2, {"--fraction"});
  rejected(dir, with(d, {"--net", "nosuchnet"}), 2, {"--net"});
  rejected(dir, with(d, {"--net", "convnet", "--epochs", "0"}), 2, {"--epochs"});
  rejected(
      dir,
      {"distill", "--teacher", "m.safetensors", "--net", "convnet", "--data", "synthetic", "--out", "m.safetensors"}, 2,
      {"--out"});
  const std::vector<std::string> f = {"finetune", "--model",   "m.safetensors", "--mode",       "ftal",
                                      "--data",   "synthetic", "--out",         "x.safetensors"};
  rejected(dir, with(f, {"--overwrite-key", "attacker.key"}), 2, {"--overwrite-key", "--overwrite-registry"});
  rejected(dir, with(f, {"--overwrite-registry", "attacker.db"}), 2, {"--overwrite-registry"});
  rejected(dir,
           with(f, {"--key", "owner.key", "--registry", "users.db", "--overwrite-key", "attacker.key",
                    "--overwrite-registry", "users.db"}),
           2, {"--overwrite-registry"});
  rejected(dir, with(f, {"--overwrite-key", "attacker.key", "--overwrite-registry", "a.db", "--poison-rate", "0"}), 2,
           {"--poison-rate"});
}
