// safetensors: a bit-exact round trip over every dtype (scalars and empty tensors too),
// the header padding, files from writers that do not pad, one hand-made malformed header per
// validation rule (each error must name the file and the fault), and a corruption sweep:
// flipped bytes at every header position, every truncation and random garbage must either
// load or throw Error, never crash.
#include <algorithm>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "engine/core/file_io.h"
#include "engine/io/safetensors.h"
#include "tests/test_util.h"

using namespace activeip;
using test::TempDir;

namespace {

// A file with the given header text (not padded) followed by `data_bytes` bytes.
std::vector<uint8_t> make_file(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> out = test::random_bytes(8 + header.size() + data_bytes, 99);
  for (size_t i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(uint64_t(header.size()) >> (8 * i));
  std::copy(header.begin(), header.end(), out.begin() + 8);
  return out;
}

std::string load_error(const std::vector<uint8_t>& bytes) {
  try {
    SafetensorsReader::from_bytes(bytes, "model.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "(loaded)";
}

// A reader that loaded must hand out views inside its buffer: touching every byte lets a
// sanitizer build catch an out-of-range view.
uint64_t touch_all(const SafetensorsReader& r) {
  uint64_t sum = 0;
  for (const std::string& name : r.names()) {
    const SafetensorsView& v = r.get(name);
    for (size_t i = 0; i < v.bytes; ++i) sum += v.data[i];
  }
  return sum;
}

struct Sample {
  std::string name, dtype;
  Shape shape;
  std::vector<uint8_t> data;
};

std::vector<Sample> sample_tensors() {
  std::vector<Sample> s;
  const auto add = [&](std::string name, std::string dtype, Shape shape, uint64_t seed) {
    const size_t bytes = static_cast<size_t>(shape_numel(shape)) * safetensors_dtype_size(dtype);
    s.push_back({std::move(name), std::move(dtype), shape, test::random_bytes(bytes, seed)});
  };
  add("conv1.weight", "F32", {16, 3, 3, 3}, 1);
  add("bn1.num_batches_tracked", "I64", {}, 2);  // a scalar: shape [], one element
  add("layer1.0.bn1.running_mean", "F64", {7}, 3);
  add("half", "F16", {3, 5}, 4);
  add("brain", "BF16", {1, 9}, 5);
  add("ints", "I32", {11}, 6);
  add("shorts", "I16", {2, 3}, 7);
  add("bytes", "I8", {13}, 8);
  add("empty", "F32", {0, 4}, 9);  // zero elements, zero bytes
  add("pixels", "U8", {3, 3, 1}, 10);
  add("mask", "BOOL", {5}, 11);
  add("fc.weight", "F32", {10, 64}, 12);
  return s;
}

}  // namespace

TEST_CASE("safetensors: dtype sizes") {
  CHECK(safetensors_dtype_size("F64") == 8);
  CHECK(safetensors_dtype_size("F32") == 4);
  CHECK(safetensors_dtype_size("F16") == 2);
  CHECK(safetensors_dtype_size("BF16") == 2);
  CHECK(safetensors_dtype_size("I64") == 8);
  CHECK(safetensors_dtype_size("I32") == 4);
  CHECK(safetensors_dtype_size("I16") == 2);
  CHECK(safetensors_dtype_size("I8") == 1);
  CHECK(safetensors_dtype_size("U8") == 1);
  CHECK(safetensors_dtype_size("BOOL") == 1);
  CHECK_THROWS_AS(safetensors_dtype_size("f32"), Error);
  CHECK_THROWS_AS(safetensors_dtype_size("F8_E4M3"), Error);
}

TEST_CASE("safetensors: round trip is bit-exact, in order, with metadata") {
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  const auto tensors = sample_tensors();
  const std::map<std::string, std::string> meta = {
      {"net", "resnet18"}, {"num_classes", "10"}, {"training", R"({"lr": 0.1, "quote": "\"x\""})"}, {"unicode", "µ×≤"}};
  SafetensorsWriter w;
  for (const Sample& t : tensors) w.add(t.name, t.dtype, t.shape, t.data.data(), t.data.size());
  w.set_metadata(meta);
  w.write(path);

  const auto bytes = read_file(path);
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= uint64_t(bytes[static_cast<size_t>(i)]) << (8 * i);
  CHECK(header_len % 8 == 0);  // so the data start (8 + header_len) is 8-byte aligned
  CHECK(bytes[8] == '{');

  SafetensorsReader r(path);
  CHECK(r.path() == path);
  CHECK(r.metadata() == meta);
  std::vector<std::string> names;
  for (const Sample& t : tensors) names.push_back(t.name);
  CHECK(r.names() == names);  // file order = the order tensors were added
  size_t total = 0;
  for (const Sample& t : tensors) {
    CAPTURE(t.name);
    REQUIRE(r.contains(t.name));
    const SafetensorsView& v = r.get(t.name);
    CHECK(v.name == t.name);
    CHECK(v.dtype == t.dtype);
    CHECK(v.shape == t.shape);
    REQUIRE(v.bytes == t.data.size());
    CHECK((v.bytes == 0 || std::memcmp(v.data, t.data.data(), v.bytes) == 0));
    CHECK(v.data == r.get(tensors.front().name).data + total);  // back to back, in order
    total += v.bytes;
  }
  CHECK(bytes.size() == 8 + header_len + total);
  CHECK(reinterpret_cast<uintptr_t>(r.get("conv1.weight").data) % 8 == 0);

  CHECK_FALSE(r.contains("nope"));
  try {
    r.get("nope");
    FAIL("get of a missing tensor must throw");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find(path + ": no tensor 'nope'") != std::string::npos);
  }

  // A moved reader keeps valid views.
  SafetensorsReader moved = std::move(r);
  CHECK(std::memcmp(moved.get("fc.weight").data, tensors.back().data.data(), tensors.back().data.size()) == 0);
}

TEST_CASE("safetensors: empty file set and files without padding or metadata load") {
  const SafetensorsReader empty = SafetensorsReader::from_bytes(make_file("{}", 0), "empty");
  CHECK(empty.names().empty());
  CHECK(empty.metadata().empty());

  // As another writer might produce it: unpadded header, keys in any order, F32 first.
  const std::string header =
      R"({"b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]},"a":{"shape":[2],"data_offsets":[0,8],"dtype":"F32"},)"
      R"("__metadata__":{"format":"pt"}})";
  const SafetensorsReader r = SafetensorsReader::from_bytes(make_file(header, 11), "other.safetensors");
  CHECK(r.names() == std::vector<std::string>{"a", "b"});
  CHECK(r.get("a").bytes == 8);
  CHECK(r.get("b").shape == Shape{3});
  CHECK(r.metadata().at("format") == "pt");
}

TEST_CASE("safetensors: the writer rejects inconsistent tensors") {
  SafetensorsWriter w;
  const std::vector<uint8_t> data(24, 1);
  w.add("a", "F32", {2, 3}, data.data(), 24);
  CHECK_THROWS_AS(w.add("a", "F32", {2, 3}, data.data(), 24), Error);  // twice
  CHECK_THROWS_AS(w.add("b", "F32", {2, 3}, data.data(), 20), Error);  // bytes ≠ numel·4
  CHECK_THROWS_AS(w.add("c", "Q4", {2}, data.data(), 2), Error);       // unknown dtype
  CHECK_THROWS_AS(w.add("", "U8", {2}, data.data(), 2), Error);        // no name
  CHECK_THROWS_AS(w.add("__metadata__", "U8", {2}, data.data(), 2), Error);
  CHECK_THROWS_AS(w.add("d", "U8", {-2}, data.data(), 2), Error);
  TempDir dir;
  CHECK_THROWS_AS(w.write(dir / "missing/model.safetensors"), Error);
}

TEST_CASE("safetensors: each malformed header is an error naming the file and the fault") {
  struct Case {
    const char* what;
    std::vector<uint8_t> bytes;
    const char* expect;
  };
  const auto entry = [](const std::string& fields) { return R"({"t":{)" + fields + "}}"; };
  std::vector<uint8_t> huge_len(16, 0);
  huge_len[4] = 1;  // 2^32
  std::vector<uint8_t> past_end = make_file("{}", 0);
  past_end[0] = 40;
  const std::vector<Case> cases = {
      {"shorter than 8 bytes", {1, 0, 0}, "too short"},
      {"header length over 100 MB", huge_len, "100 MB"},
      {"header length past the end", past_end, "past the end"},
      {"not JSON", make_file("{\"t\": [1,", 0), "not valid JSON"},
      {"not an object", make_file("[1, 2]", 0), "not an object"},
      {"entry not an object", make_file(R"({"t": 5})", 0), "'t' is a JSON number"},
      {"no dtype", make_file(entry(R"("shape":[1],"data_offsets":[0,4])"), 4), "no dtype"},
      {"no shape", make_file(entry(R"("dtype":"F32","data_offsets":[0,4])"), 4), "no shape"},
      {"no offsets", make_file(entry(R"("dtype":"F32","shape":[1])"), 4), "no data_offsets"},
      {"three offsets", make_file(entry(R"("dtype":"F32","shape":[1],"data_offsets":[0,4,4])"), 4), "no data_offsets"},
      {"unknown dtype", make_file(entry(R"("dtype":"F128","shape":[1],"data_offsets":[0,16])"), 16),
       "unknown dtype 'F128'"},
      {"negative shape", make_file(entry(R"("dtype":"F32","shape":[-1],"data_offsets":[0,4])"), 4), "negative shape"},
      {"fractional shape", make_file(entry(R"("dtype":"F32","shape":[1.5],"data_offsets":[0,4])"), 4),
       "non-integer shape"},
      {"string shape", make_file(entry(R"("dtype":"F32","shape":["1"],"data_offsets":[0,4])"), 4), "non-numeric shape"},
      {"negative offset", make_file(entry(R"("dtype":"U8","shape":[1],"data_offsets":[-1,0])"), 4),
       "negative data_offsets"},
      {"offsets out of range", make_file(entry(R"("dtype":"F32","shape":[2],"data_offsets":[0,8])"), 4),
       "outside the 4 data bytes"},
      {"end before begin", make_file(entry(R"("dtype":"U8","shape":[0],"data_offsets":[3,2])"), 4), "outside"},
      {"size mismatch", make_file(entry(R"("dtype":"F32","shape":[2],"data_offsets":[0,4])"), 4), "needs 8 bytes"},
      {"numel overflow", make_file(entry(R"("dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4])"), 4),
       "too large"},
      {"overlap",
       make_file(
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
           8),
       "'a' and 'b' overlap"},
      {"hole",
       make_file(
           R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
           12),
       "4 unused data bytes before tensor 'b'"},
      {"hole at the start", make_file(entry(R"("dtype":"F32","shape":[1],"data_offsets":[4,8])"), 8),
       "unused data bytes before"},
      {"trailing data", make_file(entry(R"("dtype":"F32","shape":[1],"data_offsets":[0,4])"), 6),
       "2 unused data bytes after"},
      {"duplicate names",
       make_file(
           R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
           1),
       "key 'a' twice"},
      {"metadata not an object", make_file(R"({"__metadata__":[1]})", 0), "__metadata__ is a JSON array"},
      {"metadata value not a string", make_file(R"({"__metadata__":{"epoch":3}})", 0),
       "value of 'epoch' is a JSON number"},
      {"deep nesting", make_file(R"({"__metadata__":{"x":[[[[[[[[[[[[1]]]]]]]]]]]]}})", 0), "nests deeper"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    const std::string msg = load_error(c.bytes);
    CHECK(msg.rfind("model.safetensors: ", 0) == 0);
    CHECK(msg.find(c.expect) != std::string::npos);
  }

  TempDir dir;
  const std::string missing = dir / "none.safetensors";
  try {
    SafetensorsReader r(missing);
    FAIL("a missing file must throw");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find(missing) != std::string::npos);
  }
}

TEST_CASE("safetensors: corrupted files load or throw Error, never crash") {
  TempDir dir;
  SafetensorsWriter w;
  for (const Sample& t : sample_tensors()) w.add(t.name, t.dtype, t.shape, t.data.data(), t.data.size());
  w.set_metadata({{"net", "resnet18"}, {"epoch", "3"}});
  w.write(dir / "m.safetensors");
  const auto good = read_file(dir / "m.safetensors");
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= uint64_t(good[static_cast<size_t>(i)]) << (8 * i);
  const size_t header_end = 8 + static_cast<size_t>(header_len);

  size_t loaded = 0, rejected = 0;
  uint64_t checksum = 0;
  const auto attempt = [&](const std::vector<uint8_t>& bytes) {
    try {
      const SafetensorsReader r = SafetensorsReader::from_bytes(bytes, "fuzz");
      checksum += touch_all(r);
      ++loaded;
    } catch (const Error&) {
      ++rejected;
    }
  };

  // Every header byte (and the length prefix) under several bit patterns; digits are also
  // swapped for other digits, which keeps the JSON valid and moves offsets and shapes.
  for (size_t pos = 0; pos < header_end; ++pos) {
    for (uint8_t mask : {0x01, 0x02, 0x10, 0x80, 0xff}) {
      auto bytes = good;
      bytes[pos] ^= mask;
      attempt(bytes);
    }
    if (good[pos] >= '0' && good[pos] <= '9') {
      for (char d : {'0', '1', '7', '9'}) {
        auto bytes = good;
        bytes[pos] = static_cast<uint8_t>(d);
        attempt(bytes);
      }
    }
  }
  // Data bytes are opaque: flipping them must still load.
  const size_t before = loaded;
  for (size_t pos = header_end; pos < good.size(); pos += 7) {
    auto bytes = good;
    bytes[pos] ^= 0xff;
    attempt(bytes);
  }
  CHECK(loaded - before == (good.size() - header_end + 6) / 7);
  // Every truncation, and a few extensions.
  for (size_t len = 0; len < good.size(); ++len)
    attempt(std::vector<uint8_t>(good.begin(), good.begin() + static_cast<ptrdiff_t>(len)));
  for (size_t extra : {1, 8, 100}) {
    auto bytes = good;
    bytes.resize(good.size() + extra, 0);
    attempt(bytes);
  }
  // Random garbage, half of it behind a plausible header length.
  std::mt19937_64 rng(2024);
  for (int i = 0; i < 2000; ++i) {
    auto bytes = test::random_bytes(rng() % 512, rng());
    if (i % 2 && bytes.size() >= 8) {
      const uint64_t len = rng() % (bytes.size() - 7);
      for (int b = 0; b < 8; ++b) bytes[static_cast<size_t>(b)] = static_cast<uint8_t>(len >> (8 * b));
    }
    attempt(bytes);
  }
  MESSAGE("corruption sweep: " << loaded << " loaded, " << rejected << " rejected (checksum " << checksum << ")");
  CHECK(rejected > 0);
  CHECK(loaded > 0);
}
