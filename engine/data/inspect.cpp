// `activeip data check`'s inspection: every file of both splits read and validated on its
// own (a bad file does not hide the others), then each good split's label histogram and
// per-channel pixel statistics, accumulated chunk by chunk so that a full CIFAR split is
// never held twice.
#include <algorithm>
#include <cmath>
#include <optional>

#include "engine/data/dataset.h"
#include "engine/data/formats.h"

namespace activeip {

using namespace data;

namespace {

// Label histogram and per-channel pixel sums of a split.
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

}  // namespace activeip
