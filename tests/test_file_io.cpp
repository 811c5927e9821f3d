// file_io: whole-file reads and their errors, gunzip (single and multi-member, corrupt,
// truncated, trailing garbage: every error names the file), PATH.gz fallback, and atomic
// writes: content replaced on success, destination untouched and no temporary file left
// behind on failure.
#include <zlib.h>

#include <filesystem>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "engine/core/file_io.h"
#include "tests/test_util.h"

using namespace activeip;
using test::TempDir;
namespace fs = std::filesystem;

namespace {

using test::error_of;

// Text-like bytes (compressible, so the deflate stream has real structure to corrupt).
std::vector<uint8_t> compressible_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>('a' + rng() % 6);
  return v;
}

std::vector<uint8_t> gzip(const std::vector<uint8_t>& in) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<uint8_t> out(deflateBound(&zs, in.size()) + 64);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

}  // namespace

TEST_CASE("file_io: read_file returns the bytes and names the file in errors") {
  TempDir dir;
  const auto bytes = test::random_bytes(100003, 1);
  test::write_bytes(dir / "a.bin", bytes);
  CHECK(read_file(dir / "a.bin") == bytes);
  test::write_bytes(dir / "empty", {});
  CHECK(read_file(dir / "empty").empty());

  const std::string missing = error_of([&] { read_file(dir / "nope.bin"); });
  CHECK(missing.find("cannot open " + (dir / "nope.bin")) != std::string::npos);
  CHECK(missing.find("No such file") != std::string::npos);
  const std::string is_dir = error_of([&] { read_file(dir.path().string()); });
  CHECK(is_dir.find(dir.path().string()) != std::string::npos);
  CHECK(is_dir.find("directory") != std::string::npos);

  CHECK(file_exists(dir / "a.bin"));
  CHECK(file_exists(dir / "empty"));
  CHECK_FALSE(file_exists(dir / "nope.bin"));
  CHECK_FALSE(file_exists(dir.path().string()));
}

// A bound on the decoded size above every test's content.
constexpr size_t kBound = size_t(1) << 24;

TEST_CASE("file_io: read_file_maybe_gzip gunzips and falls back to PATH.gz") {
  TempDir dir;
  const auto plain = compressible_bytes(300007, 2);
  const auto gz = gzip(plain);
  REQUIRE(gz.size() < plain.size());

  test::write_bytes(dir / "raw", plain);
  CHECK(read_file_maybe_gzip(dir / "raw", kBound) == plain);

  test::write_bytes(dir / "packed", gz);  // gzip content under a plain name is still gunzipped
  CHECK(read_file_maybe_gzip(dir / "packed", kBound) == plain);

  test::write_bytes(dir / "only.gz", gz);  // PATH missing: PATH.gz is read
  CHECK(read_file_maybe_gzip(dir / "only", kBound) == plain);

  test::write_bytes(dir / "both", test::random_bytes(50, 3));  // PATH present: PATH wins over PATH.gz
  test::write_bytes(dir / "both.gz", gz);
  CHECK(read_file_maybe_gzip(dir / "both", kBound) == test::random_bytes(50, 3));

  // Two members, as `cat a.gz b.gz` makes: the concatenation of both payloads.
  const auto second = compressible_bytes(1234, 4);
  auto two = gz;
  const auto gz2 = gzip(second);
  two.insert(two.end(), gz2.begin(), gz2.end());
  test::write_bytes(dir / "two.gz", two);
  auto expected = plain;
  expected.insert(expected.end(), second.begin(), second.end());
  CHECK(read_file_maybe_gzip(dir / "two", kBound) == expected);

  const std::string missing = error_of([&] { read_file_maybe_gzip(dir / "absent", kBound); });
  CHECK(missing.find(dir / "absent") != std::string::npos);
}

TEST_CASE("file_io: a gzip stream is decoded up to its bound, and read_head_maybe_gzip stops early") {
  TempDir dir;
  const auto plain = compressible_bytes(300007, 2);
  test::write_bytes(dir / "x.gz", gzip(plain));
  CHECK(read_file_maybe_gzip(dir / "x", plain.size()) == plain);
  const std::string msg = error_of([&] { read_file_maybe_gzip(dir / "x", plain.size() - 1); });
  CHECK(msg.find(dir / "x.gz: the gzip stream holds more than 300006 bytes") != std::string::npos);
  CHECK(read_head_maybe_gzip(dir / "x", 16) == std::vector<uint8_t>(plain.begin(), plain.begin() + 16));
  CHECK(read_head_maybe_gzip(dir / "x", plain.size() + 5) == plain);
  test::write_bytes(dir / "raw", plain);  // not compressed: its size is on disk, the bound is the caller's
  CHECK(read_file_maybe_gzip(dir / "raw", 10) == plain);
  CHECK(read_head_maybe_gzip(dir / "raw", 3) == std::vector<uint8_t>(plain.begin(), plain.begin() + 3));
}

TEST_CASE("file_io: corrupt, truncated and padded gzip streams are errors naming the file") {
  TempDir dir;
  const auto gz = gzip(compressible_bytes(200000, 5));

  SUBCASE("corrupt deflate data") {
    auto bad = gz;
    for (size_t i = 40; i < bad.size() - 8; i += 97) bad[i] ^= 0x5a;
    test::write_bytes(dir / "x.gz", bad);
    const std::string msg = error_of([&] { read_file_maybe_gzip(dir / "x", kBound); });
    CHECK(msg.find(dir / "x.gz") != std::string::npos);
    CHECK(msg.find("corrupt gzip stream") != std::string::npos);
  }
  SUBCASE("wrong CRC in the trailer") {
    auto bad = gz;
    bad[bad.size() - 6] ^= 0x01;
    test::write_bytes(dir / "x.gz", bad);
    const std::string msg = error_of([&] { read_file_maybe_gzip(dir / "x", kBound); });
    CHECK(msg.find(dir / "x.gz") != std::string::npos);
    CHECK(msg.find("corrupt gzip stream") != std::string::npos);
  }
  SUBCASE("wrong length in the trailer (a huge ISIZE must not be trusted)") {
    auto bad = gz;
    for (size_t i = bad.size() - 4; i < bad.size(); ++i) bad[i] = 0xff;
    test::write_bytes(dir / "x.gz", bad);
    const std::string msg = error_of([&] { read_file_maybe_gzip(dir / "x", kBound); });
    CHECK(msg.find(dir / "x.gz") != std::string::npos);
    CHECK(msg.find("corrupt gzip stream") != std::string::npos);
  }
  SUBCASE("truncated at many lengths") {
    for (size_t len : {size_t(2), size_t(10), size_t(11), gz.size() / 3, gz.size() / 2, gz.size() - 8, gz.size() - 1}) {
      CAPTURE(len);
      test::write_bytes(dir / "x.gz", std::vector<uint8_t>(gz.begin(), gz.begin() + static_cast<ptrdiff_t>(len)));
      const std::string msg = error_of([&] { read_file_maybe_gzip(dir / "x", kBound); });
      CHECK(msg.find(dir / "x.gz") != std::string::npos);
      CHECK(msg.find("truncated") != std::string::npos);
    }
  }
  SUBCASE("trailing garbage") {
    auto bad = gz;
    bad.push_back(0x00);
    bad.push_back(0x42);
    test::write_bytes(dir / "x.gz", bad);
    const std::string msg = error_of([&] { read_file_maybe_gzip(dir / "x", kBound); });
    CHECK(msg.find(dir / "x.gz") != std::string::npos);
    CHECK(msg.find("trailing data") != std::string::npos);
  }
}

TEST_CASE("file_io: write_file_atomic writes the pieces in order and replaces old content") {
  TempDir dir;
  const auto a = test::random_bytes(70001, 6), b = test::random_bytes(13, 7);
  const std::string path = dir / "out.bin";
  write_file_atomic(path, {{a.data(), a.size()}, {nullptr, 0}, {b.data(), b.size()}});
  auto expected = a;
  expected.insert(expected.end(), b.begin(), b.end());
  CHECK(read_file(path) == expected);

  // A shorter overwrite: nothing of the old, longer content may survive.
  write_file_atomic(path, {{b.data(), b.size()}});
  CHECK(read_file(path) == b);
  CHECK(dir.listing() == std::set<std::string>{"out.bin"});

  // A relative name is written in the working directory's own folder.
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path());
  write_file_atomic("rel.bin", {{a.data(), 5}});
  fs::current_path(cwd);
  CHECK(read_file(dir / "rel.bin") == std::vector<uint8_t>(a.begin(), a.begin() + 5));
}

TEST_CASE("file_io: a failed write_file_atomic leaves no temporary file and the destination untouched") {
  TempDir dir;
  const auto data = test::random_bytes(4096, 8);

  SUBCASE("missing directory") {
    const std::string path = dir / "no/such/dir/out.bin";
    const std::string msg = error_of([&] { write_file_atomic(path, {{data.data(), data.size()}}); });
    CHECK(msg.find(path) != std::string::npos);
    CHECK(dir.listing().empty());
  }
  SUBCASE("destination is a directory: the rename fails after the data was written") {
    fs::create_directory(dir.path() / "target");
    test::write_bytes(dir / "target/keep", data);
    const std::string msg = error_of([&] { write_file_atomic(dir / "target", {{data.data(), data.size()}}); });
    CHECK(msg.find(dir / "target") != std::string::npos);
    CHECK(msg.find("rename") != std::string::npos);
    CHECK(dir.listing() == std::set<std::string>{"target", "target/keep"});
    CHECK(read_file(dir / "target/keep") == data);
  }
  SUBCASE("a name that is a folder") {
    const std::string msg = error_of([&] {
      write_file_atomic(dir.path().string() + "/", {{data.data(), data.size()}});
    });
    CHECK(msg.find("not a file name") != std::string::npos);
    CHECK(dir.listing().empty());
  }
}
