// IDX (Fashion-MNIST): an image file (magic 0x803, big-endian n, rows, cols, then bytes) and
// a label file (magic 0x801, n, then bytes), each validated against its header — truncation,
// extra bytes, image size, label range — and paired into one chunk of H×W (C = 1) records.
#include "base/error.h"
#include "engine/data/formats.h"

namespace activeip::data {

namespace {

uint32_t read_be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

// The bytes of an IDX file whose header (header_bytes, the count at offset 4) promises n
// records of record_bytes: a gzip stream is decoded no further than that promise (plus one
// byte, to tell extra bytes), so that a gzip bomb is refused before it costs memory.
std::vector<uint8_t> read_idx(const std::string& path, const DatasetInfo& info, size_t header_bytes,
                              size_t record_bytes) {
  const std::vector<uint8_t> head = read_source(path, info, header_bytes, true);
  if (head.size() < header_bytes) return head;  // the caller names the short header
  const uint64_t n = read_be32(head.data() + 4);
  return read_source(path, info, header_bytes + n * record_bytes + 1);
}

}  // namespace

// IDX images: magic 0x00000803, then big-endian n, rows, cols, then n·rows·cols bytes.
IdxFile read_idx_images(const std::string& path, const DatasetInfo& info) {
  IdxFile f{resolved_path(path), read_idx(path, info, 16, size_t(info.shape.H) * info.shape.W), 0};
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
  IdxFile f{resolved_path(path), read_idx(path, info, 8, 1), 0};
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

}  // namespace activeip::data
