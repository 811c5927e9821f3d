// The attacker's input transforms (attacks/transform.h), each against a straightforward
// reference written here on random images of awkward sizes (7×5×3, 32×32×1): flip, shift and
// shrinkpad (the output must be the reference at one of the allowed offsets, and every offset
// must occur), median, bits, blur, JPEG against libjpeg-turbo called directly, noise by its
// statistics; the pipeline's normalisation round trip, order and determinism under the seed;
// the parser's refusals.
#include <doctest/doctest.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>
#include <vector>

#include "attacks/transform.h"
#include "tests/test_util.h"

using namespace activeip;

namespace {

struct Size {
  int H, W, C;
  size_t n() const { return static_cast<size_t>(H) * W * C; }
};
const Size kSizes[] = {{7, 5, 3}, {32, 32, 1}};

using Image = std::vector<uint8_t>;

uint8_t at(const Image& im, const Size& s, int y, int x, int c) {
  return im[static_cast<size_t>((y * s.W + x) * s.C + c)];
}

Image transformed(const std::string& spec, Image im, const Size& s, uint64_t seed = 1) {
  Rng rng(seed);
  apply_transform(parse_transform(spec), im.data(), s.H, s.W, s.C, rng);
  return im;
}

Image shifted(const Image& in, const Size& s, int dy, int dx) {
  Image out(in.size(), 0);
  for (int y = 0; y < s.H; ++y)
    for (int x = 0; x < s.W; ++x)
      for (int c = 0; c < s.C; ++c) {
        const int sy = y - dy, sx = x - dx;
        if (sy >= 0 && sy < s.H && sx >= 0 && sx < s.W) out[(y * s.W + x) * s.C + c] = at(in, s, sy, sx, c);
      }
  return out;
}

int clampi(int v, int lo, int hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

// Bilinear resize to h×w with half-pixel centres (torch, align_corners=False), rounded.
Image resized(const Image& in, const Size& s, int h, int w) {
  Image out(static_cast<size_t>(h) * w * s.C);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < s.C; ++c) {
        double sy = (y + 0.5) * s.H / h - 0.5, sx = (x + 0.5) * s.W / w - 0.5;
        if (sy < 0) sy = 0;
        if (sx < 0) sx = 0;
        const int y0 = static_cast<int>(std::floor(sy)), x0 = static_cast<int>(std::floor(sx));
        const double fy = sy - y0, fx = sx - x0;
        double v = 0;
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx)
            v += (dy ? fy : 1 - fy) * (dx ? fx : 1 - fx) *
                 at(in, s, clampi(y0 + dy, 0, s.H - 1), clampi(x0 + dx, 0, s.W - 1), c);
        out[(y * w + x) * s.C + c] = static_cast<uint8_t>(std::lround(std::clamp(v, 0.0, 255.0)));
      }
  return out;
}

Image pasted(const Image& small, const Size& s, int h, int w, int top, int left) {
  Image out(s.n(), 0);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < s.C; ++c) out[((y + top) * s.W + x + left) * s.C + c] = small[(y * w + x) * s.C + c];
  return out;
}

// Equal but for a few values one apart: a weighted sum at an exact tie (x.5) may round either
// way when the weights are summed in another order.
bool nearly(const Image& a, const Image& b) {
  int off = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const int d = std::abs(a[i] - b[i]);
    if (d > 1) return false;
    off += d;
  }
  return off <= 2 + static_cast<int>(a.size() / 50);
}

}  // namespace

TEST_CASE("transform: flip mirrors every row") {
  for (const Size& s : kSizes) {
    const Image in = test::random_bytes(s.n(), 3);
    const Image out = transformed("flip", in, s);
    for (int y = 0; y < s.H; ++y)
      for (int x = 0; x < s.W; ++x)
        for (int c = 0; c < s.C; ++c) REQUIRE(at(out, s, y, x, c) == at(in, s, y, s.W - 1 - x, c));
  }
}

TEST_CASE("transform: shift moves the image by one of the allowed offsets, zero-filled, and draws them all") {
  for (const Size& s : kSizes)
    for (int N : {1, 2}) {
      std::set<std::pair<int, int>> seen;
      for (uint64_t seed = 0; seed < 400; ++seed) {
        const Image in = test::random_bytes(s.n(), seed + 100);
        const Image out = transformed(strfmt("shift:%d", N), in, s, seed);
        std::vector<std::pair<int, int>> match;
        for (int dy = -N - 1; dy <= N + 1; ++dy)
          for (int dx = -N - 1; dx <= N + 1; ++dx)
            if (shifted(in, s, dy, dx) == out) match.emplace_back(dy, dx);
        REQUIRE(match.size() == 1);  // random bytes: one offset explains it
        CHECK(std::abs(match[0].first) <= N);
        CHECK(std::abs(match[0].second) <= N);
        seen.insert(match[0]);
      }
      CHECK(seen.size() == static_cast<size_t>((2 * N + 1) * (2 * N + 1)));
    }
}

TEST_CASE("transform: median is the per-channel median of the K×K window with edges replicated") {
  for (const Size& s : kSizes)
    for (int K : {3, 5}) {
      const Image in = test::random_bytes(s.n(), 7);
      const Image out = transformed(strfmt("median:%d", K), in, s);
      for (int y = 0; y < s.H; ++y)
        for (int x = 0; x < s.W; ++x)
          for (int c = 0; c < s.C; ++c) {
            std::vector<int> w;
            for (int u = -K / 2; u <= K / 2; ++u)
              for (int v = -K / 2; v <= K / 2; ++v)
                w.push_back(at(in, s, clampi(y + u, 0, s.H - 1), clampi(x + v, 0, s.W - 1), c));
            std::sort(w.begin(), w.end());
            REQUIRE(at(out, s, y, x, c) == w[w.size() / 2]);
          }
    }
}

TEST_CASE("transform: jpeg is libjpeg-turbo's own encode and decode of the image") {
  for (const Size& s : kSizes)
    for (int Q : {10, 50, 95}) {
      const Image in = test::random_bytes(s.n(), 11);
      const Image out = transformed(strfmt("jpeg:%d", Q), in, s);
      // The library directly: 4:2:0 for colour, grey for one channel, default flags.
      tjhandle enc = tjInitCompress(), dec = tjInitDecompress();
      REQUIRE(enc);
      REQUIRE(dec);
      const int pf = s.C == 3 ? TJPF_RGB : TJPF_GRAY;
      unsigned char* buf = nullptr;
      unsigned long size = 0;
      REQUIRE(tjCompress2(enc, in.data(), s.W, 0, s.H, pf, &buf, &size, s.C == 3 ? TJSAMP_420 : TJSAMP_GRAY, Q, 0) ==
              0);
      Image want(s.n());
      REQUIRE(tjDecompress2(dec, buf, size, want.data(), s.W, 0, s.H, pf, 0) == 0);
      tjFree(buf);
      tjDestroy(enc);
      tjDestroy(dec);
      CHECK(out == want);
      CHECK(out != in);  // random bytes do not survive JPEG
    }
}

TEST_CASE("transform: noise adds N(0, S) per value, rounded and clamped, and differs per seed") {
  const Size s{32, 32, 1};
  const double S = 8;
  double sum = 0, sq = 0;
  int64_t n = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const Image out = transformed("noise:8", Image(s.n(), 128), s, seed);
    for (uint8_t v : out) {
      sum += v - 128.0;
      sq += (v - 128.0) * (v - 128.0);
      ++n;
    }
  }
  const double mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
  CHECK(std::abs(mean) < 0.2);
  CHECK(std::abs(sd - std::sqrt(S * S + 1.0 / 12)) < 0.2);  // rounding adds 1/12
  // Clamped at the ends of the range: black only brightens, white only darkens.
  const Image black = transformed("noise:8", Image(s.n(), 0), s), white = transformed("noise:8", Image(s.n(), 255), s);
  CHECK(std::count(black.begin(), black.end(), 0) > 400);
  CHECK(std::count(black.begin(), black.end(), 0) < 700);
  CHECK(std::count(white.begin(), white.end(), 255) > 400);
  CHECK(transformed("noise:8", Image(s.n(), 128), s, 1) != transformed("noise:8", Image(s.n(), 128), s, 2));
}

TEST_CASE("transform: bits maps each value to the nearest of the 2^B evenly spaced levels") {
  const Size s{16, 16, 1};
  Image all(256);
  for (int v = 0; v < 256; ++v) all[static_cast<size_t>(v)] = static_cast<uint8_t>(v);
  for (int B = 1; B <= 8; ++B) {
    const Image out = transformed(strfmt("bits:%d", B), all, s);
    const int L = (1 << B) - 1;
    for (int v = 0; v < 256; ++v) {
      int best = 0;
      for (int k = 1; k <= L; ++k)
        if (std::abs(v - 255.0 * k / L) < std::abs(v - 255.0 * best / L)) best = k;
      REQUIRE(out[static_cast<size_t>(v)] == std::lround(255.0 * best / L));
    }
    std::set<uint8_t> levels(out.begin(), out.end());
    CHECK(levels.size() == static_cast<size_t>(L + 1));
  }
}

TEST_CASE("transform: blur is the normalised Gaussian of radius ceil(3σ), edges replicated") {
  for (const Size& s : kSizes)
    for (double sigma : {0.5, 1.0, 1.7}) {
      const Image in = test::random_bytes(s.n(), 13);
      const Image out = transformed(strfmt("blur:%g", sigma), in, s);
      const int r = static_cast<int>(std::ceil(3 * sigma));
      double total = 0;
      for (int u = -r; u <= r; ++u)
        for (int v = -r; v <= r; ++v) total += std::exp(-(u * u + v * v) / (2 * sigma * sigma));
      int off = 0;
      for (int y = 0; y < s.H; ++y)
        for (int x = 0; x < s.W; ++x)
          for (int c = 0; c < s.C; ++c) {
            double a = 0;
            for (int u = -r; u <= r; ++u)
              for (int v = -r; v <= r; ++v)
                a += std::exp(-(u * u + v * v) / (2 * sigma * sigma)) *
                     at(in, s, clampi(y + u, 0, s.H - 1), clampi(x + v, 0, s.W - 1), c);
            const long want = std::lround(a / total);
            REQUIRE(std::abs(at(out, s, y, x, c) - want) <= 1);  // a tie at .5 may round either way
            off += at(out, s, y, x, c) != want;
          }
      CHECK(off <= 2);
    }
}

TEST_CASE("transform: shrinkpad resizes bilinearly to (H−S)×(W−S) and pads at one of the allowed places") {
  for (const Size& s : kSizes)
    for (int S : {1, 4}) {
      if (S >= std::min(s.H, s.W)) continue;
      const int h = s.H - S, w = s.W - S;
      std::set<std::pair<int, int>> seen;
      for (uint64_t seed = 0; seed < 300; ++seed) {
        const Image in = test::random_bytes(s.n(), seed + 500);
        const Image out = transformed(strfmt("shrinkpad:%d", S), in, s, seed);
        const Image small = resized(in, s, h, w);
        std::vector<std::pair<int, int>> match;
        for (int top = 0; top <= S; ++top)
          for (int left = 0; left <= S; ++left)
            if (nearly(pasted(small, s, h, w, top, left), out)) match.emplace_back(top, left);
        REQUIRE(match.size() == 1);
        seen.insert(match[0]);
      }
      CHECK(seen.size() == static_cast<size_t>((S + 1) * (S + 1)));
    }
  CHECK_THROWS_WITH_AS(check_transform_fits(parse_transform("shrinkpad:5"), 7, 5, 3), doctest::Contains("shrinkpad:5"),
                       Error);
  CHECK_THROWS_WITH_AS(check_transform_fits(parse_transform("jpeg:50"), 8, 8, 2), doctest::Contains("1 or 3 channels"),
                       Error);
}

TEST_CASE("transform: the pipeline undoes the normalisation exactly, applies the chain in order, per image") {
  const Size s{7, 5, 3};
  const Normalization norm{{0.49f, 0.48f, 0.45f}, {0.25f, 0.24f, 0.26f}};
  const int N = 6;
  const Image pixels = test::random_bytes(s.n() * N, 17);
  Tensor x = Tensor::host({N, s.H, s.W, s.C});
  for (size_t i = 0; i < pixels.size(); ++i) {
    const size_t c = i % 3;
    x.data<float>()[i] = (static_cast<float>(pixels[i]) / 255.0f - norm.mean[c]) / norm.std[c];
  }
  Context ctx(Device::cpu(), 1);
  const std::vector<float> before(x.data<float>(), x.data<float>() + x.numel());

  // bits:8 changes nothing: the round trip through uint8 is exact, bit for bit.
  InputPipeline identity({parse_transform("bits:8")}, norm, 0, s.H, s.W, s.C);
  identity.apply(ctx, x);
  CHECK(std::vector<float>(x.data<float>(), x.data<float>() + x.numel()) == before);

  // jpeg then flip is not flip then jpeg (the 8×8 blocks do not line up on a 5-wide image):
  // the chain's order is the order given, image i drawing as image i of the run.
  InputPipeline chain({parse_transform("jpeg:40"), parse_transform("flip"), parse_transform("shift:1")}, norm, 9, s.H,
                      s.W, s.C);
  chain.apply(ctx, x);
  for (int i = 0; i < N; ++i) {
    Image want(pixels.begin() + i * s.n(), pixels.begin() + (i + 1) * s.n());
    const char* specs[] = {"jpeg:40", "flip", "shift:1"};
    for (uint64_t k = 0; k < 3; ++k) {
      Rng rng(mix_seed(9, static_cast<uint64_t>(i), k));
      apply_transform(parse_transform(specs[k]), want.data(), s.H, s.W, s.C, rng);
    }
    for (size_t j = 0; j < s.n(); ++j) {
      const size_t c = j % 3;
      REQUIRE(x.data<float>()[i * s.n() + j] == (static_cast<float>(want[j]) / 255.0f - norm.mean[c]) / norm.std[c]);
    }
  }
  Image reversed(pixels.begin(), pixels.begin() + s.n()), jpeg_first = reversed;
  Rng r0(0), r1(0);
  apply_transform(parse_transform("flip"), reversed.data(), s.H, s.W, s.C, r0);
  apply_transform(parse_transform("jpeg:40"), reversed.data(), s.H, s.W, s.C, r0);
  apply_transform(parse_transform("jpeg:40"), jpeg_first.data(), s.H, s.W, s.C, r1);
  apply_transform(parse_transform("flip"), jpeg_first.data(), s.H, s.W, s.C, r1);
  CHECK(reversed != jpeg_first);
}

TEST_CASE("transform: the pipeline is a function of the seed, whatever the batching") {
  const Size s{32, 32, 1};
  const Normalization norm{{0.5f}, {0.25f}};
  const int N = 10;
  const Image pixels = test::random_bytes(s.n() * N, 19);
  const std::vector<Transform> chain = {parse_transform("shift:2"), parse_transform("noise:4"),
                                        parse_transform("shrinkpad:3")};
  Context ctx(Device::cpu(), 2);
  // run(seed, split): the normalised batch through a fresh pipeline, in two batches split at `split`.
  const auto run = [&](uint64_t seed, int split) {
    Tensor x = Tensor::host({N, s.H, s.W, s.C});
    for (size_t i = 0; i < pixels.size(); ++i) x.data<float>()[i] = (pixels[i] / 255.0f - 0.5f) / 0.25f;
    InputPipeline p(chain, norm, seed, s.H, s.W, s.C);
    Tensor a = x.slice(0, split), b = x.slice(split, N);
    p.apply(ctx, a);
    p.apply(ctx, b);
    return std::vector<float>(x.data<float>(), x.data<float>() + x.numel());
  };
  const std::vector<float> once = run(5, 4);
  CHECK(run(5, 4) == once);
  CHECK(run(5, 1) == once);
  CHECK(run(5, 9) == once);
  CHECK(run(6, 4) != once);
}

TEST_CASE("transform: the parser reads every kind and refuses nonsense naming the spec and what is allowed") {
  struct Good {
    const char* spec;
    TransformKind kind;
    double value;
  };
  for (const Good& g : {Good{"flip", TransformKind::Flip, 0}, Good{"shift:4", TransformKind::Shift, 4},
                        Good{"median:3", TransformKind::Median, 3}, Good{"jpeg:100", TransformKind::Jpeg, 100},
                        Good{"jpeg:1", TransformKind::Jpeg, 1}, Good{"noise:0.5", TransformKind::Noise, 0.5},
                        Good{"bits:4", TransformKind::Bits, 4}, Good{"blur:1.5", TransformKind::Blur, 1.5},
                        Good{"shrinkpad:4", TransformKind::ShrinkPad, 4}}) {
    const Transform t = parse_transform(g.spec);
    CHECK(t.kind == g.kind);
    CHECK(t.value == g.value);
    CHECK(t.spec == g.spec);
  }
  for (const char* bad :
       {"shift:-1", "shift:0",     "shift:1.5", "shift",     "median:2", "median:1", "median:3x", "jpeg:0",
        "jpeg:101", "jpeg:",       "noise:0",   "noise:nan", "noise:-3", "bits:0",   "bits:9",    "blur:0",
        "blur:inf", "shrinkpad:0", "flip:1",    "foo",       "",         "Flip"}) {
    INFO(bad);
    const std::string e = test::error_of([&] { parse_transform(bad); });
    CHECK(e.find(std::string("'") + bad + "'") != std::string::npos);
    CHECK(e.find("flip, shift:N") != std::string::npos);  // the allowed transforms
  }
  CHECK(test::error_of([] { parse_transform("median:2"); }).find("odd") != std::string::npos);
  CHECK(test::error_of([] { parse_transform("jpeg:101"); }).find("1 to 100") != std::string::npos);
}
