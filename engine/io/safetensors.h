// safetensors files: an 8-byte little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}},
// then the tensor data, densely packed, offsets relative to the data start. The reader
// validates everything before handing out a view; the writer pads the header with spaces
// to a multiple of 8 bytes so that the data start is 8-byte aligned.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/tensor.h"

namespace activeip {

// Bytes per element of a safetensors dtype: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL;
// Error for any other name.
size_t safetensors_dtype_size(const std::string& dtype);

// One tensor of a loaded file. `data` points into the reader's buffer and lives as long as
// the reader; it is aligned to the data start plus its offset, not necessarily to its dtype
// when the file was written by another tool, so copy elements out with memcpy.
struct SafetensorsView {
  std::string name;
  std::string dtype;
  Shape shape;
  const uint8_t* data = nullptr;
  size_t bytes = 0;
};

class SafetensorsReader {
 public:
  // Reads the whole file and validates it; every Error names the file and what is wrong.
  explicit SafetensorsReader(const std::string& path);
  // The same from bytes in memory; `label` stands for the path in messages.
  static SafetensorsReader from_bytes(std::vector<uint8_t> bytes, std::string label);

  // Views point into bytes_: a copy would leave them pointing at the original. A move keeps
  // the vector's buffer, so moving is safe.
  SafetensorsReader(const SafetensorsReader&) = delete;
  SafetensorsReader& operator=(const SafetensorsReader&) = delete;
  SafetensorsReader(SafetensorsReader&&) = default;
  SafetensorsReader& operator=(SafetensorsReader&&) = default;

  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::vector<std::string> names() const { return order_; }  // in file order (by offset)
  bool contains(const std::string& name) const { return views_.count(name) != 0; }
  const SafetensorsView& get(const std::string& name) const;  // Error "PATH: no tensor 'x'"
  const std::string& path() const { return path_; }
  // SHA-256 (lowercase hex) of the data section, the tensor bytes after the header: what
  // SafetensorsWriter::data_sha256 gave the writer of the same tensors.
  std::string data_sha256() const;

 private:
  SafetensorsReader(std::vector<uint8_t> bytes, std::string label);
  void parse();

  std::string path_;
  std::vector<uint8_t> bytes_;
  size_t data_start_ = 0;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, SafetensorsView> views_;
  std::vector<std::string> order_;
};

class SafetensorsWriter {
 public:
  // Copies the data. Error for an unknown dtype, bytes ≠ numel·size, an empty, reserved
  // ("__metadata__") or repeated name.
  void add(const std::string& name, const std::string& dtype, const Shape& shape, const void* data, size_t bytes);
  void set_metadata(std::map<std::string, std::string> metadata) { metadata_ = std::move(metadata); }
  void set_metadata(const std::string& key, std::string value) { metadata_[key] = std::move(value); }
  // Tensors in the order they were added; atomic (write_file_atomic).
  void write(const std::string& path) const;
  // SHA-256 (lowercase hex) of the data section write() writes (the tensors, back to back).
  std::string data_sha256() const;

 private:
  struct Entry {
    std::string name, dtype;
    Shape shape;
    std::vector<uint8_t> data;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace activeip
