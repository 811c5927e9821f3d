// Subsets of a split: the seeded share of the training split that an attacker holds (and that
// `train --fraction` trains on), and a digest that names the records a run trained on.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/core/random.h"
#include "engine/data/dataset.h"

namespace activeip {

Dataset seeded_subset(const Dataset& data, double fraction, uint64_t seed) {
  ENSURE(fraction > 0 && fraction <= 1, "--fraction must be in (0, 1], got %g", fraction);
  const int64_t n = data.size();
  const int64_t m = std::min<int64_t>(n, std::max<int64_t>(2, std::llround(fraction * static_cast<double>(n))));
  std::vector<int32_t> pick = Rng(mix_seed(seed, 0xa77ac)).permutation(static_cast<int32_t>(n));
  pick.resize(static_cast<size_t>(m));
  std::sort(pick.begin(), pick.end());
  Dataset out;
  out.name = data.name;
  out.split = data.split;
  out.H = data.H;
  out.W = data.W;
  out.C = data.C;
  out.num_classes = data.num_classes;
  const int64_t image = int64_t{data.H} * data.W * data.C;
  out.images = Tensor::host({m, data.H, data.W, data.C}, DType::U8);
  out.labels = Tensor::host({m}, DType::I32);
  for (int64_t i = 0; i < m; ++i) {
    const int64_t from = pick[static_cast<size_t>(i)];
    std::memcpy(out.images.data<uint8_t>() + i * image, data.images.data<uint8_t>() + from * image,
                static_cast<size_t>(image));
    out.labels.data<int32_t>()[i] = data.labels.data<int32_t>()[from];
  }
  return out;
}

std::string records_digest(const Dataset& data) {
  // FNV-1a over the count, then each record's label (little-endian) and pixels, in order.
  uint64_t h = 0xcbf29ce484222325ull;
  const auto mix = [&h](const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  };
  const int64_t n = data.size();
  uint8_t count[8];
  for (int b = 0; b < 8; ++b) count[b] = static_cast<uint8_t>(static_cast<uint64_t>(n) >> (8 * b));
  mix(count, sizeof count);
  const size_t image = static_cast<size_t>(data.H) * data.W * data.C;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t label = static_cast<uint32_t>(data.labels.data<int32_t>()[i]);
    const uint8_t bytes[4] = {static_cast<uint8_t>(label), static_cast<uint8_t>(label >> 8),
                              static_cast<uint8_t>(label >> 16), static_cast<uint8_t>(label >> 24)};
    mix(bytes, sizeof bytes);
    mix(data.images.data<uint8_t>() + static_cast<size_t>(i) * image, image);
  }
  return strfmt("%016llx", static_cast<unsigned long long>(h));
}

}  // namespace activeip
