// The augmentation path: a 4×4 single-channel case worked by hand (gather, pad-1 crop,
// flip, normalise), random batches against a step-by-step reference (build the padded
// image, crop, flip, normalise), and the evaluation transform (no crop, no flip).
#include <string>
#include <vector>

#include "kernels/augment.h"
#include "tests/test_util.h"

using namespace activeip;
using namespace activeip::test;

namespace {

// torchvision's order of operations, one explicit step at a time, in double.
std::vector<double> reference(const AugmentShape& s, const std::vector<uint8_t>& images,
                              const std::vector<int32_t>& index, const int32_t* crop, const uint8_t* flip,
                              const std::vector<float>& mean, const std::vector<float>& stdev) {
  const int H = s.H, W = s.W, C = s.C, pad = s.pad, HP = H + 2 * pad, WP = W + 2 * pad;
  std::vector<double> out(static_cast<size_t>(s.N) * H * W * C);
  for (int n = 0; n < s.N; ++n) {
    const uint8_t* img = images.data() + static_cast<size_t>(index[n]) * H * W * C;
    std::vector<int> padded(static_cast<size_t>(HP) * WP * C, 0);
    for (int h = 0; h < H; ++h)
      for (int w = 0; w < W; ++w)
        for (int c = 0; c < C; ++c) padded[((h + pad) * WP + w + pad) * C + c] = img[(h * W + w) * C + c];
    const int r0 = crop ? crop[2 * n] : pad, c0 = crop ? crop[2 * n + 1] : pad;
    std::vector<int> cropped(static_cast<size_t>(H) * W * C);
    for (int h = 0; h < H; ++h)
      for (int w = 0; w < W; ++w)
        for (int c = 0; c < C; ++c) cropped[(h * W + w) * C + c] = padded[((h + r0) * WP + w + c0) * C + c];
    const bool flipped = flip && flip[n];
    for (int h = 0; h < H; ++h)
      for (int w = 0; w < W; ++w)
        for (int c = 0; c < C; ++c) {
          const int px = cropped[(h * W + (flipped ? W - 1 - w : w)) * C + c];
          out[((static_cast<size_t>(n) * H + h) * W + w) * C + c] = (px / 255.0 - mean[c]) / stdev[c];
        }
  }
  return out;
}

std::vector<uint8_t> random_images(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng() % 256);
  return v;
}

}  // namespace

TEST_CASE("augment: a 4x4 crop and flip worked by hand") {
  // Dataset of two 4×4×1 images; the batch gathers image 1, whose pixel (h, w) is
  // 10·h + w + 1. Pad 1, crop at (row 0, col 2) of the 6×6 padded image: the crop holds
  // source rows −1..2 and columns 1..4. The flip then reads crop column 3 − w, i.e. source
  // column 4 − w, so out(h, w) = img(h − 1, 4 − w), padding where h = 0 or w = 0.
  const AugmentShape s{.N = 1, .H = 4, .W = 4, .C = 1, .pad = 1};
  std::vector<uint8_t> images(32, 200);
  for (int h = 0; h < 4; ++h)
    for (int w = 0; w < 4; ++w) images[16 + h * 4 + w] = static_cast<uint8_t>(10 * h + w + 1);
  const std::vector<int32_t> index = {1}, crop = {0, 2};
  const std::vector<uint8_t> flip = {1};
  const std::vector<float> mean = {0.5f}, stdev = {0.25f};
  const int expected_px[16] = {0, 0,  0,  0,   //
                               0, 4,  3,  2,   //
                               0, 14, 13, 12,  //
                               0, 24, 23, 22};
  std::vector<double> expected(16);
  for (int i = 0; i < 16; ++i) expected[i] = (expected_px[i] / 255.0 - 0.5) / 0.25;

  std::vector<float> out = poisoned(16);
  augment_cpu(s, {images.data(), index.data(), crop.data(), flip.data(), mean.data(), stdev.data(), out.data()});
  expect_close(out, expected, {.rel = 1e-6});
  expect_close(to_double(out), reference(s, images, index, crop.data(), flip.data(), mean, stdev), {.rel = 1e-6});
}

TEST_CASE("augment: random batches match the reference") {
  struct Case {
    const char* name;
    AugmentShape s;
    int count;
  };
  const Case cases[] = {{"N1 28x28x1 pad4", {1, 28, 28, 1, 4}, 3},
                        {"N17 32x32x3 pad4", {17, 32, 32, 3, 4}, 40},
                        {"N5 7x5x3 pad2", {5, 7, 5, 3, 2}, 9}};
  for (const Case& k : cases) {
    for (const bool with_flip : {false, true}) {
      SUBCASE((std::string(k.name) + (with_flip ? " crop+flip" : " crop")).c_str()) {
        const AugmentShape s = k.s;
        const std::vector<uint8_t> images = random_images(static_cast<size_t>(k.count) * s.H * s.W * s.C, 1);
        std::mt19937_64 rng(2);
        std::vector<int32_t> index(s.N), crop(2 * s.N);
        std::vector<uint8_t> flip(s.N);
        for (int n = 0; n < s.N; ++n) {
          index[n] = static_cast<int32_t>(rng() % k.count);
          crop[2 * n] = static_cast<int32_t>(rng() % (2 * s.pad + 1));
          crop[2 * n + 1] = static_cast<int32_t>(rng() % (2 * s.pad + 1));
          flip[n] = static_cast<uint8_t>(rng() & 1);
        }
        // The extreme offsets, so both borders of the padding are exercised.
        crop[0] = 0;
        crop[1] = 2 * s.pad;
        const std::vector<float> mean = {0.49f, 0.48f, 0.45f}, stdev = {0.25f, 0.24f, 0.26f};
        const uint8_t* flip_ptr = with_flip ? flip.data() : nullptr;

        std::vector<float> out = poisoned(static_cast<size_t>(s.N) * s.H * s.W * s.C);
        augment_cpu(s, {images.data(), index.data(), crop.data(), flip_ptr, mean.data(), stdev.data(), out.data()});
        expect_close(out, reference(s, images, index, crop.data(), flip_ptr, mean, stdev), {.rel = 1e-6});
      }
    }
  }
}

TEST_CASE("augment: no crop and no flip is plain normalisation") {
  const AugmentShape s{.N = 3, .H = 7, .W = 5, .C = 3, .pad = 4};
  const std::vector<uint8_t> images = random_images(4 * 7 * 5 * 3, 3);
  const std::vector<int32_t> index = {3, 0, 3};
  const std::vector<float> mean = {0.1f, 0.5f, 0.9f}, stdev = {0.3f, 0.2f, 0.1f};
  std::vector<float> out = poisoned(3 * 7 * 5 * 3);
  augment_cpu(s, {images.data(), index.data(), nullptr, nullptr, mean.data(), stdev.data(), out.data()});
  std::vector<double> expected(out.size());
  const size_t img = 7 * 5 * 3;
  for (int n = 0; n < 3; ++n)
    for (size_t i = 0; i < img; ++i)
      expected[n * img + i] = (images[index[n] * img + i] / 255.0 - mean[i % 3]) / stdev[i % 3];
  expect_close(out, expected, {.rel = 1e-6});
}
