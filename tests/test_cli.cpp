// The `activeip` command line end to end, through the real binary, each test in a fresh
// temporary directory: train → info → eval round trips on synthetic and on Fashion-MNIST,
// --resume, `data check`, and bad inputs — each must end with exit status 2 (usage) or 1
// (runtime), never a signal, stderr opening with "error: " and naming what is wrong, and no
// file written. Datasets are files the test writes in the official formats (data_files.h).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/context.h"
#include "engine/data/dataset.h"
#include "engine/io/checkpoint.h"
#include "nets/nets.h"
#include "tests/cli_util.h"
#include "tests/data_files.h"

using namespace activeip;
using nlohmann::json;
using test::cli;
using test::CliRun;
using test::describe;
using test::ok;
using test::rejected;
using test::TempDir;
namespace fs = std::filesystem;

namespace {

// A 1-epoch convnet run on 256 synthetic images. Each option in `extra` replaces the value of
// the same option in the list or is appended; one not followed by a value is a flag.
std::vector<std::string> small_train(std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"train", "--net",   "convnet",      "--data",        "synthetic", "--epochs",
                                   "1",     "--batch", "32",           "--limit-train", "256",       "--limit-test",
                                   "64",    "--out",   "m.safetensors"};
  for (size_t i = 0; i < extra.size(); ++i) {
    const bool has_value = i + 1 < extra.size() && extra[i + 1].rfind("--", 0) != 0;
    auto it = std::find(args.begin(), args.end(), extra[i]);
    if (it != args.end() && has_value) {
      *(it + 1) = extra[++i];
      continue;
    }
    args.push_back(extra[i]);
    if (has_value) args.push_back(extra[++i]);
  }
  return args;
}

// Exactly one line on stdout holding one JSON object.
json one_json_object(const CliRun& r) {
  INFO("stdout: " << r.out);
  REQUIRE(!r.out.empty());
  REQUIRE(r.out.back() == '\n');
  REQUIRE(r.out.find('\n') == r.out.size() - 1);
  const json j = json::parse(r.out, nullptr, false);
  REQUIRE(j.is_object());
  return j;
}

std::vector<json> json_lines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    INFO("log line: " << line);
    out.push_back(json::parse(line, nullptr, false));
    REQUIRE(out.back().is_object());
  }
  return out;
}

// A freshly initialised convnet checkpoint, written through the library, that the CLI
// accepts (checked, so that the corruptions made of it below fail for their own reason).
void write_valid_model(const TempDir& dir, const std::string& name, const NetSpec& spec = {32, 32, 3, 10}) {
  Context ctx;
  auto net = make_net("convnet", spec);
  net->build(ctx, 7);
  const ModelMeta meta = ModelMeta::describe(
      *net, "synthetic", {std::vector<float>(size_t(spec.C), 0.5f), std::vector<float>(size_t(spec.C), 0.25f)});
  save_model(dir / name, *net, ctx, meta);
  ok(dir, {"info", "--model", name});
}

// A generated dataset of the mini slices' sizes (1000 train / 250 test records) in the
// subfolder of `dir` named as the official download names it; returns that folder, relative
// to `dir` (the CLI's working directory). Fashion-MNIST comes raw, and gzipped when `with_gz`.
std::string write_mini(const TempDir& dir, const std::string& dataset, bool with_gz = true) {
  const uint64_t seed = 0x5eed;  // any; fixed so that a failure reproduces
  if (dataset == "cifar10") {
    test::write_cifar10(dir.path() / "cifar-10-batches-bin", test::kMiniCifar10Batch, test::kMiniTest, seed);
    return "cifar-10-batches-bin";
  }
  if (dataset == "cifar100") {
    test::write_cifar100(dir.path() / "cifar-100-binary", test::kMiniTrain, test::kMiniTest, seed);
    return "cifar-100-binary";
  }
  REQUIRE(dataset == "fashion-mnist");
  test::write_fashion_mnist(dir.path() / "fashion-mnist", test::kMiniTrain, test::kMiniTest, seed, true, with_gz);
  return "fashion-mnist";
}

json data_check(const TempDir& dir, const std::string& name, const std::string& data_dir) {
  return one_json_object(ok(dir, {"data", "check", "--data", name, "--data-dir", data_dir, "--json"}));
}

void check_mini_counts(const json& report) {
  INFO(report.dump(2));
  CHECK(report["ok"] == true);
  CHECK(report["splits"]["train"]["count"] == 1000);
  CHECK(report["splits"]["test"]["count"] == 250);
  int64_t records = 0;
  for (const json& f : report["files"]) {
    CHECK(f["ok"] == true);
    records += f["records"].get<int64_t>();
  }
  // Fashion-MNIST counts images and labels, each file on its own.
  CHECK(records == (report["dataset"] == "fashion-mnist" ? 2 : 1) * 1250);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Round trips

TEST_CASE("cli: train, info and eval round trip on synthetic") {
  TempDir dir;
  const CliRun train = ok(dir, small_train({"--log", "l.jsonl"}));
  CHECK(train.out.find("m.safetensors") != std::string::npos);
  CHECK(fs::is_regular_file(dir / "m.safetensors"));
  CHECK(fs::is_regular_file(dir / "m.optim.safetensors"));

  const std::vector<json> log = json_lines(test::read_text(dir / "l.jsonl"));
  REQUIRE(log.size() == 2);
  CHECK(log[0]["event"] == "start");
  CHECK(log[0]["net"] == "convnet");
  CHECK(log[0]["train_size"] == 256);
  CHECK(log[0]["test_size"] == 64);
  CHECK(log[1]["event"] == "epoch");
  CHECK(log[1]["epoch"] == 1);
  const double logged_accuracy = log[1]["test_accuracy"].get<double>();
  const double logged_loss = log[1]["test_loss"].get<double>();

  const json info = one_json_object(ok(dir, {"info", "--model", "m.safetensors", "--json"}));
  CHECK(info["net"] == "convnet");
  CHECK(info["dataset"] == "synthetic");
  CHECK(info["epoch"] == 1);
  CHECK(info["num_classes"] == 10);
  CHECK(info["input_shape"] == json({3, 32, 32}));
  CHECK(info["protected"] == false);
  CHECK(info["config"]["batch"] == 32);
  CHECK(info["parameters"].get<int64_t>() > 0);
  const CliRun info_text = ok(dir, {"info", "--model", "m.safetensors"});
  CHECK(info_text.out.find("convnet") != std::string::npos);

  const int64_t test_size = load_data({"synthetic", "", 2, -1}).test.size();
  const json eval = one_json_object(ok(dir, {"eval", "--model", "m.safetensors", "--data", "synthetic", "--json"}));
  CHECK(eval["n"] == test_size);
  CHECK(eval["accuracy"].get<double>() >= 0.0);
  CHECK(eval["accuracy"].get<double>() <= 1.0);
  CHECK(std::isfinite(eval["loss"].get<double>()));
  CHECK(eval["loss"].get<double>() > 0.0);

  // On the 64 test images the training run evaluated, eval reproduces its logged numbers.
  const json eval64 = one_json_object(
      ok(dir, {"eval", "--model", "m.safetensors", "--data", "synthetic", "--limit-test", "64", "--json"}));
  CHECK(eval64["n"] == 64);
  CHECK(eval64["accuracy"].get<double>() == logged_accuracy);
  CHECK(eval64["loss"].get<double>() == doctest::Approx(logged_loss).epsilon(1e-9));
}

TEST_CASE("cli: a convnet trained on Fashion-MNIST evaluates on it") {
  TempDir dir;
  const std::string data = write_mini(dir, "fashion-mnist", false);
  ok(dir, {"train", "--net", "convnet", "--data", "fashion-mnist", "--data-dir", data, "--epochs", "1", "--batch", "32",
           "--limit-train", "256", "--limit-test", "64", "--out", "f.safetensors"});
  const json info = one_json_object(ok(dir, {"info", "--model", "f.safetensors", "--json"}));
  CHECK(info["input_shape"] == json({1, 28, 28}));
  CHECK(info["dataset"] == "fashion-mnist");
  const json eval = one_json_object(
      ok(dir, {"eval", "--model", "f.safetensors", "--data", "fashion-mnist", "--data-dir", data, "--json"}));
  CHECK(eval["n"] == 250);
  CHECK(eval["accuracy"].get<double>() >= 0.0);
  CHECK(eval["accuracy"].get<double>() <= 1.0);
  CHECK(std::isfinite(eval["loss"].get<double>()));
}

// ---------------------------------------------------------------------------------------
// --resume (bit-for-bit continuation is tested on the library in test_training.cpp)

TEST_CASE("cli: --resume of a completed run has nothing to do and leaves the files as they were") {
  TempDir dir;
  ok(dir, small_train());
  const auto model = test::read_bytes(dir / "m.safetensors");
  const auto state = test::read_bytes(dir / "m.optim.safetensors");
  const auto before = dir.listing();
  const CliRun r = ok(dir, small_train({"--resume"}));
  CHECK(r.out.find("nothing to do") != std::string::npos);
  CHECK(test::read_bytes(dir / "m.safetensors") == model);
  CHECK(test::read_bytes(dir / "m.optim.safetensors") == state);
  CHECK(dir.listing() == before);
}

TEST_CASE("cli: --resume with a changed --lr fails naming lr") {
  TempDir dir;
  ok(dir, small_train());
  const auto model = test::read_bytes(dir / "m.safetensors");
  const auto state = test::read_bytes(dir / "m.optim.safetensors");
  rejected(dir, small_train({"--resume", "--lr", "0.05"}), 1, {"lr", "0.05"});
  CHECK(test::read_bytes(dir / "m.safetensors") == model);
  CHECK(test::read_bytes(dir / "m.optim.safetensors") == state);
}

TEST_CASE("cli: --resume without a checkpoint starts from scratch") {
  TempDir dir;
  const CliRun r = ok(dir, small_train({"--resume"}));
  CHECK(r.err.find("starting from scratch") != std::string::npos);
  const json info = one_json_object(ok(dir, {"info", "--model", "m.safetensors", "--json"}));
  CHECK(info["epoch"] == 1);
  CHECK(fs::is_regular_file(dir / "m.optim.safetensors"));
}

// ---------------------------------------------------------------------------------------
// data check (1000 train / 250 test records each)

TEST_CASE("cli: data check reads CIFAR-10") {
  TempDir dir;
  const std::string data = write_mini(dir, "cifar10");
  const json report = data_check(dir, "cifar10", data);
  check_mini_counts(report);
  CHECK(report["files"].size() == 6);
  const CliRun text = ok(dir, {"data", "check", "--data", "cifar10", "--data-dir", data});
  CHECK(text.out.find("cifar10 (32×32×3, 10 classes) in " + data + ": OK") != std::string::npos);
  CHECK(text.out.find("data_batch_5.bin: 200 records") != std::string::npos);
  CHECK(text.out.find("train: 1000 images") != std::string::npos);
  CHECK(text.out.find("test: 250 images") != std::string::npos);
}

TEST_CASE("cli: data check reads CIFAR-100") {
  TempDir dir;
  const json report = data_check(dir, "cifar100", write_mini(dir, "cifar100"));
  check_mini_counts(report);
  CHECK(report["files"].size() == 2);
  CHECK(report["shape"]["num_classes"] == 100);
}

TEST_CASE("cli: data check reads Fashion-MNIST, raw and gzipped") {
  TempDir dir;
  const std::string data = write_mini(dir, "fashion-mnist");
  const json raw = data_check(dir, "fashion-mnist", data);
  check_mini_counts(raw);
  REQUIRE(raw["files"].size() == 4);
  for (const json& f : raw["files"]) CHECK(f["path"].get<std::string>().find(".gz") == std::string::npos);

  // Only the .gz files: the loader falls back to them and gunzips.
  const auto gz_only = [](const std::string& name) { return fs::path(name).extension() == ".gz"; };
  dir.copy_from(dir.path() / data, gz_only, "gz");
  const json gzipped = data_check(dir, "fashion-mnist", "gz");
  check_mini_counts(gzipped);
  REQUIRE(gzipped["files"].size() == 4);
  for (const json& f : gzipped["files"]) CHECK(f["path"].get<std::string>().find(".gz") != std::string::npos);
  CHECK(gzipped["splits"]["train"]["label_histogram"] == raw["splits"]["train"]["label_histogram"]);
  CHECK(gzipped["splits"]["test"]["pixel_mean"] == raw["splits"]["test"]["pixel_mean"]);
}

// ---------------------------------------------------------------------------------------
// Bad options: usage errors (exit 2), found by the parser or by option validation

TEST_CASE("cli: an unknown net is a usage error") {
  TempDir dir;
  rejected(dir, small_train({"--net", "resnet19"}), 2, {"--net", "resnet19"});
}

TEST_CASE("cli: an unknown dataset is a usage error") {
  TempDir dir;
  rejected(dir, small_train({"--data", "imagenet"}), 2, {"--data", "imagenet"});
  write_valid_model(dir, "m.safetensors");
  rejected(dir, {"eval", "--model", "m.safetensors", "--data", "imagenet"}, 2, {"--data", "imagenet"});
}

TEST_CASE("cli: an unknown command is a usage error") {
  TempDir dir;
  rejected(dir, {"frobnicate"}, 2, {"frobnicate", "train"});
  rejected(dir, {"data", "frobnicate"}, 2, {"frobnicate", "check"});
}

TEST_CASE("cli: a missing required option is a usage error") {
  TempDir dir;
  rejected(dir, {"train", "--net", "convnet", "--data", "synthetic"}, 2, {"--out"});
  rejected(dir, {"train", "--data", "synthetic", "--out", "m.safetensors"}, 2, {"--net"});
  rejected(dir, {"eval", "--data", "synthetic"}, 2, {"--model"});
  rejected(dir, {"info"}, 2, {"--model"});
  rejected(dir, {"data", "check"}, 2, {"--data"});
}

TEST_CASE("cli: --epochs 0 is a usage error") {
  TempDir dir;
  rejected(dir, small_train({"--epochs", "0"}), 2, {"--epochs", "positive"});
}

TEST_CASE("cli: --batch 1 is a usage error") {
  TempDir dir;
  rejected(dir, small_train({"--batch", "1"}), 2, {"--batch", "got 1"});
}

TEST_CASE("cli: --lr -1 is a usage error") {
  TempDir dir;
  rejected(dir, small_train({"--lr", "-1"}), 2, {"--lr", "positive", "-1"});
}

TEST_CASE("cli: --lr abc is a usage error") {
  TempDir dir;
  rejected(dir, small_train({"--lr", "abc"}), 2, {"--lr", "'abc' is not a number"});
}

TEST_CASE("cli: --momentum 1.5 is a usage error") {
  TempDir dir;
  rejected(dir, small_train({"--momentum", "1.5"}), 2, {"--momentum", "1.5"});
}

TEST_CASE("cli: --schedule bogus is a usage error") {
  TempDir dir;
  rejected(dir, small_train({"--schedule", "bogus"}), 2, {"--schedule", "bogus"});
}

TEST_CASE("cli: --sam and --sam-ascent are checked") {
  TempDir dir;
  rejected(dir, small_train({"--sam", "-0.5"}), 2, {"--sam", "-0.5"});
  rejected(dir, small_train({"--sam", "0.05", "--sam-ascent", "clean"}), 2, {"--sam-ascent", "clean"});
  // The ascent on the protected samples needs protected training.
  rejected(dir, small_train({"--sam", "0.05", "--sam-ascent", "extra"}), 1, {"--sam-ascent extra", "protected"});
  ok(dir, small_train({"--sam", "0.05", "--log", "log.jsonl"}));
  CHECK(test::read_text(dir / "log.jsonl").find(R"("sam":{"ascent":"batch","norms":"fixed","rho":0.05})") !=
        std::string::npos);
}

TEST_CASE("cli: --log-every is checked and recorded") {
  TempDir dir;
  rejected(dir, small_train({"--log-every", "0"}), 2, {"--log-every", "0"});
  ok(dir, small_train({"--log-every", "3", "--log", "log.jsonl"}));
  CHECK(test::read_text(dir / "log.jsonl").find(R"("log_every":3)") != std::string::npos);
}

TEST_CASE("cli: --device gpu7 is a usage error") {
  TempDir dir;
  rejected(dir, small_train({"--device", "gpu7"}), 2, {"gpu7"});
}

TEST_CASE("cli: a CUDA device this build or machine lacks is a runtime error") {
  TempDir dir;
  if (cuda_available()) {
    rejected(dir, small_train({"--device", "cuda:99"}), 1, {"cuda:99", "CUDA device"});
    return;
  }
  const CliRun r = rejected(dir, small_train({"--device", "cuda"}), 1, {"cuda"});
  CHECK((r.err.find("built without CUDA") != std::string::npos || r.err.find("no CUDA device") != std::string::npos));
}

TEST_CASE("cli: --out in a folder that does not exist is a usage error") {
  TempDir dir;
  rejected(dir, small_train({"--out", "no_such_dir/m.safetensors"}), 2, {"no_such_dir/m.safetensors"});
}

TEST_CASE("cli: --out naming a folder is a usage error") {
  TempDir dir;
  fs::create_directories(dir.path() / "m.safetensors");
  rejected(dir, small_train(), 2, {"m.safetensors", "directory"});
}

// ---------------------------------------------------------------------------------------
// Bad data: runtime errors (exit 1) naming the file

TEST_CASE("cli: a --data-dir that does not exist names the missing file and the way out") {
  TempDir dir;
  rejected(dir, small_train({"--data", "cifar10", "--data-dir", "no_such_dir"}), 1,
           {"no_such_dir/data_batch_1.bin", "scripts/fetch_data.sh", "--data-dir"});
  const CliRun r = cli(dir, {"data", "check", "--data", "fashion-mnist", "--data-dir", "no_such_dir", "--json"});
  INFO(describe({"data check"}, r));
  CHECK(r.status == 1);
  CHECK(r.err.rfind("error: ", 0) == 0);
  const json report = json::parse(r.out, nullptr, false);
  REQUIRE(report.is_object());
  CHECK(report["ok"] == false);
  CHECK(report["files"][0]["error"].get<std::string>().find("no_such_dir/train-images-idx3-ubyte") !=
        std::string::npos);
}

TEST_CASE("cli: a truncated CIFAR file is named, and the other files are still checked") {
  TempDir dir;
  const std::string data = write_mini(dir, "cifar10");
  // The first file: with --limit-train the loader stops reading once it has enough records.
  const std::string cut = dir / (data + "/data_batch_1.bin");
  auto bytes = test::read_bytes(cut);
  bytes.resize(bytes.size() - 100);
  test::write_bytes(cut, bytes);

  rejected(dir, small_train({"--data", "cifar10", "--data-dir", data}), 1, {"data_batch_1.bin", "3073-byte"});
  const auto before = dir.listing();
  const CliRun r = cli(dir, {"data", "check", "--data", "cifar10", "--data-dir", data, "--json"});
  INFO(describe({"data check"}, r));
  CHECK(r.signal == 0);
  CHECK(r.status == 1);
  CHECK(r.err.rfind("error: ", 0) == 0);
  const json report = json::parse(r.out, nullptr, false);
  REQUIRE(report.is_object());
  REQUIRE(report["files"].size() == 6);
  for (const json& f : report["files"]) {
    const bool is_cut = f["path"].get<std::string>().find("data_batch_1.bin") != std::string::npos;
    CHECK(f["ok"] == !is_cut);
    if (is_cut) CHECK(f["error"].get<std::string>().find("not a whole number") != std::string::npos);
  }
  CHECK(report["splits"]["train"]["ok"] == false);
  CHECK(report["splits"]["test"]["ok"] == true);
  CHECK(dir.listing() == before);
}

TEST_CASE("cli: an IDX file with the wrong magic is named") {
  TempDir dir;
  const std::string data = write_mini(dir, "fashion-mnist", false);
  const std::string bad = dir / (data + "/train-images-idx3-ubyte");
  auto bytes = test::read_bytes(bad);
  REQUIRE(bytes[3] == 0x03);
  bytes[3] = 0x01;  // 0x00000801: the labels magic
  test::write_bytes(bad, bytes);
  rejected(dir, small_train({"--data", "fashion-mnist", "--data-dir", data}), 1,
           {"train-images-idx3-ubyte", "magic 0x00000801"});
  const CliRun r = cli(dir, {"data", "check", "--data", "fashion-mnist", "--data-dir", data});
  INFO(describe({"data check"}, r));
  CHECK(r.status == 1);
  CHECK(r.out.find("ERRORS") != std::string::npos);
  CHECK(r.out.find("ERROR  " + data + "/train-images-idx3-ubyte: magic 0x00000801") != std::string::npos);
}

TEST_CASE("cli: eval of a 3-channel model on Fashion-MNIST names both") {
  TempDir dir;
  write_valid_model(dir, "rgb.safetensors");
  const std::string data = write_mini(dir, "fashion-mnist", false);
  rejected(dir, {"eval", "--model", "rgb.safetensors", "--data", "fashion-mnist", "--data-dir", data}, 1,
           {"rgb.safetensors", "fashion-mnist"});
}

// ---------------------------------------------------------------------------------------
// Bad checkpoints: runtime errors (exit 1) naming the file, from eval and from info

TEST_CASE("cli: a truncated checkpoint is refused") {
  TempDir dir;
  write_valid_model(dir, "m.safetensors");
  auto bytes = test::read_bytes(dir / "m.safetensors");
  bytes.resize(bytes.size() / 2);  // the header survives, the tensors do not
  test::write_bytes(dir / "cut.safetensors", bytes);
  rejected(dir, {"eval", "--model", "cut.safetensors", "--data", "synthetic"}, 1, {"cut.safetensors"});
  rejected(dir, {"info", "--model", "cut.safetensors", "--json"}, 1, {"cut.safetensors"});
  bytes.resize(100);  // inside the header
  test::write_bytes(dir / "cut.safetensors", bytes);
  rejected(dir, {"eval", "--model", "cut.safetensors", "--data", "synthetic"}, 1, {"cut.safetensors"});
  rejected(dir, {"info", "--model", "cut.safetensors"}, 1, {"cut.safetensors"});
}

TEST_CASE("cli: a file of random bytes is refused as a checkpoint") {
  TempDir dir;
  test::write_bytes(dir / "noise.safetensors", test::random_bytes(4096, 0x9e3779b97f4a7c15ull));
  rejected(dir, {"eval", "--model", "noise.safetensors", "--data", "synthetic", "--json"}, 1, {"noise.safetensors"});
  rejected(dir, {"info", "--model", "noise.safetensors"}, 1, {"noise.safetensors"});
}

TEST_CASE("cli: a checkpoint that does not exist is named") {
  TempDir dir;
  rejected(dir, {"eval", "--model", "absent.safetensors", "--data", "synthetic"}, 1, {"absent.safetensors"});
  rejected(dir, {"info", "--model", "absent.safetensors", "--json"}, 1, {"absent.safetensors"});
}

TEST_CASE("cli: a checkpoint naming an unknown net is refused") {
  TempDir dir;
  write_valid_model(dir, "m.safetensors");
  {
    const SafetensorsReader good(dir / "m.safetensors");
    SafetensorsWriter patched;
    for (const std::string& name : good.names()) {
      const SafetensorsView& v = good.get(name);
      patched.add(name, v.dtype, v.shape, v.data, v.bytes);
    }
    auto meta = good.metadata();
    meta["net"] = "resnet19";
    patched.set_metadata(meta);
    patched.write(dir / "odd.safetensors");
  }
  rejected(dir, {"eval", "--model", "odd.safetensors", "--data", "synthetic"}, 1, {"odd.safetensors", "resnet19"});
  rejected(dir, {"info", "--model", "odd.safetensors", "--json"}, 1, {"odd.safetensors", "resnet19"});
}

// ---------------------------------------------------------------------------------------
// Help

TEST_CASE("cli: --help of every command prints its usage") {
  TempDir dir;
  const std::vector<std::pair<std::vector<std::string>, std::string>> commands = {
      {{}, "train"},  // the top level lists the commands
      {{"train"}, "--resume"},
      {{"eval"}, "--model"},
      {{"info"}, "--model"},
      {{"data"}, "check"},
      {{"data", "check"}, "--data-dir"},
  };
  for (const auto& [words, expected] : commands) {
    std::vector<std::string> args = words;
    args.push_back("--help");
    const CliRun r = ok(dir, args);
    INFO(describe(args, r));
    std::string usage = "Usage: " + std::string(ACTIVEIP_CLI_PATH);
    for (const std::string& w : words) usage += " " + w;
    CHECK(r.out.find(usage) != std::string::npos);
    CHECK(r.out.find(expected) != std::string::npos);
    CHECK(r.err.empty());
  }
  CHECK(dir.listing().empty());
}
