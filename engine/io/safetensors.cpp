// safetensors reading (validate the whole header, then hand out views into the file's
// bytes) and writing (JSON header in insertion order, space-padded to 8 bytes, then the
// tensors back to back). The reader treats the file as hostile: every length and offset is
// checked with overflow-safe arithmetic before any byte behind it is touched.
#include "engine/io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <memory>
#include <set>

#include <openssl/evp.h>
#include <nlohmann/json.hpp>

#include "engine/core/file_io.h"

namespace activeip {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; so is every supported host");

namespace {

using nlohmann::json;

// A real header is a couple of MB for the largest nets; 100 MB is the format's own cap.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// Headers nest three levels (root, entry, shape); deep nesting only comes from garbage.
constexpr int kMaxDepth = 8;

const char* kDtypeNames[] = {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"};
const size_t kDtypeSizes[] = {8, 4, 2, 2, 8, 4, 2, 1, 1, 1};

// 0 for an unknown dtype.
size_t dtype_size_or_zero(const std::string& dtype) {
  for (size_t i = 0; i < std::size(kDtypeNames); ++i)
    if (dtype == kDtypeNames[i]) return kDtypeSizes[i];
  return 0;
}

// SHA-256 over the pieces, in order, as lowercase hex.
std::string sha256_hex(const std::vector<std::pair<const uint8_t*, size_t>>& pieces) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> sha(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  ENSURE(sha && EVP_DigestInit_ex(sha.get(), EVP_sha256(), nullptr) == 1, "OpenSSL SHA-256 failed");
  for (const auto& [data, n] : pieces) ENSURE(EVP_DigestUpdate(sha.get(), data, n) == 1, "OpenSSL SHA-256 failed");
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  ENSURE(EVP_DigestFinal_ex(sha.get(), digest, &len) == 1 && len == 32, "OpenSSL SHA-256 failed");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

}  // namespace

size_t safetensors_dtype_size(const std::string& dtype) {
  const size_t size = dtype_size_or_zero(dtype);
  ENSURE(size != 0, "unknown safetensors dtype '%s' (known: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)", dtype.c_str());
  return size;
}

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path), bytes_(read_file(path)) {
  parse();
}

SafetensorsReader::SafetensorsReader(std::vector<uint8_t> bytes, std::string label)
    : path_(std::move(label)), bytes_(std::move(bytes)) {
  parse();
}

SafetensorsReader SafetensorsReader::from_bytes(std::vector<uint8_t> bytes, std::string label) {
  return SafetensorsReader(std::move(bytes), std::move(label));
}

const SafetensorsView& SafetensorsReader::get(const std::string& name) const {
  const auto it = views_.find(name);
  ENSURE(it != views_.end(), "%s: no tensor '%s'", path_.c_str(), name.c_str());
  return it->second;
}

std::string SafetensorsReader::data_sha256() const {
  return sha256_hex({{bytes_.data() + data_start_, bytes_.size() - data_start_}});
}

void SafetensorsReader::parse() {
  const char* file = path_.c_str();
  ENSURE(bytes_.size() >= 8,
         "%s: %zu bytes is too short for a safetensors file (it starts with an 8-byte header length)", file,
         bytes_.size());
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= uint64_t(bytes_[i]) << (8 * i);
  ENSURE(header_len <= kMaxHeaderBytes, "%s: header length %llu is over the 100 MB limit (not a safetensors file?)",
         file, static_cast<unsigned long long>(header_len));
  ENSURE(header_len <= bytes_.size() - 8, "%s: header length %llu runs past the end of the file (%zu bytes)", file,
         static_cast<unsigned long long>(header_len), bytes_.size());

  // The callback sees every object as it is parsed: it rejects repeated keys (json would
  // silently keep the last one) and runaway nesting.
  std::vector<std::set<std::string>> open_objects;
  const auto check = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        ENSURE(depth < kMaxDepth, "%s: header nests deeper than %d levels", file, kMaxDepth);
        if (event == json::parse_event_t::object_start) open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        open_objects.pop_back();
        break;
      case json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        ENSURE(open_objects.back().insert(key).second, "%s: header has the key '%s' twice", file, key.c_str());
        break;
      }
      default:
        break;
    }
    return true;
  };
  json header;
  const auto* begin = reinterpret_cast<const char*>(bytes_.data() + 8);
  try {
    header = json::parse(begin, begin + header_len, check);
  } catch (const json::exception& e) {
    ENSURE(false, "%s: header is not valid JSON (%s)", file, e.what());
  }
  ENSURE(header.is_object(), "%s: header is a JSON %s, not an object", file, header.type_name());

  const uint64_t data_start = 8 + header_len;
  data_start_ = static_cast<size_t>(data_start);
  const uint64_t data_size = bytes_.size() - data_start;
  struct Span {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Span> spans;

  // A JSON number that must be a non-negative integer (json stores those as unsigned).
  const auto to_count = [&](const json& v, const std::string& name, const char* what) {
    ENSURE(v.is_number_integer() || v.is_number_float(), "%s: tensor '%s' has a non-numeric %s entry", file,
           name.c_str(), what);
    ENSURE(!v.is_number_float(), "%s: tensor '%s' has a non-integer %s entry", file, name.c_str(), what);
    ENSURE(v.is_number_unsigned(), "%s: tensor '%s' has a negative %s entry", file, name.c_str(), what);
    return v.get<uint64_t>();
  };

  for (const auto& [name, entry] : header.items()) {
    const char* tname = name.c_str();
    if (name == "__metadata__") {
      ENSURE(entry.is_object(), "%s: __metadata__ is a JSON %s, not an object", file, entry.type_name());
      for (const auto& [key, value] : entry.items()) {
        ENSURE(value.is_string(), "%s: __metadata__ value of '%s' is a JSON %s, not a string", file, key.c_str(),
               value.type_name());
        metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    ENSURE(entry.is_object(), "%s: entry '%s' is a JSON %s, not an object", file, tname, entry.type_name());
    ENSURE(entry.contains("dtype") && entry["dtype"].is_string(), "%s: tensor '%s' has no dtype string", file, tname);
    ENSURE(entry.contains("shape") && entry["shape"].is_array(), "%s: tensor '%s' has no shape array", file, tname);
    ENSURE(entry.contains("data_offsets") && entry["data_offsets"].is_array() && entry["data_offsets"].size() == 2,
           "%s: tensor '%s' has no data_offsets [begin, end]", file, tname);

    SafetensorsView view;
    view.name = name;
    view.dtype = entry["dtype"].get<std::string>();
    const size_t elem = dtype_size_or_zero(view.dtype);
    ENSURE(elem != 0, "%s: tensor '%s' has the unknown dtype '%s'", file, tname, view.dtype.c_str());

    uint64_t numel = 1;
    bool overflow = false;
    for (const json& d : entry["shape"]) {
      const uint64_t dim = to_count(d, name, "shape");
      ENSURE(dim <= uint64_t(std::numeric_limits<int64_t>::max()), "%s: tensor '%s' has a shape entry too large", file,
             tname);
      view.shape.push_back(static_cast<int64_t>(dim));
      overflow |= __builtin_mul_overflow(numel, dim, &numel);
    }
    uint64_t expected = 0;
    overflow |= __builtin_mul_overflow(numel, uint64_t(elem), &expected);
    ENSURE(!overflow, "%s: tensor '%s' of shape %s is too large", file, tname, shape_str(view.shape).c_str());

    const uint64_t b = to_count(entry["data_offsets"][0], name, "data_offsets");
    const uint64_t e = to_count(entry["data_offsets"][1], name, "data_offsets");
    ENSURE(b <= e && e <= data_size, "%s: tensor '%s' has data_offsets [%llu, %llu] outside the %llu data bytes", file,
           tname, static_cast<unsigned long long>(b), static_cast<unsigned long long>(e),
           static_cast<unsigned long long>(data_size));
    ENSURE(e - b == expected, "%s: tensor '%s' (%s %s) needs %llu bytes but data_offsets span %llu", file, tname,
           view.dtype.c_str(), shape_str(view.shape).c_str(), static_cast<unsigned long long>(expected),
           static_cast<unsigned long long>(e - b));
    view.data = bytes_.data() + data_start + b;
    view.bytes = static_cast<size_t>(e - b);
    spans.push_back({b, e, name});
    views_.emplace(name, std::move(view));
  }

  // The data must be exactly the tensors, back to back: no overlap, no gap, nothing after.
  std::sort(spans.begin(), spans.end(), [](const Span& x, const Span& y) {
    return std::tie(x.begin, x.end, x.name) < std::tie(y.begin, y.end, y.name);
  });
  uint64_t pos = 0;
  const std::string* prev = nullptr;
  for (const Span& s : spans) {
    ENSURE(s.begin >= pos, "%s: tensors '%s' and '%s' overlap", file, prev ? prev->c_str() : "", s.name.c_str());
    ENSURE(s.begin == pos, "%s: %llu unused data bytes before tensor '%s'", file,
           static_cast<unsigned long long>(s.begin - pos), s.name.c_str());
    pos = s.end;
    prev = &s.name;
    order_.push_back(s.name);
  }
  ENSURE(pos == data_size, "%s: %llu unused data bytes after the last tensor", file,
         static_cast<unsigned long long>(data_size - pos));
}

void SafetensorsWriter::add(const std::string& name, const std::string& dtype, const Shape& shape, const void* data,
                            size_t bytes) {
  ENSURE(!name.empty() && name != "__metadata__", "safetensors: invalid tensor name '%s'", name.c_str());
  for (const Entry& e : entries_) ENSURE(e.name != name, "safetensors: tensor '%s' added twice", name.c_str());
  const size_t elem = safetensors_dtype_size(dtype);
  for (int64_t d : shape)
    ENSURE(d >= 0, "safetensors: tensor '%s' has the negative shape %s", name.c_str(), shape_str(shape).c_str());
  const size_t expected = static_cast<size_t>(shape_numel(shape)) * elem;
  ENSURE(bytes == expected, "safetensors: tensor '%s' (%s %s) needs %zu bytes, got %zu", name.c_str(), dtype.c_str(),
         shape_str(shape).c_str(), expected, bytes);
  ENSURE(bytes == 0 || data != nullptr, "safetensors: tensor '%s' has no data", name.c_str());
  const auto* p = static_cast<const uint8_t*>(data);
  entries_.push_back({name, dtype, shape, std::vector<uint8_t>(p, p + bytes)});
}

std::string SafetensorsWriter::data_sha256() const {
  std::vector<std::pair<const uint8_t*, size_t>> pieces;
  for (const Entry& e : entries_) pieces.emplace_back(e.data.data(), e.data.size());
  return sha256_hex(pieces);
}

void SafetensorsWriter::write(const std::string& path) const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const Entry& e : entries_) {
    const uint64_t end = offset + e.data.size();
    header[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    ENSURE(false, "cannot write %s: %s", path.c_str(), e.what());  // names or metadata that are not UTF-8
  }
  // Pad so that 8 + header length is a multiple of 8: the data start is then 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');

  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(uint64_t(text.size()) >> (8 * i));
  std::vector<std::pair<const void*, size_t>> pieces{{len, 8}, {text.data(), text.size()}};
  for (const Entry& e : entries_) pieces.emplace_back(e.data.data(), e.data.size());
  write_file_atomic(path, pieces);
}

}  // namespace activeip
