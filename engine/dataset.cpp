// Dataset loaders and the synthetic generator. A source file is read whole, validated
// (size against the record size or IDX header, every label in range), and then its first n
// records are decoded into the u8 NHWC image tensor and the i32 label tensor: CIFAR records
// are label byte(s) + C planes of H×W, transposed to H×W×C here; IDX images are already
// H×W (C = 1) and are copied.
#include "engine/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>

#include <nlohmann/json.hpp>

#include "engine/file_io.h"

namespace activeip {

namespace {

enum class Kind { Cifar10, Cifar100, FashionMnist, Synthetic };

struct DatasetInfo {
  Kind kind;
  const char* name;
  const char* dir;  // default folder, relative to the working directory
  DataShape shape;
  Normalization norm;
};

const std::vector<DatasetInfo>& dataset_table() {
  // The published training-set statistics; synthetic's are measured on its train split
  // (the dataset test checks them against the generator).
  static const std::vector<DatasetInfo> table = {
      {Kind::Cifar10,
       "cifar10",
       "data/cifar-10-batches-bin",
       {32, 32, 3, 10},
       {{0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}}},
      {Kind::Cifar100,
       "cifar100",
       "data/cifar-100-binary",
       {32, 32, 3, 100},
       {{0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}}},
      {Kind::FashionMnist, "fashion-mnist", "data/fashion-mnist", {28, 28, 1, 10}, {{0.2860f}, {0.3530f}}},
      {Kind::Synthetic, "synthetic", "", {32, 32, 3, 10}, {{0.5090f, 0.4380f, 0.4870f}, {0.2188f, 0.2024f, 0.2474f}}},
  };
  return table;
}

const DatasetInfo& dataset_info(const std::string& name) {
  for (const DatasetInfo& info : dataset_table())
    if (name == info.name) return info;
  std::string known;
  for (const DatasetInfo& info : dataset_table()) known += (known.empty() ? "" : ", ") + std::string(info.name);
  ENSURE(false, "unknown dataset '%s' (known: %s)", name.c_str(), known.c_str());
  return dataset_table().front();
}

const std::vector<std::string> kCifar10Classes = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                  "dog",      "frog",       "horse", "ship", "truck"};
const std::vector<std::string> kCifar100Classes = {
    "apple",      "aquarium_fish", "baby",         "bear",       "beaver",      "bed",         "bee",
    "beetle",     "bicycle",       "bottle",       "bowl",       "boy",         "bridge",      "bus",
    "butterfly",  "camel",         "can",          "castle",     "caterpillar", "cattle",      "chair",
    "chimpanzee", "clock",         "cloud",        "cockroach",  "couch",       "crab",        "crocodile",
    "cup",        "dinosaur",      "dolphin",      "elephant",   "flatfish",    "forest",      "fox",
    "girl",       "hamster",       "house",        "kangaroo",   "keyboard",    "lamp",        "lawn_mower",
    "leopard",    "lion",          "lizard",       "lobster",    "man",         "maple_tree",  "motorcycle",
    "mountain",   "mouse",         "mushroom",     "oak_tree",   "orange",      "orchid",      "otter",
    "palm_tree",  "pear",          "pickup_truck", "pine_tree",  "plain",       "plate",       "poppy",
    "porcupine",  "possum",        "rabbit",       "raccoon",    "ray",         "road",        "rocket",
    "rose",       "sea",           "seal",         "shark",      "shrew",       "skunk",       "skyscraper",
    "snail",      "snake",         "spider",       "squirrel",   "streetcar",   "sunflower",   "sweet_pepper",
    "table",      "tank",          "telephone",    "television", "tiger",       "tractor",     "train",
    "trout",      "tulip",         "turtle",       "wardrobe",   "whale",       "willow_tree", "wolf",
    "woman",      "worm"};
const std::vector<std::string> kFashionClasses = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                  "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

// ---------------------------------------------------------------------------------------
// Source files

// Records of one source, still in the file's layout. Labels are bytes at
// label_offset + i·label_stride of `labels` (or of `images` when `labels` is empty).
struct Chunk {
  std::vector<uint8_t> images, labels;
  size_t image_offset = 0, image_stride = 0;
  size_t label_offset = 0, label_stride = 0;
  bool planar = false;  // C planes of H×W per record (CIFAR) rather than H×W×C
  int64_t count = 0;

  const uint8_t* label_bytes() const { return labels.empty() ? images.data() : labels.data(); }
  int label(int64_t i) const { return label_bytes()[label_offset + static_cast<size_t>(i) * label_stride]; }
  const uint8_t* record(int64_t i) const {
    return images.data() + image_offset + static_cast<size_t>(i) * image_stride;
  }
};

std::string join_path(const std::string& dir, const std::string& file) {
  if (dir.empty()) return file;
  return dir.back() == '/' ? dir + file : dir + "/" + file;
}

// The file that read_file_maybe_gzip will read: PATH, else PATH.gz when only that exists.
std::string resolved_path(const std::string& path) {
  return !file_exists(path) && file_exists(path + ".gz") ? path + ".gz" : path;
}

std::vector<uint8_t> read_source(const std::string& path, const DatasetInfo& info, const char* expected_files) {
  ENSURE(file_exists(path) || file_exists(path + ".gz"),
         "%s: missing %s (run scripts/fetch_data.sh, or pass --data-dir with the folder that holds %s)", info.name,
         path.c_str(), expected_files);
  return read_file_maybe_gzip(path);
}

const char* expected_files(Kind kind) {
  switch (kind) {
    case Kind::Cifar10:
      return "data_batch_1.bin … data_batch_5.bin and test_batch.bin";
    case Kind::Cifar100:
      return "train.bin and test.bin";
    case Kind::FashionMnist:
      return "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-… (raw or .gz)";
    case Kind::Synthetic:
      break;
  }
  return "";
}

Chunk read_cifar(const std::string& path, const DatasetInfo& info) {
  const bool fine = info.kind == Kind::Cifar100;
  const std::string p = resolved_path(path);
  const char* file = p.c_str();
  const size_t pixels = size_t(info.shape.H) * info.shape.W * info.shape.C;
  const size_t label_bytes = fine ? 2 : 1;  // CIFAR-100: coarse, then fine
  const size_t record = label_bytes + pixels;
  const char* format = fine ? "CIFAR-100" : "CIFAR-10";

  Chunk c;
  c.images = read_source(path, info, expected_files(info.kind));
  const size_t size = c.images.size();
  ENSURE(size % record == 0, "%s: %zu bytes is not a whole number of %zu-byte %s records", file, size, record, format);
  ENSURE(size > 0, "%s: empty file (no %s records)", file, format);
  c.count = static_cast<int64_t>(size / record);
  c.image_offset = label_bytes;
  c.image_stride = record;
  c.label_offset = label_bytes - 1;
  c.label_stride = record;
  c.planar = true;
  for (int64_t i = 0; i < c.count; ++i) {
    const uint8_t* r = c.images.data() + static_cast<size_t>(i) * record;
    if (fine)
      ENSURE(r[0] < 20, "%s: record %lld has coarse label %d (CIFAR-100 coarse labels are 0-19)", file,
             static_cast<long long>(i), r[0]);
    const int label = r[label_bytes - 1];
    ENSURE(label < info.shape.num_classes, "%s: record %lld has label %d (%s labels are 0-%d)", file,
           static_cast<long long>(i), label, format, info.shape.num_classes - 1);
  }
  return c;
}

uint32_t read_be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

struct IdxFile {
  std::string path;
  std::vector<uint8_t> bytes;
  int64_t count = 0;
};

// IDX images: magic 0x00000803, then big-endian n, rows, cols, then n·rows·cols bytes.
IdxFile read_idx_images(const std::string& path, const DatasetInfo& info) {
  IdxFile f{resolved_path(path), read_source(path, info, expected_files(info.kind)), 0};
  const char* file = f.path.c_str();
  ENSURE(f.bytes.size() >= 16, "%s: %zu bytes is too short for an IDX image header (16 bytes)", file, f.bytes.size());
  const uint32_t magic = read_be32(f.bytes.data());
  ENSURE(magic == 0x803, "%s: magic 0x%08x is not that of an IDX image file (0x00000803)", file, magic);
  const uint32_t n = read_be32(f.bytes.data() + 4), rows = read_be32(f.bytes.data() + 8),
                 cols = read_be32(f.bytes.data() + 12);
  ENSURE(rows == uint32_t(info.shape.H) && cols == uint32_t(info.shape.W), "%s: images are %u×%u, expected %d×%d", file,
         rows, cols, info.shape.H, info.shape.W);
  ENSURE(n > 0, "%s: the header says 0 images", file);
  const uint64_t expected = 16 + uint64_t(n) * rows * cols;
  ENSURE(f.bytes.size() >= expected,
         "%s: truncated: the header promises %u images (%llu bytes) but the file has %zu bytes", file, n,
         static_cast<unsigned long long>(expected), f.bytes.size());
  ENSURE(f.bytes.size() == expected, "%s: %llu extra bytes after the %u images the header promises", file,
         static_cast<unsigned long long>(f.bytes.size() - expected), n);
  f.count = n;
  return f;
}

// IDX labels: magic 0x00000801, then big-endian n, then n label bytes.
IdxFile read_idx_labels(const std::string& path, const DatasetInfo& info) {
  IdxFile f{resolved_path(path), read_source(path, info, expected_files(info.kind)), 0};
  const char* file = f.path.c_str();
  ENSURE(f.bytes.size() >= 8, "%s: %zu bytes is too short for an IDX label header (8 bytes)", file, f.bytes.size());
  const uint32_t magic = read_be32(f.bytes.data());
  ENSURE(magic == 0x801, "%s: magic 0x%08x is not that of an IDX label file (0x00000801)", file, magic);
  const uint32_t n = read_be32(f.bytes.data() + 4);
  ENSURE(n > 0, "%s: the header says 0 labels", file);
  const uint64_t expected = 8 + uint64_t(n);
  ENSURE(f.bytes.size() >= expected, "%s: truncated: the header promises %u labels but the file has %zu bytes", file, n,
         f.bytes.size());
  ENSURE(f.bytes.size() == expected, "%s: %llu extra bytes after the %u labels the header promises", file,
         static_cast<unsigned long long>(f.bytes.size() - expected), n);
  for (uint32_t i = 0; i < n; ++i)
    ENSURE(f.bytes[8 + i] < info.shape.num_classes, "%s: record %u has label %d (Fashion-MNIST labels are 0-%d)", file,
           i, f.bytes[8 + i], info.shape.num_classes - 1);
  f.count = n;
  return f;
}

Chunk pair_idx(IdxFile images, IdxFile labels, const DataShape& s) {
  ENSURE(images.count == labels.count, "%s holds %lld images but %s holds %lld labels", images.path.c_str(),
         static_cast<long long>(images.count), labels.path.c_str(), static_cast<long long>(labels.count));
  Chunk c;
  c.count = images.count;
  c.images = std::move(images.bytes);
  c.labels = std::move(labels.bytes);
  c.image_offset = 16;
  c.image_stride = size_t(s.H) * s.W;
  c.label_offset = 8;
  c.label_stride = 1;
  return c;
}

struct SplitFiles {
  std::vector<std::string> cifar;  // CIFAR: one chunk per file
  std::string idx_images, idx_labels;
};

SplitFiles split_files(const DatasetInfo& info, const std::string& dir, bool train) {
  SplitFiles f;
  switch (info.kind) {
    case Kind::Cifar10:
      if (train)
        for (int b = 1; b <= 5; ++b) f.cifar.push_back(join_path(dir, strfmt("data_batch_%d.bin", b)));
      else
        f.cifar.push_back(join_path(dir, "test_batch.bin"));
      break;
    case Kind::Cifar100:
      f.cifar.push_back(join_path(dir, train ? "train.bin" : "test.bin"));
      break;
    case Kind::FashionMnist:
      f.idx_images = join_path(dir, train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte");
      f.idx_labels = join_path(dir, train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte");
      break;
    case Kind::Synthetic:
      break;
  }
  return f;
}

Dataset empty_dataset(const DatasetInfo& info, const char* split, int64_t n) {
  Dataset d;
  d.name = info.name;
  d.split = split;
  d.H = info.shape.H;
  d.W = info.shape.W;
  d.C = info.shape.C;
  d.num_classes = info.shape.num_classes;
  d.images = Tensor::host({n, d.H, d.W, d.C}, DType::U8);
  d.labels = Tensor::host({n}, DType::I32);
  return d;
}

// Decodes the first n records of c into d, from d's record `first` on.
void decode_chunk(const Chunk& c, int64_t n, Dataset& d, int64_t first) {
  const size_t hw = size_t(d.H) * d.W, C = size_t(d.C);
  uint8_t* images = d.images.data<uint8_t>() + static_cast<size_t>(first) * hw * C;
  int32_t* labels = d.labels.data<int32_t>() + first;
  for (int64_t i = 0; i < n; ++i) {
    labels[i] = c.label(i);
    const uint8_t* src = c.record(i);
    uint8_t* dst = images + static_cast<size_t>(i) * hw * C;
    if (!c.planar) {
      std::memcpy(dst, src, hw * C);
      continue;
    }
    // Pixel-major, so that the writes are sequential and the C planes are read as streams.
    for (size_t p = 0; p < hw; ++p)
      for (size_t ch = 0; ch < C; ++ch) dst[p * C + ch] = src[ch * hw + p];
  }
}

Dataset load_split(const DatasetInfo& info, const std::string& dir, bool train, int64_t limit) {
  // Limit 0: the split is not wanted, so its files are not even looked for.
  if (limit == 0) return empty_dataset(info, train ? "train" : "test", 0);
  const SplitFiles files = split_files(info, dir, train);
  std::vector<Chunk> chunks;
  int64_t total = 0;
  if (!files.cifar.empty()) {
    // Stop reading once the limit is met: a quick run on 1000 records reads one batch.
    for (const std::string& path : files.cifar) {
      if (limit >= 0 && total >= limit) break;
      chunks.push_back(read_cifar(path, info));
      total += chunks.back().count;
    }
  } else {
    chunks.push_back(
        pair_idx(read_idx_images(files.idx_images, info), read_idx_labels(files.idx_labels, info), info.shape));
    total = chunks.back().count;
  }
  const int64_t n = limit >= 0 ? std::min(limit, total) : total;
  Dataset d = empty_dataset(info, train ? "train" : "test", n);
  int64_t filled = 0;
  for (const Chunk& c : chunks) {
    const int64_t take = std::min(c.count, n - filled);
    decode_chunk(c, take, d, filled);
    filled += take;
  }
  return d;
}

// ---------------------------------------------------------------------------------------
// Synthetic data: each class is a smooth prototype (a background colour plus a few soft
// coloured blobs) drawn on a 36×36 canvas; a sample is a 32×32 window of it shifted by up
// to 2 px, plus uniform noise. Integer arithmetic only, from splitmix64, so every platform
// and compiler produces the same bytes.

struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform integer in [lo, hi]; the modulo bias (< 2^-50) is irrelevant here.
  int range(int lo, int hi) { return lo + static_cast<int>(next() % uint64_t(hi - lo + 1)); }
};

constexpr uint64_t kSyntheticSeed = 0x5eed'ac71'7e1d'5eedull;
constexpr int kSyntheticTrain = 2000, kSyntheticTest = 500, kSyntheticMargin = 2, kSyntheticBlobs = 4;
constexpr int kSyntheticNoise = 32;  // noise is uniform in [-32, 31]

std::vector<uint8_t> synthetic_prototypes(const DataShape& s) {
  const int cw = s.W + 2 * kSyntheticMargin, ch = s.H + 2 * kSyntheticMargin;
  std::vector<uint8_t> protos(size_t(s.num_classes) * ch * cw * s.C);
  SplitMix64 rng{kSyntheticSeed};
  std::vector<int> acc(size_t(ch) * cw * s.C);
  for (int k = 0; k < s.num_classes; ++k) {
    for (int c = 0; c < s.C; ++c) {
      const int bg = rng.range(50, 205);
      for (int p = 0; p < ch * cw; ++p) acc[size_t(p) * s.C + c] = bg * 256;
    }
    for (int b = 0; b < kSyntheticBlobs; ++b) {
      const int cy = rng.range(0, ch - 1), cx = rng.range(0, cw - 1), r = rng.range(5, 11);
      int amp[4] = {};
      for (int c = 0; c < s.C; ++c) amp[c] = rng.range(-120, 120);
      const int r2 = r * r;
      for (int y = 0; y < ch; ++y)
        for (int x = 0; x < cw; ++x) {
          const int d2 = (y - cy) * (y - cy) + (x - cx) * (x - cx);
          if (d2 >= r2) continue;
          // (1 − d²/r²)² in 1/65536 steps: smooth, peak 1 at the centre, 0 at the rim.
          const int w = (r2 - d2) * (r2 - d2) * 65536 / (r2 * r2);
          for (int c = 0; c < s.C; ++c) acc[(size_t(y) * cw + x) * s.C + c] += amp[c] * w / 256;
        }
    }
    uint8_t* dst = protos.data() + size_t(k) * ch * cw * s.C;
    for (size_t i = 0; i < acc.size(); ++i) dst[i] = static_cast<uint8_t>(std::clamp(acc[i] / 256, 0, 255));
  }
  return protos;
}

Dataset synthetic_split(const DatasetInfo& info, const std::vector<uint8_t>& protos, bool train, int64_t limit) {
  const DataShape& s = info.shape;
  const int total = train ? kSyntheticTrain : kSyntheticTest;
  const int64_t n = limit >= 0 ? std::min<int64_t>(limit, total) : total;
  Dataset d = empty_dataset(info, train ? "train" : "test", n);
  SplitMix64 rng{kSyntheticSeed ^ (train ? 0x7261696eull : 0x74657374ull)};

  // Exactly total/num_classes samples per class, in a seeded random order.
  std::vector<int32_t> order(static_cast<size_t>(total));
  for (int i = 0; i < total; ++i) order[static_cast<size_t>(i)] = i % s.num_classes;
  for (int i = total - 1; i > 0; --i)
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(rng.range(0, i))]);

  const int cw = s.W + 2 * kSyntheticMargin, ch = s.H + 2 * kSyntheticMargin;
  const size_t row = size_t(s.W) * s.C;
  uint8_t* images = d.images.data<uint8_t>();
  int32_t* labels = d.labels.data<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int label = order[static_cast<size_t>(i)];
    const int dy = rng.range(0, 2 * kSyntheticMargin), dx = rng.range(0, 2 * kSyntheticMargin);
    labels[i] = label;
    const uint8_t* proto = protos.data() + size_t(label) * ch * cw * s.C;
    uint8_t* dst = images + static_cast<size_t>(i) * s.H * row;
    for (int y = 0; y < s.H; ++y) {
      const uint8_t* src = proto + (size_t(y + dy) * cw + dx) * s.C;
      uint8_t* out = dst + size_t(y) * row;
      // One 64-bit draw gives the noise of 8 sub-pixels.
      for (size_t j = 0; j < row; j += 8) {
        uint64_t bits = rng.next();
        for (size_t t = j; t < std::min(row, j + 8); ++t, bits >>= 8) {
          const int noise = static_cast<int>(bits & (2 * kSyntheticNoise - 1)) - kSyntheticNoise;
          out[t] = static_cast<uint8_t>(std::clamp(src[t] + noise, 0, 255));
        }
      }
    }
  }
  return d;
}

// ---------------------------------------------------------------------------------------
// Class names

std::vector<std::string> builtin_class_names(const DatasetInfo& info) {
  switch (info.kind) {
    case Kind::Cifar10:
      return kCifar10Classes;
    case Kind::Cifar100:
      return kCifar100Classes;
    case Kind::FashionMnist:
      return kFashionClasses;
    case Kind::Synthetic:
      break;
  }
  std::vector<std::string> names;
  for (int k = 0; k < info.shape.num_classes; ++k) names.push_back(strfmt("class%d", k));
  return names;
}

// From batches.meta.txt / fine_label_names.txt when the folder has one (one name per line,
// blank lines ignored), else the built-in list.
std::vector<std::string> class_names(const DatasetInfo& info, const std::string& dir) {
  const char* file = info.kind == Kind::Cifar10    ? "batches.meta.txt"
                     : info.kind == Kind::Cifar100 ? "fine_label_names.txt"
                                                   : nullptr;
  if (!file || !file_exists(join_path(dir, file))) return builtin_class_names(info);
  const std::string path = join_path(dir, file);
  const std::vector<uint8_t> bytes = read_file(path);
  std::vector<std::string> names;
  std::string line;
  for (size_t i = 0; i <= bytes.size(); ++i) {
    if (i < bytes.size() && bytes[i] != '\n') {
      line += static_cast<char>(bytes[i]);
      continue;
    }
    const size_t b = line.find_first_not_of(" \t\r"), e = line.find_last_not_of(" \t\r");
    if (b != std::string::npos) names.push_back(line.substr(b, e - b + 1));
    line.clear();
  }
  ENSURE(names.size() == size_t(info.shape.num_classes), "%s: %zu class names, expected %d", path.c_str(), names.size(),
         info.shape.num_classes);
  return names;
}

std::string data_dir(const DataSpec& spec, const DatasetInfo& info) {
  return spec.dir.empty() ? info.dir : spec.dir;
}

// ---------------------------------------------------------------------------------------
// Inspection

// Label histogram and per-channel pixel sums of a split, accumulated chunk by chunk so
// that a full CIFAR split is never held twice.
struct SplitStats {
  std::vector<int64_t> histogram;
  std::vector<uint64_t> sum, sum_sq;
  int64_t count = 0;

  explicit SplitStats(const DataShape& s) : histogram(size_t(s.num_classes)), sum(size_t(s.C)), sum_sq(size_t(s.C)) {}

  void add(const Chunk& c, const DataShape& s) {
    const size_t hw = size_t(s.H) * s.W, C = size_t(s.C);
    for (int64_t i = 0; i < c.count; ++i) {
      ++histogram[size_t(c.label(i))];
      const uint8_t* r = c.record(i);
      // Planar: channel ch is the run [ch·hw, (ch+1)·hw); interleaved: every C-th byte.
      const size_t run = c.planar ? hw : 1, step = c.planar ? 1 : C;
      for (size_t ch = 0; ch < C; ++ch) {
        uint64_t s = 0, sq = 0;
        for (size_t k = 0; k < hw; ++k) {
          const uint64_t v = r[ch * run + k * step];
          s += v;
          sq += v * v;
        }
        sum[ch] += s;
        sum_sq[ch] += sq;
      }
    }
    count += c.count;
  }
  void add(const Dataset& d) {
    Chunk view;  // the dataset as one H×W×C chunk (a copy: synthetic is small)
    view.images.assign(d.images.data<uint8_t>(), d.images.data<uint8_t>() + d.images.bytes());
    const int32_t* labels = d.labels.data<int32_t>();
    view.labels.assign(labels, labels + d.size());
    view.image_stride = size_t(d.H) * d.W * d.C;
    view.label_stride = 1;
    view.count = d.size();
    add(view, {d.H, d.W, d.C, d.num_classes});
  }
  void fill(DataSplitReport& r, const DataShape& s) const {
    r.count = count;
    r.label_histogram = histogram;
    const double n = double(count) * s.H * s.W;
    for (size_t c = 0; c < sum.size(); ++c) {
      const double mean = n > 0 ? double(sum[c]) / n : 0.0;
      const double var = n > 0 ? std::max(0.0, double(sum_sq[c]) / n - mean * mean) : 0.0;
      r.pixel_mean.push_back(mean / 255.0);
      r.pixel_std.push_back(std::sqrt(var) / 255.0);
    }
    r.ok = true;
  }
};

}  // namespace

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const DatasetInfo& info : dataset_table()) v.emplace_back(info.name);
    return v;
  }();
  return names;
}

std::string default_data_dir(const std::string& name) {
  return dataset_info(name).dir;
}
DataShape dataset_shape(const std::string& name) {
  return dataset_info(name).shape;
}
Normalization dataset_normalization(const std::string& name) {
  return dataset_info(name).norm;
}
std::vector<std::string> dataset_class_names(const std::string& name) {
  return builtin_class_names(dataset_info(name));
}

DataSplits load_data(const DataSpec& spec) {
  const DatasetInfo& info = dataset_info(spec.name);
  ENSURE(spec.limit_train >= -1 && spec.limit_test >= -1,
         "%s: limits must be -1 (all), 0 (none) or a record count, got %lld / %lld", info.name,
         static_cast<long long>(spec.limit_train), static_cast<long long>(spec.limit_test));
  DataSplits out;
  out.norm = info.norm;
  if (info.kind == Kind::Synthetic) {
    const std::vector<uint8_t> protos = synthetic_prototypes(info.shape);
    out.train = synthetic_split(info, protos, true, spec.limit_train);
    out.test = synthetic_split(info, protos, false, spec.limit_test);
    out.class_names = builtin_class_names(info);
    return out;
  }
  const std::string dir = data_dir(spec, info);
  out.train = load_split(info, dir, true, spec.limit_train);
  out.test = load_split(info, dir, false, spec.limit_test);
  out.class_names = class_names(info, dir);
  return out;
}

bool DataReport::ok() const {
  for (const DataFileReport& f : files)
    if (!f.error.empty()) return false;
  for (const DataSplitReport& s : splits)
    if (!s.ok) return false;
  return !splits.empty();
}

DataReport inspect_data(const DataSpec& spec) {
  const DatasetInfo& info = dataset_info(spec.name);
  DataReport report;
  report.name = info.name;
  report.shape = info.shape;
  if (info.kind == Kind::Synthetic) {
    const DataSplits data = load_data({spec.name, "", -1, -1});
    for (const Dataset* d : {&data.train, &data.test}) {
      SplitStats stats(info.shape);
      stats.add(*d);
      DataSplitReport& r = report.splits.emplace_back();
      r.split = d->split;
      stats.fill(r, info.shape);
    }
    return report;
  }
  report.dir = data_dir(spec, info);

  // Runs one file's reader, recording its path, record count or error.
  const auto check_file = [&](const std::string& path, const auto& read) {
    DataFileReport& f = report.files.emplace_back();
    f.path = resolved_path(path);
    try {
      auto result = read(path);
      f.records = result.count;
      return std::optional(std::move(result));
    } catch (const Error& e) {
      f.error = e.what();
      return std::optional<decltype(read(path))>();
    }
  };

  for (const bool train : {true, false}) {
    DataSplitReport& r = report.splits.emplace_back();
    r.split = train ? "train" : "test";
    const SplitFiles files = split_files(info, report.dir, train);
    SplitStats stats(info.shape);
    bool all_ok = true;
    if (!files.cifar.empty()) {
      for (const std::string& path : files.cifar) {
        const auto chunk = check_file(path, [&](const std::string& p) { return read_cifar(p, info); });
        if (chunk) stats.add(*chunk, info.shape);
        all_ok &= chunk.has_value();
      }
    } else {
      auto images = check_file(files.idx_images, [&](const std::string& p) { return read_idx_images(p, info); });
      auto labels = check_file(files.idx_labels, [&](const std::string& p) { return read_idx_labels(p, info); });
      all_ok = images && labels;
      if (all_ok) {
        try {
          stats.add(pair_idx(std::move(*images), std::move(*labels), info.shape), info.shape);
        } catch (const Error& e) {
          r.error = e.what();
          all_ok = false;
        }
      }
    }
    if (all_ok) stats.fill(r, info.shape);
  }
  return report;
}

namespace {

std::string join_numbers(const std::vector<double>& v, const char* fmt) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + strfmt(fmt, v[i]);
  return s;
}

}  // namespace

std::string format_data_report(const DataReport& report) {
  const DataShape& s = report.shape;
  std::string out = strfmt("%s (%d×%d×%d, %d classes)%s%s: %s\n", report.name.c_str(), s.H, s.W, s.C, s.num_classes,
                           report.dir.empty() ? "" : " in ", report.dir.c_str(), report.ok() ? "OK" : "ERRORS");
  for (const DataFileReport& f : report.files) {
    if (f.error.empty())
      out += strfmt("  ok     %s: %lld records\n", f.path.c_str(), static_cast<long long>(f.records));
    else
      out += strfmt("  ERROR  %s\n", f.error.c_str());
  }
  for (const DataSplitReport& r : report.splits) {
    if (!r.error.empty()) out += strfmt("  ERROR  %s: %s\n", r.split.c_str(), r.error.c_str());
    if (!r.ok) {
      out += strfmt("  %s: not checked (bad files)\n", r.split.c_str());
      continue;
    }
    const auto [lo, hi] = std::minmax_element(r.label_histogram.begin(), r.label_histogram.end());
    out += strfmt("  %s: %lld images, %lld-%lld per class; pixel mean (%s), std (%s)\n", r.split.c_str(),
                  static_cast<long long>(r.count), static_cast<long long>(*lo), static_cast<long long>(*hi),
                  join_numbers(r.pixel_mean, "%.4f").c_str(), join_numbers(r.pixel_std, "%.4f").c_str());
  }
  return out;
}

std::string data_report_json(const DataReport& report) {
  nlohmann::ordered_json j;
  j["dataset"] = report.name;
  j["dir"] = report.dir;
  j["ok"] = report.ok();
  j["shape"] = {
      {"H", report.shape.H}, {"W", report.shape.W}, {"C", report.shape.C}, {"num_classes", report.shape.num_classes}};
  j["files"] = nlohmann::ordered_json::array();
  for (const DataFileReport& f : report.files) {
    nlohmann::ordered_json jf = {{"path", f.path}, {"records", f.records}, {"ok", f.error.empty()}};
    if (!f.error.empty()) jf["error"] = f.error;
    j["files"].push_back(jf);
  }
  j["splits"] = nlohmann::ordered_json::object();
  for (const DataSplitReport& r : report.splits) {
    nlohmann::ordered_json js = {{"ok", r.ok}, {"count", r.count}};
    if (r.ok) {
      js["label_histogram"] = r.label_histogram;
      js["pixel_mean"] = r.pixel_mean;
      js["pixel_std"] = r.pixel_std;
    }
    if (!r.error.empty()) js["error"] = r.error;
    j["splits"][r.split] = js;
  }
  // Error messages quote file contents only through escaped paths, but a path itself may be
  // any bytes: replace what is not UTF-8 rather than fail.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace activeip
