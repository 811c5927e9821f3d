// CIFAR-10 and CIFAR-100 binary: records of label byte(s) — CIFAR-100 a coarse, then the fine
// label — and C planes of H×W. The record count comes from the file size; every label is
// checked against the format's range.
#include "base/error.h"
#include "engine/data/formats.h"

namespace activeip::data {

Chunk read_cifar(const std::string& path, const DatasetInfo& info) {
  const bool fine = info.kind == Kind::Cifar100;
  const std::string p = resolved_path(path);
  const char* file = p.c_str();
  const size_t pixels = size_t(info.shape.H) * info.shape.W * info.shape.C;
  const size_t label_bytes = fine ? 2 : 1;  // CIFAR-100: coarse, then fine
  const size_t record = label_bytes + pixels;
  const char* format = fine ? "CIFAR-100" : "CIFAR-10";

  Chunk c;
  c.images = read_source(path, info, kMaxCifarRecords * record);
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

}  // namespace activeip::data
