// The datasets: the table of what each is (shape, normalisation, default folder, class
// names), where a split's files are, and the assembly of a split from its sources — every
// source read whole and validated by its format's reader (formats.h), then its first n
// records decoded into the u8 NHWC image tensor and the i32 label tensor (CIFAR's planar
// records transposed to H×W×C here).
#include "engine/data/dataset.h"

#include <algorithm>
#include <cstring>

#include "engine/core/file_io.h"
#include "engine/data/formats.h"

namespace activeip {
namespace data {

namespace {

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

std::string join_path(const std::string& dir, const std::string& file) {
  if (dir.empty()) return file;
  return dir.back() == '/' ? dir + file : dir + "/" + file;
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

}  // namespace

const DatasetInfo& dataset_info(const std::string& name) {
  for (const DatasetInfo& info : dataset_table())
    if (name == info.name) return info;
  std::string known;
  for (const DatasetInfo& info : dataset_table()) known += (known.empty() ? "" : ", ") + std::string(info.name);
  ENSURE(false, "unknown dataset '%s' (known: %s)", name.c_str(), known.c_str());
  return dataset_table().front();
}

std::string resolved_path(const std::string& path) {
  return !file_exists(path) && file_exists(path + ".gz") ? path + ".gz" : path;
}

std::vector<uint8_t> read_source(const std::string& path, const DatasetInfo& info, size_t max_bytes, bool head) {
  ENSURE(file_exists(path) || file_exists(path + ".gz"),
         "%s: missing %s (run scripts/fetch_data.sh, or pass --data-dir with the folder that holds %s)", info.name,
         path.c_str(), expected_files(info.kind));
  return head ? read_head_maybe_gzip(path, max_bytes) : read_file_maybe_gzip(path, max_bytes);
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

namespace {

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

}  // namespace

std::string data_dir(const DataSpec& spec, const DatasetInfo& info) {
  return spec.dir.empty() ? info.dir : spec.dir;
}

}  // namespace data

using namespace data;

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

}  // namespace activeip
