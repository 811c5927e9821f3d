// What a first-time user hit (issue 15), through the real binary: the commands that read only
// the test split accept a folder holding only the test files (and still name a missing one);
// `report` without --baseline reports everything but the accuracy drop; magnitude and filter
// pruning without --data prune, write and measure nothing, while fineprune and a fine-tune
// still ask for --data; --threads is honoured and the thread count said (bench train, train,
// eval, prune). Every data file is written here, tiny.
#include <doctest/doctest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/core/context.h"
#include "engine/io/checkpoint.h"
#include "nets/nets.h"
#include "tests/cli_util.h"

using namespace activeip;
using nlohmann::json;
using test::cli;
using test::CliRun;
using test::describe;
using test::json_of;
using test::ok;
using test::protected_model;
using test::rejected;
using test::TempDir;
using test::with;
namespace fs = std::filesystem;

namespace {

// A freshly initialised convnet checkpoint for H×W×C images, written through the library.
void write_model(const TempDir& dir, const std::string& name, const NetSpec& spec) {
  Context ctx;
  auto net = make_net("convnet", spec);
  net->build(ctx, 3);
  const ModelMeta meta = ModelMeta::describe(
      *net, "synthetic", {std::vector<float>(size_t(spec.C), 0.5f), std::vector<float>(size_t(spec.C), 0.25f)});
  save_model(dir / name, *net, ctx, meta);
}

std::vector<uint8_t> random_pixels(size_t n, std::mt19937_64& rng) {
  std::vector<uint8_t> v(n);
  for (uint8_t& b : v) b = static_cast<uint8_t>(rng() & 0xff);
  return v;
}

// CIFAR-10's test_batch.bin alone: `n` 3073-byte records (label byte, then planar RGB 32×32).
void write_cifar10_test_only(const fs::path& folder, int n) {
  fs::create_directories(folder);
  std::mt19937_64 rng(10);
  std::vector<uint8_t> bytes;
  for (int i = 0; i < n; ++i) {
    bytes.push_back(static_cast<uint8_t>(i % 10));
    const std::vector<uint8_t> px = random_pixels(3 * 32 * 32, rng);
    bytes.insert(bytes.end(), px.begin(), px.end());
  }
  test::write_bytes((folder / "test_batch.bin").string(), bytes);
}

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift & 0xff));
}

// Fashion-MNIST's two t10k IDX files alone (raw): `n` 28×28 images and their labels.
void write_fashion_test_only(const fs::path& folder, int n) {
  fs::create_directories(folder);
  std::mt19937_64 rng(11);
  std::vector<uint8_t> images, labels;
  put_be32(images, 0x803);
  put_be32(images, static_cast<uint32_t>(n));
  put_be32(images, 28);
  put_be32(images, 28);
  const std::vector<uint8_t> px = random_pixels(size_t(n) * 28 * 28, rng);
  images.insert(images.end(), px.begin(), px.end());
  put_be32(labels, 0x801);
  put_be32(labels, static_cast<uint32_t>(n));
  for (int i = 0; i < n; ++i) labels.push_back(static_cast<uint8_t>(i % 10));
  test::write_bytes((folder / "t10k-images-idx3-ubyte").string(), images);
  test::write_bytes((folder / "t10k-labels-idx1-ubyte").string(), labels);
}

// The first JSON line of a --log file.
json first_log_line(const std::string& path) {
  std::istringstream in(test::read_text(path));
  std::string line;
  REQUIRE(std::getline(in, line));
  const json j = json::parse(line, nullptr, false);
  REQUIRE(j.is_object());
  return j;
}

}  // namespace

TEST_CASE("first use: eval, verify and report read a CIFAR-10 folder holding only test_batch.bin") {
  TempDir dir;
  write_cifar10_test_only(dir.path() / "c10", 24);
  write_model(dir, "rgb.safetensors", {32, 32, 3, 10});
  const json e =
      json_of(ok(dir, {"eval", "--model", "rgb.safetensors", "--data", "cifar10", "--data-dir", "c10", "--json"}));
  CHECK(e["n"] == 24);

  // The owner's commands read only the test split too (the model takes 32×32×3 images).
  protected_model(dir);
  const std::vector<std::string> probe = {
      "--model", "m.safetensors", "--key", "owner.key", "--data", "cifar10", "--data-dir",
      "c10",     "--probes",      "8",     "--threads", "2",      "--json"};
  const std::vector<std::string> verify = with({"verify"}, probe);
  const CliRun v = cli(dir, verify);
  INFO(describe(verify, v));
  CHECK(v.signal == 0);
  CHECK((v.status == 0 || v.status == 1));  // a model of synthetic on these images: verified or not
  CHECK(json_of(v).contains("verified"));
  const json r = json_of(ok(dir, with({"report", "--registry", "users.db", "--count", "4"}, probe)));
  CHECK(r["owner"].contains("verified"));
  CHECK(r["users"]["count"] == 2);  // alice and bob, trained into the model

  // Without test_batch.bin the file is still named.
  fs::remove(dir.path() / "c10" / "test_batch.bin");
  rejected(dir, {"eval", "--model", "rgb.safetensors", "--data", "cifar10", "--data-dir", "c10"}, 1,
           {"test_batch.bin"});
}

TEST_CASE("first use: eval reads a Fashion-MNIST folder holding only the two t10k files") {
  TempDir dir;
  write_fashion_test_only(dir.path() / "fm", 30);
  write_model(dir, "gray.safetensors", {28, 28, 1, 10});
  const json e = json_of(
      ok(dir, {"eval", "--model", "gray.safetensors", "--data", "fashion-mnist", "--data-dir", "fm", "--json"}));
  CHECK(e["n"] == 30);

  fs::remove(dir.path() / "fm" / "t10k-labels-idx1-ubyte");
  rejected(dir, {"eval", "--model", "gray.safetensors", "--data", "fashion-mnist", "--data-dir", "fm"}, 1,
           {"t10k-labels-idx1-ubyte"});
}

TEST_CASE("first use: report without --baseline reports everything but the accuracy drop") {
  TempDir dir;
  protected_model(dir);
  const std::vector<std::string> args = {"report",       "--model",   "m.safetensors",
                                         "--key",        "owner.key", "--registry",
                                         "users.db",     "--data",    "synthetic",
                                         "--limit-test", "64",        "--probes",
                                         "16",           "--count",   "4",
                                         "--threads",    "2"};
  const json j = json_of(ok(dir, with(args, {"--json"})));
  CHECK(j["clean_accuracy"].is_number());
  CHECK(j.contains("baseline_accuracy"));
  CHECK(j["baseline_accuracy"].is_null());
  CHECK(j.contains("accuracy_drop"));
  CHECK(j["accuracy_drop"].is_null());
  CHECK(j["baseline"].is_null());
  CHECK(j["owner"].contains("verified"));
  CHECK(j["users"]["count"] == 2);
  CHECK(j["forged"]["count"] == 4);

  const CliRun t = ok(dir, args);
  CHECK(t.out.find("clean accuracy") != std::string::npos);
  CHECK(t.out.find("no baseline") != std::string::npos);
  CHECK(t.out.find("accuracy drop ") == std::string::npos);  // no drop line
  CHECK(t.out.find("users authenticated") != std::string::npos);
}

TEST_CASE("first use: magnitude and filter pruning without --data write the model and mask and measure nothing") {
  TempDir dir;
  write_model(dir, "m.safetensors", {32, 32, 3, 10});
  const json g = json_of(ok(dir, {"prune", "--model", "m.safetensors", "--method", "global", "--sparsity", "0.5",
                                  "--out", "g.safetensors", "--json"}));
  CHECK(g["measured"] == false);
  CHECK(g["not_measured"].get<std::string>().find("--data") != std::string::npos);
  CHECK(g["clean_accuracy"].is_null());
  CHECK(g["original_accuracy"].is_null());
  CHECK(g["accuracy_drop"].is_null());
  CHECK(!g.contains("owner"));
  CHECK(g["attack"]["method"] == "global");
  CHECK(g["attack"]["pruned_weights"].get<int64_t>() > 0);
  CHECK(fs::exists(dir / "g.safetensors"));
  CHECK(fs::exists(dir / "g.mask.safetensors"));

  const CliRun l = ok(
      dir, {"prune", "--model", "m.safetensors", "--method", "layer", "--sparsity", "0.3", "--out", "l.safetensors"});
  CHECK(l.out.find("nothing was measured") != std::string::npos);
  CHECK(fs::exists(dir / "l.mask.safetensors"));

  const json f = json_of(ok(dir, {"prune", "--model", "m.safetensors", "--method", "filter", "--sparsity", "0.5",
                                  "--out", "f.safetensors", "--json"}));
  CHECK(f["measured"] == false);
  CHECK(f["attack"]["removed_filters"].get<int64_t>() > 0);
  CHECK(fs::exists(dir / "f.safetensors"));
  CHECK(!fs::exists(dir / "f.mask.safetensors"));

  // The pruned models are whole: measuring them later works.
  for (const std::string m : {"g.safetensors", "f.safetensors"})
    CHECK(json_of(ok(dir, {"eval", "--model", m, "--data", "synthetic", "--limit-test", "16", "--json"}))["n"] == 16);
  // With --data the same prune measures, and says so.
  const json measured =
      json_of(ok(dir, {"prune", "--model", "m.safetensors", "--method", "global", "--sparsity", "0.5", "--out",
                       "g2.safetensors", "--data", "synthetic", "--limit-test", "16", "--json"}));
  CHECK(measured["measured"] == true);
  CHECK(measured["clean_accuracy"].is_number());
}

TEST_CASE("first use: fineprune, --finetune-epochs and the measurements still need --data") {
  TempDir dir;
  write_model(dir, "m.safetensors", {32, 32, 3, 10});
  const std::vector<std::string> m = {"--model", "m.safetensors", "--out", "x.safetensors"};
  rejected(dir, with({"prune", "--method", "fineprune", "--sparsity", "0.25"}, m), 2, {"fineprune", "--data"});
  rejected(dir, with({"prune", "--method", "global", "--finetune-epochs", "1"}, m), 2, {"--finetune-epochs", "--data"});
  rejected(dir, with({"prune", "--method", "filter", "--key", "owner.key"}, m), 2, {"--key", "--data"});
  rejected(dir, with({"prune", "--data-dir", "somewhere"}, m), 2, {"--data-dir", "--data"});
  rejected(dir, with({"finetune", "--mode", "ftll"}, m), 2, {"--data"});
}

TEST_CASE("first use: bench train honours --threads and reports the count that ran") {
  TempDir dir;
  for (const std::string threads : {"1", "2"}) {
    const std::vector<std::string> args = {"bench",         "train",   "--device", "cpu", "--threads",     threads,
                                           "--nets",        "convnet", "--batch",  "8",   "--conv-impl",   "custom",
                                           "--steps",       "1",       "--warmup", "0",   "--limit-train", "16",
                                           "--peak-tflops", "1"};
    const json j = json_of(ok(dir, with(args, {"--json"})));
    CHECK(j["machine"]["threads"] == std::stoi(threads));
    CHECK(j["runs"][0]["images_per_s"].is_number());
    const CliRun t = ok(dir, args);
    CHECK(t.out.find(threads == "1" ? "1 thread," : "2 threads") != std::string::npos);
  }
}

TEST_CASE("first use: train, eval and prune say how many threads they ran") {
  TempDir dir;
  const CliRun t =
      ok(dir, {"train", "--net", "convnet", "--data", "synthetic", "--epochs", "1", "--batch", "32", "--limit-train",
               "64", "--limit-test", "32", "--out", "m.safetensors", "--threads", "1", "--log", "m.jsonl"});
  CHECK(t.err.find("cpu, 1 thread") != std::string::npos);
  const json start = first_log_line(dir / "m.jsonl");
  CHECK(start["event"] == "start");
  CHECK(start["threads"] == 1);

  const std::vector<std::string> eval = {"eval",         "--model", "m.safetensors", "--data", "synthetic",
                                         "--limit-test", "16",      "--threads",     "1"};
  const json e = json_of(ok(dir, with(eval, {"--json"})));
  CHECK(e["threads"] == 1);
  CHECK(e["device"] == "cpu");
  CHECK(ok(dir, eval).out.find("cpu, 1 thread") != std::string::npos);
  const json e2 = json_of(ok(dir, {"eval", "--model", "m.safetensors", "--data", "synthetic", "--limit-test", "16",
                                   "--threads", "2", "--json"}));
  CHECK(e2["threads"] == 2);

  const json p = json_of(ok(dir, {"prune", "--model", "m.safetensors", "--sparsity", "0.5", "--out", "p.safetensors",
                                  "--threads", "1", "--json"}));
  CHECK(p["threads"] == 1);
}
