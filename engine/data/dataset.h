// Datasets: CIFAR-10 / CIFAR-100 binary, Fashion-MNIST IDX (raw or .gz) and a seeded
// synthetic set, loaded whole into host memory as uint8 NHWC images and int32 labels
// (CIFAR's planar RGB records are transposed on load). Record counts come from the file
// sizes and IDX headers; every malformed input is an Error naming the file and the record.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/tensor.h"

namespace activeip {

// Per-channel mean and std on the [0, 1] pixel scale.
struct Normalization {
  std::vector<float> mean, std;
};

struct Dataset {
  std::string name, split;  // "cifar10", "train" | "test"
  int H = 0, W = 0, C = 0, num_classes = 0;
  Tensor images;  // u8, host, count×H×W×C
  Tensor labels;  // i32, host, count
  int64_t size() const { return labels.defined() && labels.rank() == 1 ? labels.dim(0) : 0; }
};

struct DataSpec {
  std::string name;
  std::string dir;  // empty: default_data_dir(name)
  // -1: every record; otherwise the first N records (all of them when there are fewer).
  // 0: the split is not read at all (none of its files is opened, so they need not exist)
  // and comes back empty — for commands that read only the test split.
  int64_t limit_train = -1, limit_test = -1;
};

struct DataSplits {
  Dataset train, test;
  Normalization norm;
  std::vector<std::string> class_names;  // num_classes entries
};

DataSplits load_data(const DataSpec& spec);

// round(fraction·n) records (at least 2) of `data` chosen by a permutation seeded with
// `seed`, kept in their original order: the attacker's share of the training split (attacks
// take it with their --seed; `train --fraction` trains on the same records). Error unless
// 0 < fraction ≤ 1.
Dataset seeded_subset(const Dataset& data, double fraction, uint64_t seed);

// A 16-hex-digit digest (FNV-1a, not cryptographic) of the records in order, labels and
// pixels: two runs that print the same digest trained on the same records.
std::string records_digest(const Dataset& data);

// cifar10 cifar100 fashion-mnist synthetic.
const std::vector<std::string>& dataset_names();
// data/cifar-10-batches-bin, data/cifar-100-binary, data/fashion-mnist; "" for synthetic.
std::string default_data_dir(const std::string& name);

struct DataShape {
  int H, W, C, num_classes;
};
// Without loading anything; Error "unknown dataset 'x' (known: …)".
DataShape dataset_shape(const std::string& name);
// The published training-set statistics (for synthetic: those of its generator).
Normalization dataset_normalization(const std::string& name);
// The official class names (class0 … for synthetic): what a split is named with when its
// folder has no class-name file.
std::vector<std::string> dataset_class_names(const std::string& name);

// What `activeip data check` reports: every file read and validated on its own (a bad file
// does not hide the others), then, when a split's files are all good, its statistics.
// Limits in the spec are ignored: every record is checked.
struct DataFileReport {
  std::string path;  // the file actually read (PATH or PATH.gz)
  int64_t records = 0;
  std::string error;  // empty when the file is good
};
struct DataSplitReport {
  std::string split;  // "train" | "test"
  int64_t count = 0;
  std::vector<int64_t> label_histogram;       // num_classes entries
  std::vector<double> pixel_mean, pixel_std;  // per channel, on the [0, 1] scale
  std::string error;                          // a problem across files (image/label counts differ)
  bool ok = false;                            // all files good and the split assembled
};
struct DataReport {
  std::string name, dir;
  DataShape shape{};
  std::vector<DataFileReport> files;
  std::vector<DataSplitReport> splits;
  bool ok() const;
};

DataReport inspect_data(const DataSpec& spec);

}  // namespace activeip
