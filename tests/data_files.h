// Small datasets in the official binary formats, written from a seeded generator so that
// the loader and CLI tests need no download: CIFAR-10 batches (3073-byte records), CIFAR-100
// train/test (3074-byte records), Fashion-MNIST IDX files (big-endian headers) raw and
// gzipped, and the class-name files. Pixels are a class-dependent stripe pattern over a
// per-channel offset, plus noise; labels are a shuffled cycle through every class.
// Also: a split as plain vectors, and the .gz-against-raw comparison the loader tests share.
#pragma once

#include <doctest/doctest.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/data/dataset.h"
#include "tests/test_util.h"

namespace activeip::test {

// The sizes of the real mini slices (tests/shared_data/), which the generated sets copy so
// that the counts the tests assert mean the same thing: 1000 train (5 CIFAR-10 batches of
// 200) and 250 test records of each format.
inline constexpr int64_t kMiniTrain = 1000, kMiniTest = 250, kMiniCifar10Batch = 200;

namespace data_files_detail {

inline const std::vector<std::string> kCifar100CoarseNames = {"aquatic_mammals",
                                                              "fish",
                                                              "flowers",
                                                              "food_containers",
                                                              "fruit_and_vegetables",
                                                              "household_electrical_devices",
                                                              "household_furniture",
                                                              "insects",
                                                              "large_carnivores",
                                                              "large_man-made_outdoor_things",
                                                              "large_natural_outdoor_scenes",
                                                              "large_omnivores_and_herbivores",
                                                              "medium_mammals",
                                                              "non-insect_invertebrates",
                                                              "people",
                                                              "reptiles",
                                                              "small_mammals",
                                                              "trees",
                                                              "vehicles_1",
                                                              "vehicles_2"};
// The official superclass of each fine label (apple → fruit_and_vegetables, …). The loader
// only range-checks the coarse byte; the real pairing keeps the records as the format has them.
inline const std::vector<uint8_t> kCifar100Coarse = {
    4,  1,  14, 8,  0,  6,  7,  7, 18, 3,  3,  14, 9, 18, 7,  11, 3,  9, 7,  11, 6,  11, 5,  10, 7,
    6,  13, 15, 3,  15, 0,  11, 1, 10, 12, 14, 16, 9, 11, 5,  5,  19, 8, 8,  15, 13, 14, 17, 18, 10,
    16, 4,  17, 4,  2,  0,  17, 4, 18, 17, 10, 3,  2, 12, 12, 16, 12, 1, 9,  19, 2,  10, 0,  1,  16,
    12, 9,  13, 15, 13, 16, 19, 2, 4,  6,  19, 5,  5, 8,  19, 18, 1,  2, 15, 6,  0,  17, 8,  14, 13};

// 0, 1, …, classes−1, 0, 1, … (n entries, so every class appears once n ≥ classes), shuffled.
// Fisher–Yates on the raw engine output rather than std::shuffle or a distribution, whose
// algorithms the standard leaves to the library: the same seed gives the same files everywhere.
inline std::vector<int> shuffled_labels(int64_t n, int classes, std::mt19937_64& rng) {
  std::vector<int> labels(static_cast<size_t>(n));
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int>(i % size_t(classes));
  for (size_t i = labels.size(); i > 1; --i) std::swap(labels[i - 1], labels[rng() % i]);
  return labels;
}

// One H×W×C image of class `label`, planar (C planes of H×W, CIFAR) or interleaved: channel c
// at offset 56−24c, +64 on the class's diagonal stripes (period 8, slope label+1), + noise in
// [0, 128). At most 56+64+127 = 247, so no value clips; the channels have different means, so
// a channel mix-up in the loader or its statistics shows.
inline void write_image(uint8_t* out, int label, int H, int W, int C, bool planar, std::mt19937_64& rng) {
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        const int stripe = ((x + y * (label + 1)) / 4) % 2 ? 64 : 0;
        const int v = 56 - 24 * c + stripe + static_cast<int>(rng() % 128);
        const size_t at = planar ? (size_t(c) * H + y) * W + x : (size_t(y) * W + x) * C + c;
        out[at] = static_cast<uint8_t>(v);
      }
}

// `n` CIFAR records: `label_bytes` label bytes (CIFAR-100: coarse, fine), then 3072 planar pixels.
inline std::vector<uint8_t> cifar_records(int64_t n, int classes, size_t label_bytes, std::mt19937_64& rng) {
  const size_t record = label_bytes + 3072;
  std::vector<uint8_t> bytes(size_t(n) * record);
  const std::vector<int> labels = shuffled_labels(n, classes, rng);
  for (size_t i = 0; i < size_t(n); ++i) {
    uint8_t* r = bytes.data() + i * record;
    if (label_bytes == 2) r[0] = kCifar100Coarse[size_t(labels[i])];
    r[label_bytes - 1] = static_cast<uint8_t>(labels[i]);
    write_image(r + label_bytes, labels[i], 32, 32, 3, true, rng);
  }
  return bytes;
}

inline void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& l : lines) text += l + "\n";
  write_bytes(path, {text.begin(), text.end()});
}

inline void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

}  // namespace data_files_detail

// `bytes` as one gzip member (windowBits 15+16: deflate with the gzip header and CRC-32/ISIZE
// trailer, modification time 0, so the output depends on the input alone).
inline std::vector<uint8_t> gzip_bytes(const std::vector<uint8_t>& bytes) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<uint8_t> out(deflateBound(&zs, static_cast<uLong>(bytes.size())));
  zs.next_in = const_cast<Bytef*>(bytes.data());
  zs.avail_in = static_cast<uInt>(bytes.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);  // the bound fits the whole stream in one call
  out.resize(zs.total_out);
  deflateEnd(&zs);
  REQUIRE(rc == Z_STREAM_END);
  return out;
}

// CIFAR-10 as cifar-10-batches-bin holds it: data_batch_1.bin … data_batch_5.bin of
// `train_per_batch` records each, test_batch.bin of `test_count`, and batches.meta.txt with
// the 10 class names, one a line. `dir` is created if needed.
inline void write_cifar10(const std::filesystem::path& dir, int64_t train_per_batch, int64_t test_count,
                          uint64_t seed) {
  namespace d = data_files_detail;
  std::filesystem::create_directories(dir);
  std::mt19937_64 rng(seed);
  for (int b = 1; b <= 5; ++b)
    write_bytes((dir / ("data_batch_" + std::to_string(b) + ".bin")).string(),
                d::cifar_records(train_per_batch, 10, 1, rng));
  write_bytes((dir / "test_batch.bin").string(), d::cifar_records(test_count, 10, 1, rng));
  d::write_lines((dir / "batches.meta.txt").string(), dataset_class_names("cifar10"));
}

// CIFAR-100 as cifar-100-binary holds it: train.bin and test.bin (coarse label, fine label,
// pixels), fine_label_names.txt and coarse_label_names.txt.
inline void write_cifar100(const std::filesystem::path& dir, int64_t train, int64_t test, uint64_t seed) {
  namespace d = data_files_detail;
  std::filesystem::create_directories(dir);
  std::mt19937_64 rng(seed);
  write_bytes((dir / "train.bin").string(), d::cifar_records(train, 100, 2, rng));
  write_bytes((dir / "test.bin").string(), d::cifar_records(test, 100, 2, rng));
  d::write_lines((dir / "fine_label_names.txt").string(), dataset_class_names("cifar100"));
  d::write_lines((dir / "coarse_label_names.txt").string(), d::kCifar100CoarseNames);
}

// Fashion-MNIST's four IDX files: {train,t10k}-images-idx3-ubyte (magic 0x00000803, then
// count, 28, 28) and {train,t10k}-labels-idx1-ubyte (magic 0x00000801, then count), raw when
// `raw`, gzipped (NAME.gz) when `gz`; the .gz files hold exactly the raw bytes.
inline void write_fashion_mnist(const std::filesystem::path& dir, int64_t train, int64_t test, uint64_t seed,
                                bool raw = true, bool gz = true) {
  namespace d = data_files_detail;
  std::filesystem::create_directories(dir);
  std::mt19937_64 rng(seed);
  for (const auto& [prefix, n] : {std::pair<std::string, int64_t>{"train", train}, {"t10k", test}}) {
    std::vector<uint8_t> images, labels;
    d::put_be32(images, 0x803);
    d::put_be32(images, static_cast<uint32_t>(n));
    d::put_be32(images, 28);
    d::put_be32(images, 28);
    d::put_be32(labels, 0x801);
    d::put_be32(labels, static_cast<uint32_t>(n));
    const size_t header = images.size();
    images.resize(header + size_t(n) * 28 * 28);
    for (int label : d::shuffled_labels(n, 10, rng)) labels.push_back(static_cast<uint8_t>(label));
    for (size_t i = 0; i < size_t(n); ++i)
      d::write_image(images.data() + header + i * 28 * 28, labels[8 + i], 28, 28, 1, false, rng);
    for (const auto& [name, bytes] :
         {std::pair{prefix + "-images-idx3-ubyte", &images}, std::pair{prefix + "-labels-idx1-ubyte", &labels}}) {
      const std::string path = (dir / name).string();
      if (raw) write_bytes(path, *bytes);
      if (gz) write_bytes(path + ".gz", gzip_bytes(*bytes));
    }
  }
}

// A split's pixels and labels as plain vectors, to compare loads.
inline std::vector<uint8_t> image_bytes(const Dataset& d) {
  const uint8_t* p = d.images.data<uint8_t>();
  return {p, p + d.images.bytes()};
}
inline std::vector<int32_t> label_values(const Dataset& d) {
  const int32_t* p = d.labels.data<int32_t>();
  return {p, p + d.size()};
}

// The .gz files alone of the Fashion-MNIST folder `dir`, copied to a folder of their own,
// load exactly as `raw` (the folder's raw files) did: the loader falls back to them and gunzips.
inline void check_gz_loads_as_raw(const std::string& dir, const DataSplits& raw) {
  TempDir gz;
  gz.copy_from(dir, [](const std::string& n) { return std::filesystem::path(n).extension() == ".gz"; });
  REQUIRE_FALSE(std::filesystem::exists(gz / "train-images-idx3-ubyte"));
  const DataSplits packed = load_data({"fashion-mnist", gz.path().string(), -1, -1});
  CHECK(image_bytes(packed.train) == image_bytes(raw.train));
  CHECK(label_values(packed.train) == label_values(raw.train));
  CHECK(image_bytes(packed.test) == image_bytes(raw.test));
  CHECK(label_values(packed.test) == label_values(raw.test));
}

}  // namespace activeip::test
