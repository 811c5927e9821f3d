// Extras on the real mini slices in ../shared/data/mini (1000 train / 250 test records of
// CIFAR-10, CIFAR-100 and Fashion-MNIST, cut from the official downloads): what generated
// files cannot show — the published normalisation fits real pixels, the real class-name
// files, the real .gz files (made by gzip, not zlib here), a convnet learning real images.
// Built as activeip_real_data_tests, which exits 77 (skipped) where the folder is missing.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/core/file_io.h"
#include "engine/data/dataset.h"
#include "tests/cli_util.h"
#include "tests/data_files.h"

using namespace activeip;
using nlohmann::json;
using test::ok;
using test::check_gz_loads_as_raw;
using test::image_bytes;
using test::label_values;
using test::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kMini = ACTIVEIP_SHARED_DATA "/mini";

struct Slice {
  const char* dataset;
  const char* folder;
};
const std::vector<Slice> kSlices = {
    {"cifar10", "cifar-10-batches-bin"}, {"cifar100", "cifar-100-binary"}, {"fashion-mnist", "fashion-mnist"}};


// The non-blank lines of a text file, trimmed, as the loader reads class names.
std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> out;
  std::string line;
  for (const char ch : test::read_text(path) + "\n") {
    if (ch != '\n') {
      line += ch;
      continue;
    }
    const size_t b = line.find_first_not_of(" \t\r"), e = line.find_last_not_of(" \t\r");
    if (b != std::string::npos) out.push_back(line.substr(b, e - b + 1));
    line.clear();
  }
  return out;
}

}  // namespace

TEST_CASE("real data: the mini slices load, with pixel statistics within 0.03 of the published normalisation") {
  for (const Slice& s : kSlices) {
    INFO(s.dataset);
    const std::string dir = kMini + "/" + s.folder;
    const DataSplits d = load_data({s.dataset, dir, -1, -1});
    CHECK(d.train.size() == 1000);
    CHECK(d.test.size() == 250);
    const DataReport report = inspect_data({s.dataset, dir, -1, -1});
    REQUIRE(report.ok());
    CHECK(report.splits[0].count == 1000);
    // A 1000-image sample of the training set is within a few 1e-2 of the full set's
    // statistics, which the loader publishes for normalisation.
    const Normalization norm = dataset_normalization(s.dataset);
    REQUIRE(report.splits[0].pixel_mean.size() == norm.mean.size());
    for (size_t c = 0; c < norm.mean.size(); ++c) {
      INFO("channel " << c << ": mean " << report.splits[0].pixel_mean[c] << ", std " << report.splits[0].pixel_std[c]);
      CHECK(std::fabs(report.splits[0].pixel_mean[c] - norm.mean[c]) < 0.03);
      CHECK(std::fabs(report.splits[0].pixel_std[c] - norm.std[c]) < 0.03);
    }
  }
}

TEST_CASE("real data: the class names come from the real files") {
  const std::string cifar10 = kMini + "/cifar-10-batches-bin", cifar100 = kMini + "/cifar-100-binary";
  const DataSplits c10 = load_data({"cifar10", cifar10, 1, 1});
  CHECK(c10.class_names == lines_of(cifar10 + "/batches.meta.txt"));
  REQUIRE(c10.class_names.size() == 10);
  CHECK(c10.class_names.front() == "airplane");
  CHECK(c10.class_names.back() == "truck");

  const DataSplits c100 = load_data({"cifar100", cifar100, 1, 1});
  CHECK(c100.class_names == lines_of(cifar100 + "/fine_label_names.txt"));
  REQUIRE(c100.class_names.size() == 100);
  CHECK(c100.class_names[0] == "apple");
  CHECK(c100.class_names[47] == "maple_tree");
  CHECK(c100.class_names[99] == "worm");
}

TEST_CASE("real data: the Fashion-MNIST .gz files load as the raw files") {
  const std::string fashion = kMini + "/fashion-mnist";
  const DataSplits raw = load_data({"fashion-mnist", fashion, -1, -1});
  const auto images = read_file(fashion + "/train-images-idx3-ubyte");
  CHECK(image_bytes(raw.train) == std::vector<uint8_t>(images.begin() + 16, images.end()));

  check_gz_loads_as_raw(fashion, raw);
}

TEST_CASE("real data: cli: data check passes the mini slices") {
  TempDir dir;
  for (const Slice& s : kSlices) {
    INFO(s.dataset);
    const test::CliRun r =
        ok(dir, {"data", "check", "--data", s.dataset, "--data-dir", kMini + "/" + s.folder, "--json"});
    const json report = json::parse(r.out, nullptr, false);
    REQUIRE(report.is_object());
    CHECK(report["ok"] == true);
    CHECK(report["splits"]["train"]["count"] == 1000);
    CHECK(report["splits"]["test"]["count"] == 250);
  }
}

TEST_CASE("real data: cli: a convnet trained on the mini Fashion-MNIST beats chance on its test split") {
  TempDir dir;
  const std::string data = kMini + "/fashion-mnist";
  ok(dir, {"train", "--net", "convnet", "--data", "fashion-mnist", "--data-dir", data, "--epochs", "2", "--batch", "32",
           "--out", "f.safetensors"});
  const json eval = json::parse(
      ok(dir, {"eval", "--model", "f.safetensors", "--data", "fashion-mnist", "--data-dir", data, "--json"}).out,
      nullptr, false);
  REQUIRE(eval.is_object());
  CHECK(eval["n"] == 250);
  // Chance is about 0.1; two epochs on the 1000 real images reach 0.648 at the default seed.
  INFO("accuracy " << eval["accuracy"]);
  CHECK(eval["accuracy"].get<double>() >= 0.5);
  CHECK(std::isfinite(eval["loss"].get<double>()));
}
