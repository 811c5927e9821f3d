// Fingerprint schemes by version: v1 through the Scheme interface against an HMAC expansion
// written out here from DESIGN §3 (OpenSSL's HMAC directly, not the scheme's generator), the
// table (unknown versions refused with the known ones named), protection records naming
// their scheme, and the v1 model of tests/fixtures/protected still loading, verifying and
// authenticating under the scheme it records.
#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "engine/io/safetensors.h"
#include "fingerprint/assess.h"
#include "fingerprint/protect.h"
#include "fingerprint/scheme.h"
#include "fingerprint/verify.h"
#include "nets/model_io.h"
#include "tests/cli_util.h"
#include "tests/test_util.h"

using namespace activeip;

namespace {

std::array<uint8_t, OwnerKey::kBytes> key_bytes(uint8_t first, uint8_t step) {
  std::array<uint8_t, OwnerKey::kBytes> b{};
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(first + step * i);
  return b;
}

std::array<uint8_t, 32> hmac_sha256(const std::array<uint8_t, OwnerKey::kBytes>& key, const std::string& message) {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  REQUIRE(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
               reinterpret_cast<const unsigned char*>(message.data()), message.size(), out.data(), &len) != nullptr);
  REQUIRE(len == 32);
  return out;
}

// DESIGN §3 spelled out: bits from HMAC(key, message ‖ be32(counter)), counter from 0, most
// significant bit first; the cells' bits (cell-major, channel innermost), then the corner
// 2·b₀ + b₁. (v1: message "fp:v1:" + u; v2: "fp:v2:" + u + ":" + j.)
Fingerprint expected_bits(const std::array<uint8_t, OwnerKey::kBytes>& key, const std::string& message, int cell_bits) {
  std::vector<uint8_t> bits;
  for (uint32_t counter = 0; static_cast<int>(bits.size()) < cell_bits + 2; ++counter) {
    std::string m = message;
    m += static_cast<char>(counter >> 24);
    m += static_cast<char>(counter >> 16 & 0xff);
    m += static_cast<char>(counter >> 8 & 0xff);
    m += static_cast<char>(counter & 0xff);
    const std::array<uint8_t, 32> h = hmac_sha256(key, m);
    for (uint8_t byte : h)
      for (int b = 7; b >= 0; --b) bits.push_back(static_cast<uint8_t>(byte >> b & 1));
  }
  Fingerprint f;
  f.bits.assign(bits.begin(), bits.begin() + cell_bits);
  f.corner = 2 * bits[static_cast<size_t>(cell_bits)] + bits[static_cast<size_t>(cell_bits) + 1];
  return f;
}

// The big-endian uint64 of the first 8 bytes of HMAC(key, message), mod C.
int label_of(const std::array<uint8_t, OwnerKey::kBytes>& key, const std::string& message, int num_classes) {
  const std::array<uint8_t, 32> l = hmac_sha256(key, message);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | l[static_cast<size_t>(i)];
  return static_cast<int>(v % static_cast<uint64_t>(num_classes));
}

// v1: the bits of "fp:v1:" + u, the label of "label:v1:" + u.
Fingerprint expected_v1(const std::array<uint8_t, OwnerKey::kBytes>& key, const std::string& name, int cell_bits,
                        int num_classes) {
  Fingerprint f = expected_bits(key, "fp:v1:" + name, cell_bits);
  f.name = name;
  f.label = label_of(key, "label:v1:" + name, num_classes);
  return f;
}

void check_same(const Fingerprint& got, const Fingerprint& want) {
  CHECK(got.name == want.name);
  CHECK(got.bits == want.bits);
  CHECK(got.corner == want.corner);
  CHECK(got.label == want.label);
}

}  // namespace

TEST_CASE("scheme: v1 through the interface is DESIGN §3's HMAC expansion") {
  const Scheme& v1 = scheme_for("v1");
  CHECK(v1.version() == "v1");
  CHECK(v1.stamp_stage() == StampStage::AfterAugment);
  CHECK(v1.code_length(10, 1000) == 1);  // one pattern per user, whatever the registry
  const PatternSpec rgb = v1.spec(32, 32, 3, 10, 1), gray = v1.spec(28, 28, 1, 10, 1);
  CHECK((rgb.grid == 4 && rgb.cell == 2 && rgb.channels == 3 && rgb.H == 32 && rgb.W == 32));
  CHECK((gray.grid == 6 && gray.cell == 1 && gray.channels == 1 && gray.H == 28 && gray.W == 28));
  CHECK_THROWS_WITH_AS(v1.spec(32, 32, 4, 10, 1), doctest::Contains("4 channels"), Error);
  CHECK_THROWS_WITH_AS(v1.spec(9, 32, 3, 10, 1), doctest::Contains("too small"), Error);
  CHECK_THROWS_WITH_AS(v1.spec(32, 32, 3, 1, 1), doctest::Contains("2 classes"), Error);

  for (const auto& raw : {key_bytes(0, 1), key_bytes(200, 37), key_bytes(7, 0)}) {
    const OwnerKey key(raw);
    for (const PatternSpec& geometry : {rgb, gray})
      for (int C : {2, 10, 100, 1000}) {
        const PatternSpec spec = v1.spec(geometry.H, geometry.W, geometry.channels, C, 1);
        CAPTURE(spec.channels);
        CAPTURE(C);
        for (const std::string name : {"alice", "bob", "u@x.org", "a"}) {
          CAPTURE(name);
          const std::vector<Fingerprint> p = v1.patterns(key, {name, 17}, spec);  // v1 has no codes
          REQUIRE(p.size() == 1);                                                 // v1: one pattern per user
          check_same(p[0], expected_v1(raw, name, spec.bits(), C));
        }
        const std::vector<Fingerprint> owner = v1.owner_patterns(key, spec);
        REQUIRE(owner.size() == 1);
        check_same(owner[0], expected_v1(raw, kOwnerName, spec.bits(), C));
        // A forger's pattern is the same generator under the forger's bytes, claiming the
        // label of the user it pretends to be.
        const auto forger = key_bytes(91, 13);
        const std::vector<Fingerprint> f = v1.forged(forger, owner, spec);
        REQUIRE(f.size() == 1);
        Fingerprint want = expected_v1(forger, kOwnerName, spec.bits(), C);
        want.label = owner[0].label;
        check_same(f[0], want);
      }
  }
}

TEST_CASE("scheme: v2 gives each user the patterns of its code, spelled out from HMAC") {
  const Scheme& v2 = scheme_for("v2");
  CHECK(v2.version() == "v2");
  CHECK(v2.stamp_stage() == StampStage::BeforeAugment);
  CHECK(v2.code_length(10, 0) == 2);
  CHECK(v2.code_length(10, 10) == 2);
  CHECK(v2.code_length(10, 11) == 3);
  CHECK(v2.code_length(10, 100) == 3);
  CHECK(v2.code_length(2, 5) == 4);
  CHECK_THROWS_WITH_AS(v2.spec(32, 32, 3, 10, 1), doctest::Contains("at least 2 labels"), Error);
  // v1's grids and bits with 3-pixel cells, 4 pixels from the edges.
  const PatternSpec rgb = v2.spec(32, 32, 3, 10, 2), gray = v2.spec(28, 28, 1, 10, 3);
  CHECK((rgb.grid == 4 && rgb.cell == 3 && rgb.size() == 12 && rgb.bits() == 48 && rgb.margin == 4));
  CHECK((gray.grid == 6 && gray.cell == 3 && gray.size() == 18 && gray.bits() == 36 && gray.margin == 4));
  CHECK((rgb.top(3) == 32 - 4 - 12 && rgb.left(1) == 32 - 4 - 12 && gray.top(0) == 4));
  CHECK_THROWS_WITH_AS(v2.spec(25, 25, 1, 10, 2), doctest::Contains("too small"), Error);
  for (const auto& raw : {key_bytes(0, 1), key_bytes(200, 37)}) {
    const OwnerKey key(raw);
    for (const auto& [H, C, m] : std::vector<std::array<int, 3>>{{32, 10, 2}, {28, 10, 3}, {32, 100, 2}}) {
      const PatternSpec spec = v2.spec(H, H, H == 32 ? 3 : 1, C, m);
      CAPTURE(C);
      CAPTURE(m);
      for (int64_t code : {int64_t{0}, int64_t{7}, code_capacity(C, m) - 1}) {
        const std::vector<Fingerprint> p = v2.patterns(key, {"alice", code}, spec);
        REQUIRE(p.size() == static_cast<size_t>(m));
        const std::vector<int> labels = user_code(code, C, m);
        for (int j = 0; j < m; ++j) {
          // Pattern j: the bits of HMAC(key, "fp:v2:alice:j") read as v1 reads its own, label j
          // of the code.
          Fingerprint want = expected_bits(raw, "fp:v2:alice:" + std::to_string(j), spec.bits());
          want.name = "alice";
          want.label = labels[static_cast<size_t>(j)];
          check_same(p[static_cast<size_t>(j)], want);
        }
        // A forger's patterns: the same generator under the forger's bytes, the claimed labels.
        const std::vector<Fingerprint> f = v2.forged(key_bytes(91, 13), p, spec);
        REQUIRE(f.size() == p.size());
        for (size_t j = 0; j < f.size(); ++j) {
          CHECK(f[j].label == p[j].label);
          CHECK(f[j].bits == expected_bits(key_bytes(91, 13), "fp:v2:alice:" + std::to_string(j), spec.bits()).bits);
        }
      }
      // The owner: one pattern, fp:v2:owner:0, label HMAC(key, "label:v2:owner") mod C.
      const std::vector<Fingerprint> owner = v2.owner_patterns(key, spec);
      REQUIRE(owner.size() == 1);
      CHECK(owner[0].bits == expected_bits(raw, "fp:v2:owner:0", spec.bits()).bits);
      CHECK(owner[0].label == label_of(raw, "label:v2:owner", C));
      CHECK_THROWS_WITH_AS(v2.patterns(key, {"alice", -1}, spec), doctest::Contains("no code"), Error);
      CHECK_THROWS_WITH_AS(v2.patterns(key, {"alice", code_capacity(C, m)}, spec), doctest::Contains("does not fit"),
                           Error);
    }
  }
}

TEST_CASE("scheme: user codes are unique and at least 2 labels apart") {
  for (const auto& [C, m] : std::vector<std::array<int, 2>>{{10, 2}, {10, 3}, {2, 4}, {3, 3}, {100, 2}}) {
    CAPTURE(C);
    CAPTURE(m);
    const int64_t n = code_capacity(C, m);
    CHECK(n == static_cast<int64_t>(std::pow(C, m - 1)));
    std::vector<std::vector<int>> codes;
    for (int64_t i = 0; i < n; ++i) {
      codes.push_back(user_code(i, C, m));
      REQUIRE(codes.back().size() == static_cast<size_t>(m));
      for (int l : codes.back()) CHECK((l >= 0 && l < C));
    }
    int closest = m;
    for (size_t a = 0; a < codes.size(); ++a)
      for (size_t b = a + 1; b < codes.size(); ++b) {
        int d = 0;
        for (int j = 0; j < m; ++j) d += codes[a][static_cast<size_t>(j)] != codes[b][static_cast<size_t>(j)];
        closest = std::min(closest, d);
      }
    CHECK(closest >= 2);
    CHECK(shortest_code_length(C, n) == std::max(2, m));
    CHECK_THROWS_WITH_AS(user_code(n, C, m), doctest::Contains("room for"), Error);
  }
  // Small indices do not give a user one label twice: label j is rotated by j.
  CHECK(user_code(0, 10, 2) == std::vector<int>{0, 1});
  CHECK(user_code(9, 10, 2) == std::vector<int>{9, 0});
  CHECK(user_code(12, 10, 3) == std::vector<int>{2, 2, 5});
  CHECK(code_capacity(1000, 10) == int64_t{1} << 62);  // saturates
}

TEST_CASE("scheme: the table knows v1 and v2, names an unknown version and the known ones") {
  const std::vector<std::string> versions = scheme_versions();
  CHECK(std::find(versions.begin(), versions.end(), "v1") != versions.end());
  CHECK(std::find(versions.begin(), versions.end(), default_scheme().version()) != versions.end());
  for (const std::string& v : versions) CHECK(scheme_for(v).version() == v);
  CHECK(&scheme_for("v1") == &scheme_for("v1"));
  CHECK(default_scheme().version() == "v2");

  for (const std::string bad : {"v9", "", "V1", "v1 "}) {
    CAPTURE(bad);
    const std::string err = test::error_of([&] { scheme_for(bad); });
    CHECK(err.find("unknown fingerprint scheme '" + bad + "'") != std::string::npos);
    for (const std::string& v : versions) CHECK(err.find(v) != std::string::npos);
  }
}

TEST_CASE("scheme: a protection record names its scheme, and an unknown one is refused with the file") {
  ProtectionInfo info;
  CHECK(info.scheme == default_scheme().version());  // what new models record
  info.scheme = "v1";
  info.key_id = "0123456789abcdef";
  info.owner_label = 3;
  info.users = {"alice"};
  CHECK(ProtectionInfo::from_json(info.to_json(), "m.safetensors").scheme == "v1");

  info.scheme = "v9";
  const std::string err = test::error_of([&] { ProtectionInfo::from_json(info.to_json(), "m.safetensors"); });
  CHECK(err.find("m.safetensors") != std::string::npos);
  CHECK(err.find("'v9'") != std::string::npos);
  CHECK(err.find("v1") != std::string::npos);

  // The mixer records the scheme it embeds under (train.mixer, which --resume compares).
  const Scheme& v1 = scheme_for("v1");
  const ProtectComposer mixer(v1, OwnerKey(key_bytes(0, 1)), {{"alice"}}, v1.spec(32, 32, 3, 10, 1),
                              {{0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}}, {});
  CHECK(&mixer.scheme() == &v1);
  CHECK(mixer.to_json().find(R"("scheme":"v1")") != std::string::npos);
  REQUIRE(mixer.embedded().size() == 2);  // the owner's trigger, then alice's
  check_same(mixer.embedded()[0], v1.owner_patterns(OwnerKey(key_bytes(0, 1)), v1.spec(32, 32, 3, 10, 1))[0]);
  check_same(mixer.embedded()[1], v1.patterns(OwnerKey(key_bytes(0, 1)), {"alice"}, v1.spec(32, 32, 3, 10, 1))[0]);

  // A v2 record carries its code length; one without (or below 2) is refused with the file.
  info.scheme = "v2";
  info.code_length = 3;
  CHECK(info.to_json().find(R"("code_length":3)") != std::string::npos);
  CHECK(ProtectionInfo::from_json(info.to_json(), "m.safetensors").code_length == 3);
  info.code_length = 1;
  const std::string short_code = test::error_of([&] { ProtectionInfo::from_json(info.to_json(), "m.safetensors"); });
  CHECK(short_code.find("m.safetensors") != std::string::npos);
  CHECK(short_code.find("at least 2 labels") != std::string::npos);
}

TEST_CASE("scheme: the v1 model of an earlier build loads, verifies and authenticates under its scheme") {
  test::TempDir dir;
  test::protected_model(dir);
  const std::string path = dir / "m.safetensors";
  Context ctx;
  LoadedModel m = load_model(path, ctx);
  const ModelContext info = model_context(SafetensorsReader(path), m.meta);
  CHECK(info.scheme == "v1");
  CHECK(&model_scheme(info) == &scheme_for("v1"));
  const DataSplits data = load_test_split(m.meta, path, {"synthetic", "", 0, 300});
  const OwnerKey key = OwnerKey::load(dir / "owner.key");
  const Registry registry = Registry::open(dir / "users.db", false);
  ProbeConfig probe;
  probe.probes = 50;

  CHECK(info.code_length == 1);
  Prober prober(*m.net, ctx, data.test, m.meta.norm, probe, model_scheme(info), model_code_length(info, &registry, 10));
  const OwnerVerification owner = verify_owner(prober, key);
  CHECK(owner.verified);
  CHECK(owner.detection.target == ProtectionInfo::from_json(m.meta.protection, path).owner_label);
  for (const std::string user : {"alice", "bob"}) {
    CAPTURE(user);
    const AuthResult r = authenticate(prober, key, registry, info, user);
    CAPTURE(r.reason);
    CHECK(r.authenticated);
  }
  const ForgeResult forged = forge(prober, claimable_fingerprints(prober, key, registry, {"alice", "bob"}), 20, 3);
  CHECK(forged.passed == 0);

  // Its metadata stripped, a copy names no scheme: the owner tries every scheme this build
  // knows, and the v1 trigger still answers, with the p-value paying for every scheme tried.
  ModelMeta bare = m.meta;
  bare.protection.clear();
  const ModelContext stripped = model_context(SafetensorsReader(path), bare);
  CHECK(stripped.scheme.empty());
  const OwnerVerification any = verify_model_owner(prober, key, stripped);
  CHECK(any.verified);
  CHECK(any.scheme == "v1");
  CHECK(any.tests == static_cast<int>(scheme_versions().size()));
  CHECK(any.log10_p == doctest::Approx(owner.log10_p + std::log10(double(scheme_versions().size()))));
}
