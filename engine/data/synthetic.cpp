// The synthetic dataset: each class is a smooth prototype (a background colour plus a few soft
// coloured blobs) drawn on a 36×36 canvas; a sample is a 32×32 window of it shifted by up
// to 2 px, plus uniform noise. Integer arithmetic only, from splitmix64, so every platform
// and compiler produces the same bytes.
#include <algorithm>

#include "engine/data/formats.h"

namespace activeip::data {

namespace {

struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform integer in [lo, hi]; the modulo bias (< 2^-50) is irrelevant here.
  int range(int lo, int hi) { return lo + static_cast<int>(next() % uint64_t(hi - lo + 1)); }
};

constexpr uint64_t kSyntheticSeed = 0x5eed'ac71'7e1d'5eedull;
constexpr int kSyntheticTrain = 2000, kSyntheticTest = 500, kSyntheticMargin = 2, kSyntheticBlobs = 4;
constexpr int kSyntheticNoise = 32;  // noise is uniform in [-32, 31]

}  // namespace

std::vector<uint8_t> synthetic_prototypes(const DataShape& s) {
  const int cw = s.W + 2 * kSyntheticMargin, ch = s.H + 2 * kSyntheticMargin;
  std::vector<uint8_t> protos(size_t(s.num_classes) * ch * cw * s.C);
  SplitMix64 rng{kSyntheticSeed};
  std::vector<int> acc(size_t(ch) * cw * s.C);
  for (int k = 0; k < s.num_classes; ++k) {
    for (int c = 0; c < s.C; ++c) {
      const int bg = rng.range(50, 205);
      for (int p = 0; p < ch * cw; ++p) acc[size_t(p) * s.C + c] = bg * 256;
    }
    for (int b = 0; b < kSyntheticBlobs; ++b) {
      const int cy = rng.range(0, ch - 1), cx = rng.range(0, cw - 1), r = rng.range(5, 11);
      int amp[4] = {};
      for (int c = 0; c < s.C; ++c) amp[c] = rng.range(-120, 120);
      const int r2 = r * r;
      for (int y = 0; y < ch; ++y)
        for (int x = 0; x < cw; ++x) {
          const int d2 = (y - cy) * (y - cy) + (x - cx) * (x - cx);
          if (d2 >= r2) continue;
          // (1 − d²/r²)² in 1/65536 steps: smooth, peak 1 at the centre, 0 at the rim.
          const int w = (r2 - d2) * (r2 - d2) * 65536 / (r2 * r2);
          for (int c = 0; c < s.C; ++c) acc[(size_t(y) * cw + x) * s.C + c] += amp[c] * w / 256;
        }
    }
    uint8_t* dst = protos.data() + size_t(k) * ch * cw * s.C;
    for (size_t i = 0; i < acc.size(); ++i) dst[i] = static_cast<uint8_t>(std::clamp(acc[i] / 256, 0, 255));
  }
  return protos;
}

Dataset synthetic_split(const DatasetInfo& info, const std::vector<uint8_t>& protos, bool train, int64_t limit) {
  const DataShape& s = info.shape;
  const int total = train ? kSyntheticTrain : kSyntheticTest;
  const int64_t n = limit >= 0 ? std::min<int64_t>(limit, total) : total;
  Dataset d = empty_dataset(info, train ? "train" : "test", n);
  SplitMix64 rng{kSyntheticSeed ^ (train ? 0x7261696eull : 0x74657374ull)};

  // Exactly total/num_classes samples per class, in a seeded random order.
  std::vector<int32_t> order(static_cast<size_t>(total));
  for (int i = 0; i < total; ++i) order[static_cast<size_t>(i)] = i % s.num_classes;
  for (int i = total - 1; i > 0; --i)
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(rng.range(0, i))]);

  const int cw = s.W + 2 * kSyntheticMargin, ch = s.H + 2 * kSyntheticMargin;
  const size_t row = size_t(s.W) * s.C;
  uint8_t* images = d.images.data<uint8_t>();
  int32_t* labels = d.labels.data<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int label = order[static_cast<size_t>(i)];
    const int dy = rng.range(0, 2 * kSyntheticMargin), dx = rng.range(0, 2 * kSyntheticMargin);
    labels[i] = label;
    const uint8_t* proto = protos.data() + size_t(label) * ch * cw * s.C;
    uint8_t* dst = images + static_cast<size_t>(i) * s.H * row;
    for (int y = 0; y < s.H; ++y) {
      const uint8_t* src = proto + (size_t(y + dy) * cw + dx) * s.C;
      uint8_t* out = dst + size_t(y) * row;
      // One 64-bit draw gives the noise of 8 sub-pixels.
      for (size_t j = 0; j < row; j += 8) {
        uint64_t bits = rng.next();
        for (size_t t = j; t < std::min(row, j + 8); ++t, bits >>= 8) {
          const int noise = static_cast<int>(bits & (2 * kSyntheticNoise - 1)) - kSyntheticNoise;
          out[t] = static_cast<uint8_t>(std::clamp(src[t] + noise, 0, 255));
        }
      }
    }
  }
  return d;
}

}  // namespace activeip::data
