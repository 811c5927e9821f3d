// The fingerprint scheme on the CPU: owner key files (mode, refusal to overwrite, malformed
// files), fingerprint derivation against known-answer vectors computed independently with
// Python's hmac module, rendering and the stamp op (stamping a normalised batch equals
// normalising a stamped image), the batch mixer, probe sets, the binomial tail and model ids.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include "engine/io/safetensors.h"
#include "engine/nn/ops.h"
#include "fingerprint/protect.h"
#include "fingerprint/scheme.h"
#include "fingerprint/verify.h"
#include "tests/fingerprint_util.h"
#include "tests/test_util.h"

using namespace activeip;

namespace {

OwnerKey counting_key() {
  std::array<uint8_t, OwnerKey::kBytes> b{};
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i);
  return OwnerKey(b);
}

// The v1 fingerprint of `name`: v1 gives one pattern per user.
Fingerprint v1_fingerprint(const OwnerKey& key, const std::string& name, PatternSpec spec, int num_classes) {
  spec.classes = num_classes;
  return scheme_for("v1").patterns(key, {name}, spec).front();
}

std::string bit_string(const std::vector<uint8_t>& bits) {
  std::string s;
  for (uint8_t b : bits) s += static_cast<char>('0' + b);
  return s;
}

unsigned file_mode(const std::string& path) {
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

}  // namespace

TEST_CASE("fingerprint: key files are 0600 hex, never overwritten, and checked on load") {
  const test::TempDir dir;
  const std::string path = dir / "owner.key";
  const OwnerKey key = OwnerKey::generate();
  key.save(path);
  CHECK(file_mode(path) == 0600);
  CHECK(test::read_text(path).size() == 65);  // 64 hex digits and a newline
  const OwnerKey back = OwnerKey::load(path);
  CHECK(back.bytes() == key.bytes());
  CHECK(back.id() == key.id());
  CHECK(OwnerKey::generate().bytes() != key.bytes());

  // Refuses to overwrite, and leaves the file as it was.
  const std::string before = test::read_text(path);
  CHECK_THROWS_WITH_AS(OwnerKey::generate().save(path), doctest::Contains("already exists"), Error);
  CHECK(test::read_text(path) == before);
  CHECK(dir.listing() == std::set<std::string>{"owner.key"});  // no temporary left behind

  // Readable by others: refused, naming the fix.
  std::filesystem::permissions(path, std::filesystem::perms::others_read, std::filesystem::perm_options::add);
  CHECK_THROWS_WITH_AS(OwnerKey::load(path), doctest::Contains("chmod 600"), Error);
  std::filesystem::permissions(
      path,
      std::filesystem::perms::owner_read | std::filesystem::perms::owner_write | std::filesystem::perms::group_read,
      std::filesystem::perm_options::replace);
  CHECK_THROWS_WITH_AS(OwnerKey::load(path), doctest::Contains("group or others"), Error);

  const auto write_key = [&](const std::string& name, const std::string& text) {
    const std::string p = dir / name;
    test::write_bytes(p, std::vector<uint8_t>(text.begin(), text.end()));
    std::filesystem::permissions(p, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                                 std::filesystem::perm_options::replace);
    return p;
  };
  CHECK_THROWS_WITH_AS(OwnerKey::load(write_key("short.key", "abcd\n")), doctest::Contains("64 hex digits"), Error);
  CHECK_THROWS_WITH_AS(OwnerKey::load(write_key("bad.key", std::string(63, 'a') + "g\n")),
                       doctest::Contains("not a hex digit"), Error);
  CHECK_THROWS_WITH_AS(OwnerKey::load(dir / "missing.key"), doctest::Contains("missing.key"), Error);
  CHECK(OwnerKey::load(write_key("upper.key", std::string(64, 'A'))).bytes()[0] == 0xaa);
}

TEST_CASE("fingerprint: derivation matches known-answer vectors (v1)") {
  const OwnerKey key = counting_key();
  // sha256(bytes 0..31)[:8]; the vectors below were computed with Python's hmac/hashlib.
  CHECK(key.id() == "630dcd2966c43366");
  const PatternSpec rgb = scheme_for("v1").spec(32, 32, 3, 10, 1), gray = scheme_for("v1").spec(28, 28, 1, 10, 1);
  CHECK(rgb.size() == 8);
  CHECK(rgb.bits() == 48);
  CHECK(gray.size() == 6);
  CHECK(gray.bits() == 36);

  const Fingerprint owner = v1_fingerprint(key, "owner", rgb, 10);
  CHECK(bit_string(owner.bits) == "100101010001110001111000101111000001001001101111");
  CHECK(owner.corner == 2);
  CHECK(owner.label == 9);
  const Fingerprint alice = v1_fingerprint(key, "alice", rgb, 100);
  CHECK(bit_string(alice.bits) == "000101001000000101100001011101000010101001111110");
  CHECK(alice.corner == 0);
  CHECK(alice.label == 99);
  const Fingerprint alice_gray = v1_fingerprint(key, "alice", gray, 10);
  CHECK(bit_string(alice_gray.bits) == "000101001000000101100001011101000010");
  CHECK(alice_gray.corner == 2);
  CHECK(alice_gray.label == 9);
  const Fingerprint owner_gray = v1_fingerprint(key, "owner", gray, 10);
  CHECK(owner_gray.corner == 0);

  // The counter expansion past the first 256-bit block.
  const std::vector<uint8_t> long_bits = hmac_bits(key, "fp:v1:alice", 300);
  CHECK(bit_string({long_bits.begin() + 250, long_bits.end()}) == "10110001000010110101000111000000111001110000110011");

  // Same key and name: same fingerprint; another key: another one.
  CHECK(v1_fingerprint(key, "alice", rgb, 100).bits == alice.bits);
  CHECK(v1_fingerprint(OwnerKey::generate(), "alice", rgb, 100).bits != alice.bits);
  CHECK_THROWS_WITH_AS(scheme_for("v1").spec(32, 32, 2, 10, 1), doctest::Contains("2 channels"), Error);
  CHECK_THROWS_WITH_AS(scheme_for("v1").spec(8, 8, 3, 10, 1), doctest::Contains("too small"), Error);
}

TEST_CASE("fingerprint: corners keep a 1-pixel margin and rendering follows the bits") {
  const PatternSpec s = scheme_for("v1").spec(32, 32, 3, 10, 1);
  CHECK((s.top(0) == 1 && s.left(0) == 1));
  CHECK((s.top(1) == 1 && s.left(1) == 23));
  CHECK((s.top(2) == 23 && s.left(2) == 1));
  CHECK((s.top(3) == 23 && s.left(3) == 23));
  const Fingerprint fp = v1_fingerprint(counting_key(), "alice", s, 10);
  const std::vector<uint8_t> px = render_pixels(fp, s);
  REQUIRE(px.size() == 8 * 8 * 3);
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j)
      for (int c = 0; c < 3; ++c) {
        const int bit = fp.bits[static_cast<size_t>(((i / 2) * 4 + j / 2) * 3 + c)];
        CHECK(px[static_cast<size_t>((i * 8 + j) * 3 + c)] == (bit ? 255 : 0));
      }
}

TEST_CASE("fingerprint: stamping a normalised batch equals normalising a stamped image") {
  // Awkward sizes: a 1-channel 28×28 batch of 3 and a 3-channel 32×32 batch of 5, with
  // some samples left clean.
  for (const auto& [H, W, C, N] : std::vector<std::array<int, 4>>{{28, 28, 1, 3}, {32, 32, 3, 5}}) {
    CAPTURE(C);
    Context ctx;
    const PatternSpec spec = scheme_for("v1").spec(H, W, C, 10, 1);
    Normalization norm;
    for (int c = 0; c < C; ++c) {
      norm.mean.push_back(0.4f + 0.05f * c);
      norm.std.push_back(0.2f + 0.03f * c);
    }
    std::vector<Fingerprint> fps;
    for (const char* name : {"owner", "alice", "bob", "carol"})
      fps.push_back(v1_fingerprint(counting_key(), name, spec, 10));
    const size_t img = static_cast<size_t>(H) * W * C;
    std::vector<uint8_t> images = test::random_bytes(img * N, 7);
    std::vector<int32_t> ids(static_cast<size_t>(N));
    for (int n = 0; n < N; ++n) ids[static_cast<size_t>(n)] = n == 1 ? -1 : n % 4;

    // Path A: normalise, then stamp with the Stamper (the op on ctx's device).
    Tensor x = Tensor::host({N, H, W, C});
    for (size_t i = 0; i < img * N; ++i) {
      const size_t c = i % static_cast<size_t>(C);
      x.data<float>()[i] = (static_cast<float>(images[i]) / 255.0f - norm.mean[c]) / norm.std[c];
    }
    Stamper stamper(spec, norm);
    stamper.set_patterns(ctx, fps);
    stamper.stamp(ctx, x, 0, ids.data(), N);

    // Path B: stamp the uint8 images, then normalise.
    for (int n = 0; n < N; ++n)
      if (ids[static_cast<size_t>(n)] >= 0)
        stamp_image(fps[static_cast<size_t>(ids[static_cast<size_t>(n)])], spec, images.data() + img * n);
    size_t differing = 0;
    for (size_t i = 0; i < img * N; ++i) {
      const size_t c = i % static_cast<size_t>(C);
      differing += x.data<float>()[i] != (static_cast<float>(images[i]) / 255.0f - norm.mean[c]) / norm.std[c];
    }
    CHECK(differing == 0);
  }
}

TEST_CASE("fingerprint: the stamp op refuses patches outside the image and unknown patterns") {
  Context ctx;
  Tensor bank = Tensor::host({2 * 4 * 4 * 1}), patch = Tensor::host({1}, DType::I32),
         origin = Tensor::host({2}, DType::I32), x = Tensor::host({1, 10, 10, 1});
  ops::fill(ctx, 1.0f, bank);
  ops::fill(ctx, 0.0f, x);
  const StampShape s{1, 10, 10, 1, 4, 2};
  patch.data<int32_t>()[0] = 1;
  origin.data<int32_t>()[0] = 7;
  origin.data<int32_t>()[1] = 0;
  CHECK_THROWS_WITH_AS(ops::stamp(ctx, s, bank, patch, origin, x), doctest::Contains("leaves the 10x10 image"), Error);
  origin.data<int32_t>()[0] = 6;
  patch.data<int32_t>()[0] = 2;
  CHECK_THROWS_WITH_AS(ops::stamp(ctx, s, bank, patch, origin, x), doctest::Contains("patch 2 of 2"), Error);
  patch.data<int32_t>()[0] = 1;
  ops::stamp(ctx, s, bank, patch, origin, x);
  double sum = 0;
  for (int i = 0; i < 100; ++i) sum += x.data<float>()[i];
  CHECK(sum == 16);
  CHECK(x.data<float>()[6 * 10 + 0] == 1.0f);
  CHECK(x.data<float>()[9 * 10 + 3] == 1.0f);
  CHECK(x.data<float>()[5 * 10 + 0] == 0.0f);
}

TEST_CASE("fingerprint: the mixer adds poisoned and forged samples, as a function of the step") {
  const PatternSpec spec = scheme_for("v1").spec(32, 32, 3, 10, 1);
  const Normalization norm{{0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}};
  ProtectConfig c;
  c.seed = 3;
  ProtectComposer mixer(scheme_for("v1"), counting_key(), test::named({"alice", "bob"}), spec, norm, c);
  CHECK(mixer.poisoned(128) == 13);
  CHECK(mixer.forged(128) == 6);
  CHECK(mixer.extra(128) == 19);
  CHECK(mixer.extra(4) == 2);  // at least one of each
  REQUIRE(mixer.embedded().size() == 3);
  CHECK(mixer.embedded()[0].name == "owner");

  std::set<int> targets;
  for (const Fingerprint& f : mixer.embedded()) targets.insert(f.label);
  const int batch = 128, extra = mixer.extra(batch);
  std::vector<int32_t> a(static_cast<size_t>(extra), -7), b(static_cast<size_t>(extra), -7);
  mixer.relabel(11, batch, a.data());
  Context ctx;
  Tensor x = Tensor::host({batch + extra, 32, 32, 3});
  ops::fill(ctx, 0.125f, x);
  mixer.alter(ctx, x, batch, extra);
  mixer.relabel(11, batch, b.data());
  CHECK(a == b);  // a pure function of the step
  for (int i = 0; i < mixer.poisoned(batch); ++i) CHECK(targets.count(a[static_cast<size_t>(i)]) == 1);
  for (int i = mixer.poisoned(batch); i < extra; ++i) CHECK(a[static_cast<size_t>(i)] == -7);  // true labels kept
  // The clean rows are untouched; every extra row carries a patch (values other than 0.125).
  CHECK(std::count(x.data<float>(), x.data<float>() + int64_t{batch} * 32 * 32 * 3, 0.125f) == batch * 32 * 32 * 3);
  for (int r = batch; r < batch + extra; ++r) {
    int changed = 0;
    for (int i = 0; i < 32 * 32 * 3; ++i)
      changed += x.data<float>()[static_cast<int64_t>(r) * 32 * 32 * 3 + i] != 0.125f;
    CHECK(changed == 8 * 8 * 3);
  }
  // Forged samples alternate: a fresh key's pattern, then a near miss of an embedded one.
  CHECK(mixer.min_flips() == 8);
  for (int i = mixer.poisoned(batch); i < extra; ++i) {
    const Fingerprint& f = mixer.step_patterns()[static_cast<size_t>(mixer.step_ids()[static_cast<size_t>(i)])];
    int nearest = 48;
    for (const Fingerprint& e : mixer.embedded()) {
      int d = 0;
      for (size_t b = 0; b < e.bits.size(); ++b) d += e.bits[b] != f.bits[b];
      nearest = std::min(nearest, d);
    }
    CAPTURE(i);
    if ((i - mixer.poisoned(batch)) % 2 == 1) {
      CHECK(f.name == "near-miss");
      CHECK(nearest >= 8);
      CHECK(nearest <= 24);
    } else {
      CHECK(f.name == "forged");
      CHECK(nearest > 0);
    }
  }
  std::vector<int32_t> other(static_cast<size_t>(extra), -7);
  mixer.relabel(12, batch, other.data());
  CHECK(other != a);
  ProtectConfig bad;
  bad.poison_rate = 0;
  CHECK_THROWS_WITH_AS(validate(bad), doctest::Contains("--poison-rate"), Error);
}

TEST_CASE("fingerprint: focus users get their share of the poisoned samples") {
  const PatternSpec spec = scheme_for("v1").spec(32, 32, 3, 10, 1);
  const Normalization norm{{0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}};
  ProtectConfig c;
  c.seed = 3;
  c.poison_rate = 0.5;
  c.focus = {"dave"};
  c.focus_share = 0.6;
  ProtectComposer mixer(scheme_for("v1"), counting_key(), test::named({"alice", "bob", "carol", "dave"}), spec, norm,
                        c);
  // dave is embedded_[4]: 60% of the samples are his, plus a fifth of the other 40%.
  const int batch = 128, poisoned = mixer.poisoned(batch);
  int dave = 0, total = 0;
  std::vector<int32_t> labels(static_cast<size_t>(mixer.extra(batch)));
  for (uint64_t step = 0; step < 200; ++step) {
    mixer.relabel(step, batch, labels.data());
    for (int i = 0; i < poisoned; ++i) dave += mixer.step_ids()[static_cast<size_t>(i)] == 4;
    total += poisoned;
  }
  CHECK(static_cast<double>(dave) / total == doctest::Approx(0.6 + 0.4 / 5).epsilon(0.03));
  CHECK(mixer.to_json().find("\"focus\":[\"dave\"]") != std::string::npos);
  // Without focus users the mixer is what it was (and says nothing of focus).
  ProtectConfig plain = c;
  plain.focus.clear();
  CHECK(ProtectComposer(scheme_for("v1"), counting_key(), test::named({"alice"}), spec, norm, plain)
            .to_json()
            .find("focus") == std::string::npos);
  c.focus = {"erin"};
  CHECK_THROWS_WITH_AS(ProtectComposer(scheme_for("v1"), counting_key(), test::named({"alice"}), spec, norm, c),
                       doctest::Contains("erin"), Error);
  c.focus_share = 1.5;
  CHECK_THROWS_WITH_AS(validate(c), doctest::Contains("--new-user-share"), Error);
}

TEST_CASE("fingerprint: --owner-share gives the owner's trigger its share, and the users the rest") {
  const PatternSpec spec = scheme_for("v1").spec(32, 32, 3, 10, 1);
  const Normalization norm{{0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}};
  const std::vector<std::string> users = {"alice", "bob", "carol", "dave"};
  // Shares of each embedded pattern (owner first) over 200 steps.
  auto shares = [&](const ProtectConfig& c) {
    ProtectComposer mixer(scheme_for("v1"), counting_key(), test::named(users), spec, norm, c);
    const int batch = 128, poisoned = mixer.poisoned(batch);
    std::vector<double> n(users.size() + 1, 0.0);
    std::vector<int32_t> labels(static_cast<size_t>(mixer.extra(batch)));
    for (uint64_t step = 0; step < 200; ++step) {
      mixer.relabel(step, batch, labels.data());
      for (int i = 0; i < poisoned; ++i) n[static_cast<size_t>(mixer.step_ids()[static_cast<size_t>(i)])] += 1;
    }
    for (double& v : n) v /= 200.0 * poisoned;
    return n;
  };
  ProtectConfig c;
  c.seed = 3;
  c.poison_rate = 0.5;
  const std::vector<double> plain = shares(c);
  for (double v : plain) CHECK(v == doctest::Approx(0.2).epsilon(0.08));  // one share in five each
  CHECK(ProtectComposer(scheme_for("v1"), counting_key(), test::named(users), spec, norm, c)
            .to_json()
            .find("owner_share") == std::string::npos);

  c.owner_share = 0.4;
  const std::vector<double> owner = shares(c);
  CHECK(owner[0] == doctest::Approx(0.4).epsilon(0.05));
  for (size_t u = 1; u < owner.size(); ++u) CHECK(owner[u] == doctest::Approx(0.15).epsilon(0.08));
  CHECK(ProtectComposer(scheme_for("v1"), counting_key(), test::named(users), spec, norm, c)
            .to_json()
            .find("\"owner_share\":0.4") != std::string::npos);

  // With enroll's new users: the owner's share first, then theirs of what is left.
  c.focus = {"dave"};
  c.focus_share = 0.5;
  const std::vector<double> focus = shares(c);
  CHECK(focus[0] == doctest::Approx(0.4).epsilon(0.05));
  CHECK(focus[4] == doctest::Approx(0.6 * (0.5 + 0.5 / 4)).epsilon(0.05));

  // The owner alone takes every poisoned sample; a share above 1 is refused.
  c.focus.clear();
  c.owner_share = 0.1;
  ProtectComposer alone(scheme_for("v1"), counting_key(), test::named({}), spec, norm, c);
  std::vector<int32_t> labels(static_cast<size_t>(alone.extra(128)));
  alone.relabel(5, 128, labels.data());
  for (int i = 0; i < alone.poisoned(128); ++i) CHECK(alone.step_ids()[static_cast<size_t>(i)] == 0);
  c.owner_share = 1.5;
  CHECK_THROWS_WITH_AS(validate(c), doctest::Contains("--owner-share"), Error);
}

TEST_CASE("fingerprint: binomial tail against direct sums") {
  // P(X ≥ k) for Binomial(10, 0.3), summed directly.
  for (int k = 0; k <= 10; ++k) {
    double direct = 0;
    for (int i = k; i <= 10; ++i) {
      double comb = 1;
      for (int j = 0; j < i; ++j) comb = comb * (10 - j) / (j + 1);
      direct += comb * std::pow(0.3, i) * std::pow(0.7, 10 - i);
    }
    CAPTURE(k);
    CHECK(std::pow(10.0, binomial_tail_log10(k, 10, 0.3)) == doctest::Approx(direct).epsilon(1e-9));
  }
  // 200 of 200 at p0 = 0.01: 10^−400, far below a double, still exact in log10.
  CHECK(binomial_tail_log10(200, 200, 0.01) == doctest::Approx(-400.0).epsilon(1e-12));
  CHECK(binomial_tail_log10(0, 200, 0.01) == 0.0);
}

TEST_CASE("fingerprint: model ids cover the weights, not the metadata") {
  const test::TempDir dir;
  const std::vector<float> w = test::random_floats(12, 1);
  auto write = [&](const std::string& name, const std::vector<float>& v, const std::string& meta) {
    SafetensorsWriter out;
    out.add("fc.weight", "F32", {3, 4}, v.data(), v.size() * sizeof(float));
    out.set_metadata({{"note", meta}});
    out.write(dir / name);
    return model_id(SafetensorsReader(dir / name));
  };
  const std::string a = write("a.safetensors", w, "one");
  CHECK(a.size() == 64);
  CHECK(write("b.safetensors", w, "two") == a);
  std::vector<float> w2 = w;
  w2[5] = std::nextafter(w2[5], 2.0f);
  CHECK(write("c.safetensors", w2, "one") != a);
}
