// GPU suite: the CUDA data path against augment_cpu — the uint8 dataset resident on the
// device, batches of N = 1, 13 and 64 drawn by index (repeats included), random crops over
// the whole [0, 2·pad] range (so every border of zero padding occurs), random flips, and the
// eval transform (no crop, no flip), on 28×28×1, 32×32×3 and an odd 7×5×3. The output is the
// same IEEE arithmetic in the same order, so it must match bit for bit. Poisoned with NaN.
#ifdef ACTIVEIP_CUDA

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/core/context.h"
#include "engine/core/cuda_memory.h"
#include "kernels/augment.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace activeip {
namespace {

using test::expect_close;
using test::poisoned;
using test::random_bytes;
using test::to_device;
using test::to_host;

struct Case {
  const char* name;
  AugmentShape s;
  bool crop, flip;
};

const Case kCases[] = {
    {"N13 32x32x3 crop flip", {13, 32, 32, 3, 4}, true, true},
    {"N64 28x28x1 crop flip", {64, 28, 28, 1, 4}, true, true},
    {"N1 32x32x3 crop flip", {1, 32, 32, 3, 4}, true, true},
    {"N13 7x5x3 pad 2 crop flip", {13, 7, 5, 3, 2}, true, true},
    {"N13 32x32x3 crop only", {13, 32, 32, 3, 4}, true, false},
    {"N13 32x32x3 flip only", {13, 32, 32, 3, 4}, false, true},
    {"N13 32x32x3 eval", {13, 32, 32, 3, 4}, false, false},
    {"N64 28x28x1 eval", {64, 28, 28, 1, 4}, false, false},
};

constexpr int kImages = 20;  // dataset size

}  // namespace

TEST_CASE("augment_cuda matches augment_cpu bit for bit") {
  Context ctx(Device::cuda());
  for (const Case& c : kCases) SUBCASE(c.name) {
      const AugmentShape& s = c.s;
      const size_t img = static_cast<size_t>(s.H) * s.W * s.C, out = img * s.N;
      const std::vector<uint8_t> images = random_bytes(img * kImages, 1000 + img);
      std::mt19937 rng(1001 + s.N);
      std::vector<int32_t> index(s.N), crop(2 * s.N);
      std::vector<uint8_t> flip(s.N);
      for (auto& i : index) i = static_cast<int32_t>(rng() % kImages);
      for (auto& o : crop) o = static_cast<int32_t>(rng() % (2 * s.pad + 1));
      for (auto& f : flip) f = static_cast<uint8_t>(rng() % 2);
      if (s.N > 1) {  // the extreme offsets, whatever the generator drew
        crop[0] = crop[1] = 0;
        crop[2] = crop[3] = 2 * s.pad;
      }
      std::vector<float> mean(s.C), stdev(s.C);
      for (int k = 0; k < s.C; ++k) {
        mean[k] = 0.45f + 0.03f * k;
        stdev[k] = 0.22f + 0.01f * k;
      }

      std::vector<float> ref = poisoned(out);
      augment_cpu(s, {images.data(), index.data(), c.crop ? crop.data() : nullptr, c.flip ? flip.data() : nullptr,
                      mean.data(), stdev.data(), ref.data()});

      auto d_images = to_device(images, ctx), d_flip = to_device(flip, ctx);
      auto d_index = to_device(index, ctx), d_crop = to_device(crop, ctx);
      auto d_mean = to_device(mean, ctx), d_stdev = to_device(stdev, ctx);
      auto d_out = to_device(poisoned(out), ctx);
      augment_cuda(s,
                   {d_images.data(), d_index.data(), c.crop ? d_crop.data() : nullptr, c.flip ? d_flip.data() : nullptr,
                    d_mean.data(), d_stdev.data(), d_out.data()},
                   ctx.stream());
      expect_close(to_host(d_out, ctx), ref, {.rel = 0});
    }
}

}  // namespace activeip

#endif  // ACTIVEIP_CUDA
