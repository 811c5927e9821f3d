// `activeip eval --logits FILE` through the real binary: the file's tensors have the shapes
// and dtypes the cross-check script expects, hold the test records' labels and their
// normalised NHWC input exactly as the engine computes it, and argmax(logits) reproduces
// the accuracy eval reports; with a GPU, CUDA's logits agree with the CPU's. A path that
// cannot be written is refused before any work and leaves nothing behind.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/core/context.h"
#include "engine/data/dataset.h"
#include "engine/io/checkpoint.h"
#include "engine/io/safetensors.h"
#include "tests/cli_util.h"

using namespace activeip;
using nlohmann::json;
using test::ok;
using test::rejected;
using test::TempDir;
namespace fs = std::filesystem;

namespace {

constexpr int kRecords = 50;  // not a multiple of the batch: the last batch is partial

// A 1-epoch convnet on 256 synthetic images, written to m.safetensors in `dir`.
void train_small(const TempDir& dir) {
  ok(dir, {"train", "--net", "convnet", "--data", "synthetic", "--epochs", "1", "--batch", "32", "--limit-train", "256",
           "--limit-test", "64", "--out", "m.safetensors"});
}

std::vector<std::string> eval_args(const std::string& logits, const std::string& device = "cpu") {
  return {"eval",    "--model", "m.safetensors", "--data", "synthetic", "--limit-test", std::to_string(kRecords),
          "--batch", "16",      "--device",      device,   "--json",    "--logits",     logits};
}

json one_json_object(const test::CliRun& r) {
  INFO("stdout: " << r.out);
  REQUIRE(r.out.find('\n') == r.out.size() - 1);
  const json j = json::parse(r.out, nullptr, false);
  REQUIRE(j.is_object());
  return j;
}

template <class T>
std::vector<T> elements(const SafetensorsView& v) {
  std::vector<T> out(v.bytes / sizeof(T));
  std::memcpy(out.data(), v.data, out.size() * sizeof(T));
  return out;
}

int argmax(const float* row, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (row[i] > row[best]) best = i;
  return best;
}

// Checks the logits file `name` in `dir` against the dataset, the model m.safetensors and
// eval's report; returns its logits.
std::vector<float> check_logits_file(const TempDir& dir, const std::string& name, const json& eval) {
  const SafetensorsReader file(dir / name);
  CHECK(file.names().size() == 3);
  const SafetensorsView &logits = file.get("logits"), &labels = file.get("labels"), &images = file.get("images");
  CHECK(logits.dtype == "F32");
  CHECK(labels.dtype == "I32");
  CHECK(images.dtype == "F32");
  REQUIRE(logits.shape == Shape({kRecords, 10}));
  REQUIRE(labels.shape == Shape({kRecords}));
  REQUIRE(images.shape == Shape({kRecords, 32, 32, 3}));
  CHECK(file.metadata().at("net") == "convnet");
  CHECK(file.metadata().at("images_layout") == "NHWC");

  // The labels and the input are the first kRecords test records, normalised with the
  // model's own statistics as (px/255 − mean)/std.
  const DataSplits data = load_data({"synthetic", "", 2, kRecords});
  const std::string model = dir / "m.safetensors";
  const ModelMeta meta = ModelMeta::from_metadata(SafetensorsReader(model).metadata(), model);
  const std::vector<int32_t> got_labels = elements<int32_t>(labels);
  const std::vector<int32_t> want_labels(data.test.labels.data<int32_t>(), data.test.labels.data<int32_t>() + kRecords);
  CHECK(got_labels == want_labels);
  const std::vector<float> x = elements<float>(images);
  const uint8_t* px = data.test.images.data<uint8_t>();
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const size_t c = i % 3;
    const float want = (static_cast<float>(px[i]) / 255.0f - meta.norm.mean[c]) / meta.norm.std[c];
    worst = std::max(worst, static_cast<double>(std::fabs(x[i] - want)));
  }
  CHECK(worst <= 1e-6);

  // argmax(logits) against the labels gives exactly the accuracy eval printed.
  const std::vector<float> l = elements<float>(logits);
  int correct = 0;
  for (int i = 0; i < kRecords; ++i) {
    REQUIRE(std::isfinite(l[static_cast<size_t>(i) * 10]));
    correct += argmax(&l[static_cast<size_t>(i) * 10], 10) == got_labels[static_cast<size_t>(i)];
  }
  CHECK(eval["n"] == kRecords);
  CHECK(static_cast<double>(correct) / kRecords == eval["accuracy"].get<double>());
  return l;
}

}  // namespace

TEST_CASE("cli logits: eval --logits writes logits, labels and the normalised input") {
  TempDir dir;
  train_small(dir);
  const test::CliRun r = ok(dir, eval_args("l.safetensors"));
  const json eval = one_json_object(r);
  CHECK(eval["logits"] == "l.safetensors");
  CHECK(r.err.find("l.safetensors") != std::string::npos);
  const std::vector<float> cpu = check_logits_file(dir, "l.safetensors", eval);

  // Without --logits eval reports the same numbers and writes nothing more.
  const auto before = dir.listing();
  const json plain = one_json_object(ok(dir, {"eval", "--model", "m.safetensors", "--data", "synthetic", "--limit-test",
                                              std::to_string(kRecords), "--json"}));
  CHECK(dir.listing() == before);
  CHECK(plain["accuracy"] == eval["accuracy"]);
  CHECK(plain.contains("logits") == false);

  if (!cuda_available()) return;
  const json on_gpu = one_json_object(ok(dir, eval_args("g.safetensors", "cuda")));
  const std::vector<float> gpu = check_logits_file(dir, "g.safetensors", on_gpu);
  test::expect_close(gpu, cpu, {.rel = 1e-4});
}

TEST_CASE("cli logits: an unwritable --logits path is refused before any work, leaving nothing") {
  TempDir dir;
  train_small(dir);
  SUBCASE("a folder that does not exist") {
    rejected(dir, eval_args("no_such_dir/l.safetensors"), 2, {"--logits", "no_such_dir/l.safetensors"});
  }
  SUBCASE("a path naming a folder") {
    fs::create_directories(dir / "l.safetensors");
    rejected(dir, eval_args("l.safetensors"), 2, {"--logits", "l.safetensors", "directory"});
  }
}
