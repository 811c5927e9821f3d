// The attack commands through the real binary on the suite's protected synthetic model: prune
// (global, layer, filter, fineprune, with a masked fine-tune) and finetune (ftll, ftal, rtll, rtal)
// write the attacked model and its mask and report the protection (JSON fields checked);
// a pruned model fine-tuned later keeps its pruned weights at zero; bad options exit 2 naming
// the option and write nothing.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/train/mask.h"
#include "nets/model_io.h"
#include "tests/cli_util.h"

using namespace activeip;
using nlohmann::json;
using test::CliRun;
using test::ok;
using test::protected_model;
using test::rejected;
using test::TempDir;
using test::with;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kData = {"--data",    "synthetic", "--limit-train", "256", "--limit-test", "64",
                                        "--probes",  "20",        "--count",       "20",  "--forge-seed", "1",
                                        "--threads", "2"};

json report_of(const CliRun& r) {
  const json j = json::parse(r.out, nullptr, false);
  REQUIRE_MESSAGE(j.is_object(), "stdout is not one JSON object: " << r.out);
  for (const char* k : {"clean_accuracy", "original_accuracy", "accuracy_drop", "owner", "users", "forged", "attack"})
    CHECK_MESSAGE(j.contains(k), k);
  CHECK(j["users"]["count"] == 2);  // the users embedded in the original
  CHECK(j["forged"]["count"] == 20);
  CHECK(j["owner"].contains("verified"));
  return j;
}

}  // namespace

TEST_CASE("cli attack: prune by each method, and a later fine-tune keeps the mask") {
  TempDir dir;
  protected_model(dir);
  const std::vector<std::string> base =
      with({"--model", "m.safetensors", "--key", "owner.key", "--registry", "users.db", "--json"}, kData);
  for (const std::string method : {"global", "layer"}) {
    const std::string out = method + ".safetensors";
    const json j = report_of(ok(dir, with({"prune", "--method", method, "--sparsity", "0.4", "--out", out}, base)));
    CHECK(j["attack"]["method"] == method);
    const int64_t n = j["attack"]["prunable_weights"];
    if (method == "global") CHECK(j["attack"]["pruned_weights"] == std::llround(0.4 * static_cast<double>(n)));
    CHECK(fs::exists(dir / (method + ".mask.safetensors")));
  }
  const json f = report_of(ok(dir, with({"prune", "--method", "fineprune", "--sparsity", "0.25", "--finetune-epochs",
                                         "1", "--fraction", "0.5", "--out", "fp.safetensors"},
                                        base)));
  CHECK(f["attack"]["channels"] == 128);
  CHECK(f["attack"]["pruned_channels"].size() == 32);
  CHECK(f["attack"]["finetune"]["epochs"] == 1);

  // A fine-tune of the pruned model: the mask travels and its weights stay zero.
  const json t =
      report_of(ok(dir, with({"finetune", "--model", "global.safetensors", "--key", "owner.key", "--registry",
                              "users.db", "--json", "--mode", "ftal", "--epochs", "1", "--out", "gft.safetensors"},
                             kData)));
  CHECK(t["attack"]["masked"] == true);
  Context ctx;
  LoadedModel m = load_model(dir / "gft.safetensors", ctx);
  const Tensor mask = load_mask(dir / "gft.mask.safetensors", *m.net);
  CHECK(mask_violations(*m.net, ctx, mask) == 0);
  CHECK(mask_stats(*m.net, ctx, mask).pruned ==
        static_cast<int64_t>(std::llround(0.4 * static_cast<double>(mask_stats(*m.net, ctx, mask).candidates))));
}

TEST_CASE("cli attack: quantize reports the protection, and a pruned model's mask goes along") {
  TempDir dir;
  protected_model(dir);
  const std::vector<std::string> base = with({"--key", "owner.key", "--registry", "users.db", "--json"}, kData);
  const json q = report_of(
      ok(dir, with({"quantize", "--model", "m.safetensors", "--bits", "4", "--out", "q4.safetensors"}, base)));
  CHECK(q["attack"]["kind"] == "quantize");
  CHECK(q["attack"]["bits"] == 4);
  CHECK(q["attack"]["granularity"] == "channel");
  CHECK(q["attack"]["masked"] == false);
  CHECK(q["attack"]["relative_error"].get<double>() > 0);
  CHECK(!fs::exists(dir / "q4.mask.safetensors"));
  // int8 of a pruned model: the zeros stay zero and the mask is written beside the copy.
  ok(dir, {"prune", "--model", "m.safetensors", "--sparsity", "0.5", "--out", "p.safetensors"});
  const json pq = report_of(ok(dir, with({"quantize", "--model", "p.safetensors", "--out", "pq.safetensors"}, base)));
  CHECK(pq["attack"]["masked"] == true);
  Context ctx;
  LoadedModel m = load_model(dir / "pq.safetensors", ctx);
  CHECK(mask_violations(*m.net, ctx, load_mask(dir / "pq.mask.safetensors", *m.net)) == 0);
  rejected(dir, {"quantize", "--model", "m.safetensors", "--bits", "1", "--out", "x.safetensors"}, 2, {"--bits"});
  rejected(dir, {"quantize", "--model", "m.safetensors", "--out", "m.safetensors"}, 2, {"is the model being attacked"});
  rejected(dir, {"quantize", "--model", "m.safetensors", "--granularity", "row", "--out", "x.safetensors"}, 2,
           {"--granularity"});
}

TEST_CASE("cli attack: filter pruning writes a smaller model that every command loads") {
  TempDir dir;
  protected_model(dir);
  const std::vector<std::string> base =
      with({"--model", "m.safetensors", "--key", "owner.key", "--registry", "users.db", "--json"}, kData);
  const json j = report_of(ok(dir, with({"prune", "--method", "filter", "--sparsity", "0.5", "--finetune-epochs", "1",
                                         "--fraction", "0.5", "--out", "narrow.safetensors"},
                                        base)));
  CHECK(j["attack"]["filters"] == 32 + 64 + 128);  // convnet: every conv is a filter group
  CHECK(j["attack"]["removed_filters"] == 16 + 32 + 64);
  CHECK(j["attack"]["parameters"] < j["attack"]["original_parameters"]);
  CHECK(j["attack"]["finetune"]["epochs"] == 1);
  CHECK_FALSE(fs::exists(dir / "narrow.mask.safetensors"));
  CHECK(fs::file_size(dir / "narrow.safetensors") < fs::file_size(dir / "m.safetensors"));
  Context ctx;
  const LoadedModel m = load_model(dir / "narrow.safetensors", ctx);
  CHECK(m.meta.channels == std::map<std::string, int>{{"features.0", 16}, {"features.4", 32}, {"features.8", 64}});
  CHECK(m.net->num_parameters() == j["attack"]["parameters"]);
  // The narrower model goes on to the other commands like any other.
  report_of(ok(dir, with({"finetune", "--model", "narrow.safetensors", "--key", "owner.key", "--registry", "users.db",
                          "--json", "--mode", "ftll", "--epochs", "1", "--out", "narrow-ft.safetensors"},
                         kData)));
  ok(dir, {"eval", "--model", "narrow-ft.safetensors", "--data", "synthetic", "--limit-test", "64", "--threads", "2"});
}

TEST_CASE("cli attack: finetune in each mode reports the protection") {
  TempDir dir;
  protected_model(dir);
  for (const std::string mode : {"ftll", "ftal", "rtll", "rtal"}) {
    const json j =
        report_of(ok(dir, with({"finetune",   "--model",    "m.safetensors", "--key",  "owner.key",
                                "--registry", "users.db",   "--json",        "--mode", mode,
                                "--epochs",   "1",          "--fraction",    "0.33",   "--lr",
                                "0.05",       "--schedule", "cosine",        "--out",  mode + ".safetensors"},
                               kData)));
    CHECK(j["attack"]["mode"] == mode);
    CHECK(j["attack"]["trained"] == (mode == "ftll" || mode == "rtll" ? "fc.*" : "all"));
    CHECK_FALSE(fs::exists(dir / (mode + ".mask.safetensors")));
  }
  // Without --key the report has the accuracies only (text).
  const CliRun r =
      ok(dir,
         with({"finetune", "--model", "m.safetensors", "--mode", "ftll", "--epochs", "1", "--out", "plain.safetensors"},
              kData));
  CHECK(r.out.find("original accuracy") != std::string::npos);
  CHECK(r.out.find("not measured") != std::string::npos);
}

TEST_CASE("cli attack: bad options exit 2 naming the option") {
  TempDir dir;
  protected_model(dir);
  const std::vector<std::string> m = {"--model", "m.safetensors", "--data", "synthetic", "--out", "x.safetensors"};
  rejected(dir, with({"prune", "--sparsity", "1.5"}, m), 2, {"--sparsity"});
  rejected(dir, with({"prune", "--method", "filters"}, m), 2, {"--method"});
  rejected(dir, with({"finetune", "--mode", "bogus"}, m), 2, {"--mode"});
  rejected(dir, with({"finetune", "--mode", "ftll", "--fraction", "0"}, m), 2, {"--fraction"});
  rejected(dir, with({"finetune", "--mode", "ftll", "--epochs", "0"}, m), 2, {"--epochs"});
  rejected(dir, {"prune", "--model", "m.safetensors", "--data", "synthetic", "--out", "m.safetensors"}, 2, {"--out"});
  rejected(dir, with({"prune", "--registry", "users.db"}, m), 2, {"--registry needs --key"});
}

TEST_CASE("cli attack: transform reports the protection behind the attacker's preprocessing and writes nothing") {
  TempDir dir;
  protected_model(dir);
  const std::vector<std::string> base =
      with({"transform", "--model", "m.safetensors", "--key", "owner.key", "--registry", "users.db", "--json"}, kData);
  const auto before = dir.listing();
  // bits:8 is the identity on uint8 images: the model's own figures, as verify measures them.
  const json same = report_of(ok(dir, with(base, {"--transform", "bits:8"})));
  CHECK(same["attack"] == json{{"kind", "transform"}, {"transforms", {"bits:8"}}, {"seed", 0}});
  CHECK(same["out"].is_null());
  CHECK(same["measured"] == true);
  CHECK(same["clean_accuracy"] == same["original_accuracy"]);
  CHECK(same["accuracy_drop"] == 0.0);
  const json v = json::parse(ok(dir, {"verify", "--model", "m.safetensors", "--key", "owner.key", "--data", "synthetic",
                                      "--limit-test", "64", "--probes", "20", "--threads", "2", "--json"})
                                 .out);
  CHECK(same["owner"]["detection_rate"] == v["detection_rate"]);
  CHECK(same["owner"]["verified"] == v["verified"]);
  CHECK(same["users"]["authenticated"] == 2);

  // A chain, in order, with its seed; the same seed gives the same report.
  const std::vector<std::string> chain = with(base, {"--transform", "flip", "--transform", "shift:2", "--seed", "3"});
  const json a = report_of(ok(dir, chain));
  CHECK(a["attack"]["transforms"] == json{"flip", "shift:2"});
  CHECK(a["attack"]["seed"] == 3);
  const json b = report_of(ok(dir, chain));
  for (const char* k : {"clean_accuracy", "owner", "users", "forged"}) CHECK(a[k] == b[k]);
  // Shifted by up to 200 pixels, nearly every input (clean or stamped) is black: whatever the
  // model answers, the trigger is no longer what decides it, so the owner cannot be verified.
  const json dark = report_of(ok(dir, with(base, {"--transform", "shift:200"})));
  CHECK(dark["owner"]["verified"] == false);
  CHECK(same["owner"]["verified"] == true);
  CHECK(dir.listing() == before);  // no model, no mask

  // The text report says what was put in front and that nothing was written.
  const CliRun text = ok(dir, {"transform", "--model", "m.safetensors", "--transform", "median:3", "--data",
                               "synthetic", "--limit-test", "64", "--threads", "2"});
  CHECK(text.out.find("behind median:3") != std::string::npos);
  CHECK(text.out.find("no model written") != std::string::npos);
  CHECK(ok(dir, {"transform", "--help"}).out.find("no model is written") != std::string::npos);

  // Nonsense specs: exit 1 naming the spec and what is allowed, nothing written.
  for (const std::string bad : {"shift:-1", "median:2", "jpeg:0", "jpeg:101", "foo"})
    rejected(dir, with(base, {"--transform", bad}), 1, {"'" + bad + "'", "flip, shift:N"});
  rejected(dir, with(base, {"--transform", "shrinkpad:40"}), 1, {"shrinkpad:40", "below 32"});
}
