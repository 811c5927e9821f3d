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

// DESIGN §3, v1, spelled out: bits from HMAC(key, "fp:v1:" + u ‖ be32(counter)), counter from
// 0, most significant bit first; the cells' bits (cell-major, channel innermost), then the
// corner 2·b₀ + b₁; the label is the big-endian uint64 of the first 8 bytes of
// HMAC(key, "label:v1:" + u), mod C.
Fingerprint expected_v1(const std::array<uint8_t, OwnerKey::kBytes>& key, const std::string& name, int cell_bits,
                        int num_classes) {
  std::vector<uint8_t> bits;
  for (uint32_t counter = 0; static_cast<int>(bits.size()) < cell_bits + 2; ++counter) {
    std::string m = "fp:v1:" + name;
    m += static_cast<char>(counter >> 24);
    m += static_cast<char>(counter >> 16 & 0xff);
    m += static_cast<char>(counter >> 8 & 0xff);
    m += static_cast<char>(counter & 0xff);
    const std::array<uint8_t, 32> h = hmac_sha256(key, m);
    for (uint8_t byte : h)
      for (int b = 7; b >= 0; --b) bits.push_back(static_cast<uint8_t>(byte >> b & 1));
  }
  Fingerprint f;
  f.name = name;
  f.bits.assign(bits.begin(), bits.begin() + cell_bits);
  f.corner = 2 * bits[static_cast<size_t>(cell_bits)] + bits[static_cast<size_t>(cell_bits) + 1];
  const std::array<uint8_t, 32> l = hmac_sha256(key, "label:v1:" + name);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | l[static_cast<size_t>(i)];
  f.label = static_cast<int>(v % static_cast<uint64_t>(num_classes));
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
  const PatternSpec rgb = v1.spec(32, 32, 3), gray = v1.spec(28, 28, 1);
  CHECK((rgb.grid == 4 && rgb.cell == 2 && rgb.channels == 3 && rgb.H == 32 && rgb.W == 32));
  CHECK((gray.grid == 6 && gray.cell == 1 && gray.channels == 1 && gray.H == 28 && gray.W == 28));
  CHECK_THROWS_WITH_AS(v1.spec(32, 32, 4), doctest::Contains("4 channels"), Error);
  CHECK_THROWS_WITH_AS(v1.spec(9, 32, 3), doctest::Contains("too small"), Error);

  for (const auto& raw : {key_bytes(0, 1), key_bytes(200, 37), key_bytes(7, 0)}) {
    const OwnerKey key(raw);
    for (const PatternSpec& spec : {rgb, gray})
      for (int C : {2, 10, 100, 1000}) {
        CAPTURE(spec.channels);
        CAPTURE(C);
        for (const std::string name : {"alice", "bob", "u@x.org", "a"}) {
          CAPTURE(name);
          const std::vector<Fingerprint> p = v1.patterns(key, name, spec, C);
          REQUIRE(p.size() == 1);  // v1: one pattern per user
          check_same(p[0], expected_v1(raw, name, spec.bits(), C));
        }
        const std::vector<Fingerprint> owner = v1.owner_patterns(key, spec, C);
        REQUIRE(owner.size() == 1);
        check_same(owner[0], expected_v1(raw, kOwnerName, spec.bits(), C));
        // A forger's pattern is the same generator under the forger's bytes.
        const auto forger = key_bytes(91, 13);
        check_same(v1.forged(forger, "alice", spec, C), expected_v1(forger, "alice", spec.bits(), C));
      }
  }
  CHECK_THROWS_WITH_AS(v1.patterns(OwnerKey(key_bytes(0, 1)), "alice", rgb, 1), doctest::Contains("2 classes"), Error);
}

TEST_CASE("scheme: the table knows v1, names an unknown version and the known ones") {
  const std::vector<std::string> versions = scheme_versions();
  CHECK(std::find(versions.begin(), versions.end(), "v1") != versions.end());
  CHECK(std::find(versions.begin(), versions.end(), default_scheme().version()) != versions.end());
  for (const std::string& v : versions) CHECK(scheme_for(v).version() == v);
  CHECK(&scheme_for("v1") == &scheme_for("v1"));

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
  const ProtectComposer mixer(v1, OwnerKey(key_bytes(0, 1)), {"alice"}, v1.spec(32, 32, 3), 10,
                           {{0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}}, {});
  CHECK(&mixer.scheme() == &v1);
  CHECK(mixer.to_json().find(R"("scheme":"v1")") != std::string::npos);
  REQUIRE(mixer.embedded().size() == 2);  // the owner's trigger, then alice's
  check_same(mixer.embedded()[0], v1.owner_patterns(OwnerKey(key_bytes(0, 1)), v1.spec(32, 32, 3), 10)[0]);
  check_same(mixer.embedded()[1], v1.patterns(OwnerKey(key_bytes(0, 1)), "alice", v1.spec(32, 32, 3), 10)[0]);
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

  Prober prober(*m.net, ctx, data.test, m.meta.norm, probe, model_scheme(info));
  const OwnerVerification owner = verify_owner(prober, key);
  CHECK(owner.verified);
  CHECK(owner.detection.target == ProtectionInfo::from_json(m.meta.protection, path).owner_label);
  for (const std::string user : {"alice", "bob"}) {
    CAPTURE(user);
    const AuthResult r = authenticate(prober, key, registry, info, user);
    CAPTURE(r.reason);
    CHECK(r.authenticated);
  }
  const ForgeResult forged = forge(prober, claimable_fingerprints(prober, key, {"alice", "bob"}), 20, 3);
  CHECK(forged.passed == 0);

  // Its metadata stripped, a copy is probed under the default scheme; while that is v1 the
  // weights still answer the owner.
  ModelMeta bare = m.meta;
  bare.protection.clear();
  const ModelContext stripped = model_context(SafetensorsReader(path), bare);
  CHECK(stripped.scheme.empty());
  CHECK(&model_scheme(stripped) == &default_scheme());
  if (default_scheme().version() == "v1") {
    Prober blind(*m.net, ctx, data.test, m.meta.norm, probe, model_scheme(stripped));
    CHECK(verify_owner(blind, key).verified);
  }
}
