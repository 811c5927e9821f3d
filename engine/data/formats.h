// What the dataset files of this room share (not part of the engine's interface): the
// table entry of a dataset, a source file's records still in the file's layout (Chunk), and
// the readers of each format — CIFAR binary (cifar.cpp), IDX (idx.cpp), the synthetic
// generator (synthetic.cpp) — that dataset.cpp assembles and inspect.cpp checks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/dataset.h"

namespace activeip::data {

enum class Kind { Cifar10, Cifar100, FashionMnist, Synthetic };

struct DatasetInfo {
  Kind kind;
  const char* name;
  const char* dir;  // default folder, relative to the working directory
  DataShape shape;
  Normalization norm;
};
// The table entry of `name`; Error naming the known datasets when there is none.
const DatasetInfo& dataset_info(const std::string& name);

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

// The file that read_file_maybe_gzip will read: PATH, else PATH.gz when only that exists.
std::string resolved_path(const std::string& path);
// The bytes of a source file (gunzipped, at most max_bytes of them: read_file_maybe_gzip),
// or with head its first max_bytes; Error naming the dataset, the file and the files the
// folder should hold when it is missing.
std::vector<uint8_t> read_source(const std::string& path, const DatasetInfo& info, size_t max_bytes, bool head = false);
// An empty split of n records (u8 NHWC images, i32 labels).
Dataset empty_dataset(const DatasetInfo& info, const char* split, int64_t n);

// CIFAR-10 / CIFAR-100 binary records, every label checked. A compressed file may hold at most
// kMaxCifarRecords (the official files hold 10,000 or 50,000).
constexpr size_t kMaxCifarRecords = 100'000;
Chunk read_cifar(const std::string& path, const DatasetInfo& info);

struct IdxFile {
  std::string path;
  std::vector<uint8_t> bytes;
  int64_t count = 0;
};
IdxFile read_idx_images(const std::string& path, const DatasetInfo& info);
IdxFile read_idx_labels(const std::string& path, const DatasetInfo& info);
// One chunk from an image and a label file; Error unless their counts agree.
Chunk pair_idx(IdxFile images, IdxFile labels, const DataShape& s);

// The synthetic classes' prototypes and a split drawn from them (synthetic.cpp).
std::vector<uint8_t> synthetic_prototypes(const DataShape& s);
Dataset synthetic_split(const DatasetInfo& info, const std::vector<uint8_t>& protos, bool train, int64_t limit);

// Where a split's records are: CIFAR's files (one chunk each) or the IDX image/label pair.
struct SplitFiles {
  std::vector<std::string> cifar;
  std::string idx_images, idx_labels;
};
SplitFiles split_files(const DatasetInfo& info, const std::string& dir, bool train);
// --data-dir, else the dataset's default folder.
std::string data_dir(const DataSpec& spec, const DatasetInfo& info);

}  // namespace activeip::data
