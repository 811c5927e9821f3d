// Datasets on files each test writes in the official formats (tests/data_files.h: 1000 train
// / 250 test records, the real mini slices' sizes): counts, shapes, label ranges, every pixel
// against the raw file bytes (which checks the CIFAR planar → NHWC transpose), .gz and raw
// IDX giving the same data, limits, class names; malformed inputs, each an Error naming the
// file; the synthetic set's determinism, balance, normalisation and separability; and the
// data-check report. The real slices are checked in tests/shared_data/test_real_data.cpp.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "base/error.h"
#include "engine/core/file_io.h"
#include "engine/data/dataset.h"
#include "tests/data_files.h"
#include "tests/test_util.h"

using namespace activeip;
using test::check_gz_loads_as_raw;
using test::image_bytes;
using test::label_values;
using test::TempDir;
namespace fs = std::filesystem;

namespace {

// Any seeds would do; fixed, so that a failure reproduces.
constexpr uint64_t kCifar10Seed = 10, kCifar100Seed = 100, kFashionSeed = 784;

// The generated datasets, written into `dir` itself; each returns the folder.
std::string write_cifar10(const TempDir& dir) {
  test::write_cifar10(dir.path(), test::kMiniCifar10Batch, test::kMiniTest, kCifar10Seed);
  return dir.path().string();
}
std::string write_cifar100(const TempDir& dir) {
  test::write_cifar100(dir.path(), test::kMiniTrain, test::kMiniTest, kCifar100Seed);
  return dir.path().string();
}
std::string write_fashion(const TempDir& dir, bool gz = true) {
  test::write_fashion_mnist(dir.path(), test::kMiniTrain, test::kMiniTest, kFashionSeed, true, gz);
  return dir.path().string();
}

void edit_file(const std::string& path, const std::function<void(std::vector<uint8_t>&)>& edit) {
  auto bytes = read_file(path);
  edit(bytes);
  test::write_bytes(path, bytes);
}

std::string load_error(const DataSpec& spec) {
  try {
    load_data(spec);
  } catch (const Error& e) {
    return e.what();
  }
  return "(loaded)";
}


// Every record of the CIFAR files against the loaded split: label byte and each pixel
// (record byte label_bytes + c·1024 + y·32 + x must be image[i][y][x][c]).
void check_cifar_split(const Dataset& d, const std::vector<std::string>& files, size_t label_bytes) {
  const size_t record = label_bytes + 3072;
  const uint8_t* images = d.images.data<uint8_t>();
  const int32_t* labels = d.labels.data<int32_t>();
  int64_t i = 0;
  size_t mismatches = 0;
  for (const std::string& path : files) {
    const auto raw = read_file(path);
    REQUIRE(raw.size() % record == 0);
    for (size_t r = 0; r < raw.size() / record; ++r, ++i) {
      REQUIRE(i < d.size());
      const uint8_t* rec = raw.data() + r * record;
      mismatches += labels[i] != rec[label_bytes - 1];
      for (size_t y = 0; y < 32; ++y)
        for (size_t x = 0; x < 32; ++x)
          for (size_t c = 0; c < 3; ++c)
            mismatches += images[((size_t(i) * 32 + y) * 32 + x) * 3 + c] != rec[label_bytes + c * 1024 + y * 32 + x];
    }
  }
  CHECK(i == d.size());
  CHECK(mismatches == 0);
}

// Per-channel mean and standard deviation, on the [0, 1] scale, of every pixel of `files`,
// straight from their bytes (two passes, independent of the loader's running sums): after a
// `header`, records of `record` bytes whose H·W·C pixels start at `skip`, planar or interleaved.
struct PixelStats {
  std::vector<double> mean, std;
};
PixelStats file_pixel_stats(const std::vector<std::string>& files, size_t header, size_t record, size_t skip, size_t C,
                            bool planar) {
  const size_t pixels = record - skip, hw = pixels / C;
  std::vector<std::vector<uint8_t>> raw;
  for (const std::string& f : files) raw.push_back(read_file(f));
  const auto for_each = [&](size_t c, const std::function<void(double)>& visit) {
    for (const auto& bytes : raw) {
      REQUIRE((bytes.size() - header) % record == 0);
      for (size_t r = header; r < bytes.size(); r += record)
        for (size_t k = 0; k < hw; ++k) visit(bytes[r + skip + (planar ? c * hw + k : k * C + c)] / 255.0);
    }
  };
  PixelStats s;
  for (size_t c = 0; c < C; ++c) {
    double sum = 0, sq = 0, n = 0;
    for_each(c, [&](double v) { sum += v, n += 1; });
    const double mean = sum / n;
    for_each(c, [&](double v) { sq += (v - mean) * (v - mean); });
    s.mean.push_back(mean);
    s.std.push_back(std::sqrt(sq / n));
  }
  return s;
}

void check_stats(const DataSplitReport& got, const PixelStats& want) {
  REQUIRE(got.pixel_mean.size() == want.mean.size());
  REQUIRE(got.pixel_std.size() == want.std.size());
  for (size_t c = 0; c < want.mean.size(); ++c) {
    INFO(got.split << " channel " << c);
    CHECK(got.pixel_mean[c] == doctest::Approx(want.mean[c]).epsilon(1e-9));
    CHECK(got.pixel_std[c] == doctest::Approx(want.std[c]).epsilon(1e-9));
  }
}

uint64_t fnv1a(const std::vector<uint8_t>& bytes, uint64_t h = 0xcbf29ce484222325ull) {
  for (uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ull;
  return h;
}

}  // namespace

TEST_CASE("dataset: names, shapes, default folders and normalisation without loading") {
  CHECK(dataset_names() == std::vector<std::string>{"cifar10", "cifar100", "fashion-mnist", "synthetic"});
  CHECK(default_data_dir("cifar10") == "data/cifar-10-batches-bin");
  CHECK(default_data_dir("cifar100") == "data/cifar-100-binary");
  CHECK(default_data_dir("fashion-mnist") == "data/fashion-mnist");
  const DataShape f = dataset_shape("fashion-mnist");
  CHECK((f.H == 28 && f.W == 28 && f.C == 1 && f.num_classes == 10));
  CHECK(dataset_shape("cifar100").num_classes == 100);
  CHECK(dataset_shape("synthetic").C == 3);
  const Normalization n = dataset_normalization("cifar10");
  CHECK(n.mean == std::vector<float>{0.4914f, 0.4822f, 0.4465f});
  CHECK(n.std == std::vector<float>{0.2470f, 0.2435f, 0.2616f});
  CHECK(dataset_normalization("fashion-mnist").mean == std::vector<float>{0.2860f});
  try {
    dataset_shape("mnist");
    FAIL("an unknown dataset must throw");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("unknown dataset 'mnist' (known: cifar10, cifar100, fashion-mnist, synthetic)") !=
          std::string::npos);
  }
  CHECK_THROWS_AS(load_data({"imagenet", "", -1, -1}), Error);
}

TEST_CASE("dataset: CIFAR-10 loads as NHWC with the file's pixels and labels") {
  TempDir dir;
  const std::string cifar10_dir = write_cifar10(dir);
  const DataSplits d = load_data({"cifar10", cifar10_dir, -1, -1});
  CHECK(d.train.size() == 1000);
  CHECK(d.test.size() == 250);
  CHECK(d.train.images.shape() == Shape{1000, 32, 32, 3});
  CHECK(d.test.labels.shape() == Shape{250});
  CHECK(d.train.images.dtype() == DType::U8);
  CHECK(d.train.labels.dtype() == DType::I32);
  CHECK((d.train.name == "cifar10" && d.train.split == "train" && d.test.split == "test"));
  CHECK((d.train.H == 32 && d.train.W == 32 && d.train.C == 3 && d.train.num_classes == 10));
  for (const Dataset* s : {&d.train, &d.test}) {
    const auto labels = label_values(*s);
    CHECK(*std::min_element(labels.begin(), labels.end()) == 0);
    CHECK(*std::max_element(labels.begin(), labels.end()) == 9);
  }
  std::vector<std::string> train_files;
  for (int b = 1; b <= 5; ++b) train_files.push_back(cifar10_dir + "/data_batch_" + std::to_string(b) + ".bin");
  check_cifar_split(d.train, train_files, 1);
  check_cifar_split(d.test, {cifar10_dir + "/test_batch.bin"}, 1);

  // One pixel by hand: record 3 of data_batch_2 (train index 203), y=5, x=7, blue channel.
  const auto raw = read_file(cifar10_dir + "/data_batch_2.bin");
  const uint8_t* img = d.train.images.data<uint8_t>();
  CHECK(img[((203 * 32 + 5) * 32 + 7) * 3 + 2] == raw[3 * 3073 + 1 + 2 * 1024 + 5 * 32 + 7]);
  CHECK(img[((203 * 32 + 5) * 32 + 7) * 3 + 0] == raw[3 * 3073 + 1 + 0 * 1024 + 5 * 32 + 7]);

  CHECK(d.class_names.size() == 10);
  CHECK(d.class_names.front() == "airplane");
  CHECK(d.class_names.back() == "truck");
  CHECK(d.norm.mean == dataset_normalization("cifar10").mean);

  // The names come from batches.meta.txt when there is one, not from the built-in list.
  std::vector<uint8_t> reversed;
  for (auto it = d.class_names.rbegin(); it != d.class_names.rend(); ++it) {
    reversed.insert(reversed.end(), it->begin(), it->end());
    reversed.push_back('\n');
  }
  test::write_bytes(dir / "batches.meta.txt", reversed);
  const DataSplits renamed = load_data({"cifar10", cifar10_dir, 1, 1});
  CHECK(renamed.class_names.front() == "truck");
  CHECK(renamed.class_names.back() == "airplane");
}

TEST_CASE("dataset: CIFAR-100 uses the fine labels") {
  TempDir dir;
  const std::string cifar100_dir = write_cifar100(dir);
  const DataSplits d = load_data({"cifar100", cifar100_dir, -1, -1});
  CHECK(d.train.size() == 1000);
  CHECK(d.test.size() == 250);
  CHECK(d.train.num_classes == 100);
  const auto labels = label_values(d.train);
  CHECK(*std::min_element(labels.begin(), labels.end()) >= 0);
  CHECK(*std::max_element(labels.begin(), labels.end()) <= 99);
  CHECK(*std::max_element(labels.begin(), labels.end()) >= 20);  // beyond any coarse label
  check_cifar_split(d.train, {cifar100_dir + "/train.bin"}, 2);
  check_cifar_split(d.test, {cifar100_dir + "/test.bin"}, 2);
  REQUIRE(d.class_names.size() == 100);
  CHECK(d.class_names[0] == "apple");
  CHECK(d.class_names[47] == "maple_tree");
  CHECK(d.class_names[99] == "worm");
}

TEST_CASE("dataset: Fashion-MNIST, raw and .gz identical") {
  TempDir dir;
  const std::string fashion_dir = write_fashion(dir);
  const DataSplits raw = load_data({"fashion-mnist", fashion_dir, -1, -1});
  CHECK(raw.train.size() == 1000);
  CHECK(raw.test.size() == 250);
  CHECK(raw.train.images.shape() == Shape{1000, 28, 28, 1});
  CHECK(raw.class_names.front() == "T-shirt/top");

  const auto images = read_file(fashion_dir + "/train-images-idx3-ubyte");
  const auto labels = read_file(fashion_dir + "/train-labels-idx1-ubyte");
  CHECK(image_bytes(raw.train) == std::vector<uint8_t>(images.begin() + 16, images.end()));
  const auto got = label_values(raw.train);
  CHECK(std::equal(got.begin(), got.end(), labels.begin() + 8, labels.end()));
  CHECK(*std::max_element(got.begin(), got.end()) == 9);
  CHECK(raw.train.images.data<uint8_t>()[(17 * 28 + 14) * 28 + 9] == images[16 + (17 * 28 + 14) * 28 + 9]);

  check_gz_loads_as_raw(fashion_dir, raw);
}

TEST_CASE("dataset: limits take the first N records") {
  TempDir c10, fm;
  const std::string cifar10_dir = write_cifar10(c10), fashion_dir = write_fashion(fm, false);
  const DataSplits all = load_data({"cifar10", cifar10_dir, -1, -1});
  const DataSplits part = load_data({"cifar10", cifar10_dir, 300, 7});
  CHECK(part.train.size() == 300);
  CHECK(part.test.size() == 7);
  const auto a = image_bytes(all.train), p = image_bytes(part.train);
  CHECK(std::equal(p.begin(), p.end(), a.begin()));
  const auto all_test = label_values(all.test);
  CHECK(label_values(part.test) == std::vector<int32_t>(all_test.begin(), all_test.begin() + 7));

  const DataSplits more = load_data({"fashion-mnist", fashion_dir, 5000, 0});  // more than there are: all
  CHECK(more.train.size() == 1000);
  CHECK(more.test.size() == 0);
  CHECK(more.test.images.shape() == Shape{0, 28, 28, 1});
  CHECK(load_data({"synthetic", "", 30, 20}).train.size() == 30);
  CHECK_THROWS_AS(load_data({"cifar10", cifar10_dir, -2, -1}), Error);
}

TEST_CASE("dataset: malformed CIFAR files are errors naming the file") {
  TempDir dir;
  const DataSpec spec{"cifar10", write_cifar10(dir), -1, -1};
  REQUIRE(load_data(spec).train.size() == 1000);

  SUBCASE("an extra byte") {
    edit_file(dir / "data_batch_3.bin", [](auto& b) { b.push_back(7); });
    const std::string msg = load_error(spec);
    CHECK(msg.find(dir / "data_batch_3.bin: 614601 bytes is not a whole number of 3073-byte CIFAR-10 records") !=
          std::string::npos);
  }
  SUBCASE("a truncated file") {
    edit_file(dir / "test_batch.bin", [](auto& b) { b.resize(b.size() - 100); });
    const std::string msg = load_error(spec);
    CHECK(msg.find(dir / "test_batch.bin") != std::string::npos);
    CHECK(msg.find("not a whole number") != std::string::npos);
  }
  SUBCASE("an empty file") {
    test::write_bytes(dir / "data_batch_1.bin", {});
    CHECK(load_error(spec).find(dir / "data_batch_1.bin: empty file") != std::string::npos);
  }
  SUBCASE("a label out of range") {
    edit_file(dir / "data_batch_2.bin", [](auto& b) { b[17 * 3073] = 12; });
    CHECK(load_error(spec).find(dir / "data_batch_2.bin: record 17 has label 12") != std::string::npos);
  }
  SUBCASE("a missing file") {
    fs::remove(dir.path() / "test_batch.bin");
    const std::string msg = load_error(spec);
    CHECK(msg.find(dir / "test_batch.bin") != std::string::npos);
    CHECK(msg.find("scripts/fetch_data.sh") != std::string::npos);
    CHECK(msg.find("--data-dir") != std::string::npos);
  }
  SUBCASE("a folder that does not exist") {
    const std::string msg = load_error({"cifar10", dir / "nowhere", -1, -1});
    CHECK(msg.find(dir / "nowhere/data_batch_1.bin") != std::string::npos);
  }
  SUBCASE("a class-name file with the wrong count") {
    test::write_bytes(dir / "batches.meta.txt", {'c', 'a', 't', '\n', 'd', 'o', 'g', '\n'});
    CHECK(load_error(spec).find(dir / "batches.meta.txt: 2 class names, expected 10") != std::string::npos);
  }
}

TEST_CASE("dataset: malformed CIFAR-100 labels name the record") {
  TempDir dir;
  const DataSpec spec{"cifar100", write_cifar100(dir), -1, -1};
  SUBCASE("fine") {
    edit_file(dir / "test.bin", [](auto& b) { b[5 * 3074 + 1] = 100; });
    CHECK(load_error(spec).find(dir / "test.bin: record 5 has label 100 (CIFAR-100 labels are 0-99)") !=
          std::string::npos);
  }
  SUBCASE("coarse") {
    edit_file(dir / "train.bin", [](auto& b) { b[999 * 3074] = 20; });
    CHECK(load_error(spec).find(dir / "train.bin: record 999 has coarse label 20") != std::string::npos);
  }
}

TEST_CASE("dataset: malformed IDX files are errors naming the file") {
  TempDir dir;
  const DataSpec spec{"fashion-mnist", write_fashion(dir, false), -1, -1};
  const std::string images = dir / "train-images-idx3-ubyte", labels = dir / "t10k-labels-idx1-ubyte";

  SUBCASE("wrong magic") {
    edit_file(images, [](auto& b) { b[3] = 0x01; });
    CHECK(load_error(spec).find(images + ": magic 0x00000801 is not that of an IDX image file") != std::string::npos);
  }
  SUBCASE("wrong image size") {
    edit_file(images, [](auto& b) { b[11] = 32; });
    CHECK(load_error(spec).find(images + ": images are 32×28, expected 28×28") != std::string::npos);
  }
  SUBCASE("truncated images") {
    edit_file(images, [](auto& b) { b.resize(b.size() - 1); });
    CHECK(load_error(spec).find(images + ": truncated") != std::string::npos);
  }
  SUBCASE("an extra byte") {
    edit_file(labels, [](auto& b) { b.push_back(0); });
    CHECK(load_error(spec).find(labels + ": 1 extra bytes") != std::string::npos);
  }
  SUBCASE("a bad label") {
    edit_file(labels, [](auto& b) { b[8 + 42] = 10; });
    CHECK(load_error(spec).find(labels + ": record 42 has label 10") != std::string::npos);
  }
  SUBCASE("image and label counts differ") {
    edit_file(labels, [](auto& b) {
      b[7] = static_cast<uint8_t>(b[7] - 1);
      b.pop_back();
    });
    const std::string msg = load_error(spec);
    CHECK(msg.find(dir / "t10k-images-idx3-ubyte holds 250 images but " + labels + " holds 249 labels") !=
          std::string::npos);
  }
  SUBCASE("a missing file") {
    fs::remove(labels);
    const std::string msg = load_error(spec);
    CHECK(msg.find(labels) != std::string::npos);
    CHECK(msg.find("scripts/fetch_data.sh") != std::string::npos);
  }
  SUBCASE("a corrupt gzip file") {
    auto gz = test::gzip_bytes(read_file(images));
    fs::remove(images);
    test::write_bytes(images + ".gz", gz);
    REQUIRE(load_error(spec) == "(loaded)");  // intact, the .gz alone loads
    for (size_t i = gz.size() / 2; i < gz.size() / 2 + 64; ++i) gz[i] ^= 0xa5;
    test::write_bytes(images + ".gz", gz);
    const std::string msg = load_error(spec);
    CHECK(msg.find(images + ".gz: corrupt gzip stream") != std::string::npos);
  }
}

TEST_CASE("dataset: synthetic is deterministic, balanced and separable") {
  const DataSplits a = load_data({"synthetic", "", -1, -1});
  const DataSplits b = load_data({"synthetic", "ignored", -1, -1});
  CHECK(a.train.size() == 2000);
  CHECK(a.test.size() == 500);
  CHECK(a.train.images.shape() == Shape{2000, 32, 32, 3});
  CHECK(a.class_names.size() == 10);
  CHECK(image_bytes(a.train) == image_bytes(b.train));
  CHECK(label_values(a.test) == label_values(b.test));

  // The generator uses integer arithmetic only: these digests are the same on every
  // platform and compiler; a change here means the dataset changed.
  const auto digest = [](const Dataset& d) {
    const auto l = label_values(d);
    std::vector<uint8_t> lb(l.begin(), l.end());
    return fnv1a(lb, fnv1a(image_bytes(d)));
  };
  CHECK(digest(a.train) == 0x0b5711ee32adba12ull);
  CHECK(digest(a.test) == 0x22d02ba61845d4f2ull);

  for (const Dataset* d : {&a.train, &a.test}) {
    std::vector<int> count(10);
    for (int32_t l : label_values(*d)) ++count[size_t(l)];
    CHECK(count == std::vector<int>(10, static_cast<int>(d->size() / 10)));
  }

  // The published normalisation matches the train split to the printed digits.
  const DataReport report = inspect_data({"synthetic", "", -1, -1});
  REQUIRE(report.ok());
  const Normalization norm = dataset_normalization("synthetic");
  for (size_t c = 0; c < 3; ++c) {
    CHECK(std::fabs(report.splits[0].pixel_mean[c] - norm.mean[c]) < 1e-4);
    CHECK(std::fabs(report.splits[0].pixel_std[c] - norm.std[c]) < 1e-4);
  }

  // Learnable: even a nearest-class-mean classifier on raw pixels, fit on train, gets the
  // test split almost right; a convnet has far more to go on.
  const size_t dim = 32 * 32 * 3;
  std::vector<double> means(10 * dim);
  std::vector<int> n(10);
  const uint8_t* tx = a.train.images.data<uint8_t>();
  const auto tl = label_values(a.train);
  for (size_t i = 0; i < tl.size(); ++i) {
    ++n[size_t(tl[i])];
    for (size_t j = 0; j < dim; ++j) means[size_t(tl[i]) * dim + j] += tx[i * dim + j];
  }
  for (size_t k = 0; k < 10; ++k)
    for (size_t j = 0; j < dim; ++j) means[k * dim + j] /= n[k];
  const uint8_t* vx = a.test.images.data<uint8_t>();
  const auto vl = label_values(a.test);
  int correct = 0;
  for (size_t i = 0; i < vl.size(); ++i) {
    double best = 1e300;
    int arg = -1;
    for (int k = 0; k < 10; ++k) {
      double dist = 0;
      for (size_t j = 0; j < dim; ++j) dist += std::pow(vx[i * dim + j] - means[size_t(k) * dim + j], 2);
      if (dist < best) best = dist, arg = k;
    }
    correct += arg == vl[i];
  }
  CHECK(correct >= 0.9 * static_cast<double>(vl.size()));
}

TEST_CASE("dataset: inspect_data reports every file, and the split statistics") {
  TempDir c10, fm;
  const std::string cifar10_dir = write_cifar10(c10), fashion_dir = write_fashion(fm, false);
  const DataReport good = inspect_data({"cifar10", cifar10_dir, 5, 5});  // limits ignored
  CHECK(good.ok());
  REQUIRE(good.files.size() == 6);
  CHECK(good.files[0].path == cifar10_dir + "/data_batch_1.bin");
  CHECK(good.files[0].records == 200);
  CHECK(good.files[5].records == 250);
  REQUIRE(good.splits.size() == 2);
  CHECK(good.splits[0].count == 1000);
  int64_t total = 0;
  for (int64_t h : good.splits[0].label_histogram) total += h;
  CHECK(total == 1000);
  std::vector<std::string> train_files;
  for (int b = 1; b <= 5; ++b) train_files.push_back(cifar10_dir + "/data_batch_" + std::to_string(b) + ".bin");
  check_stats(good.splits[0], file_pixel_stats(train_files, 0, 3073, 1, 3, true));
  check_stats(good.splits[1], file_pixel_stats({cifar10_dir + "/test_batch.bin"}, 0, 3073, 1, 3, true));
  // Per class: the labels the files hold.
  std::vector<int64_t> histogram(10);
  for (const std::string& f : train_files) {
    const auto raw = read_file(f);
    for (size_t r = 0; r < raw.size(); r += 3073) ++histogram[raw[r]];
  }
  CHECK(good.splits[0].label_histogram == histogram);

  const DataReport fashion = inspect_data({"fashion-mnist", fashion_dir, -1, -1});
  CHECK(fashion.ok());
  CHECK(fashion.splits[1].count == 250);
  check_stats(fashion.splits[0], file_pixel_stats({fashion_dir + "/train-images-idx3-ubyte"}, 16, 784, 0, 1, false));
  check_stats(fashion.splits[1], file_pixel_stats({fashion_dir + "/t10k-images-idx3-ubyte"}, 16, 784, 0, 1, false));

  // One bad file among good ones: it alone is reported, and its split is not assembled.
  TempDir dir;
  write_cifar10(dir);
  edit_file(dir / "data_batch_4.bin", [](auto& b) { b.pop_back(); });
  const DataReport bad = inspect_data({"cifar10", dir.path().string(), -1, -1});
  CHECK_FALSE(bad.ok());
  for (size_t i = 0; i < bad.files.size(); ++i) CHECK(bad.files[i].error.empty() == (i != 3));
  CHECK(bad.files[3].error.find("data_batch_4.bin") != std::string::npos);
  CHECK_FALSE(bad.splits[0].ok);
  CHECK(bad.splits[1].ok);

  TempDir idx;
  write_fashion(idx, false);
  edit_file(idx / "train-labels-idx1-ubyte", [](auto& b) {
    b[7] = static_cast<uint8_t>(b[7] - 1);
    b.pop_back();
  });
  const DataReport mismatch = inspect_data({"fashion-mnist", idx.path().string(), -1, -1});
  CHECK_FALSE(mismatch.ok());
  CHECK(mismatch.splits[0].error.find("holds 1000 images") != std::string::npos);
  CHECK(mismatch.splits[1].ok);
}
