// Dropout: the kept fraction is 1 − p, the mask is a function of (seed, index) alone
// (same seed → same mask, another seed → another mask, matching dropout_keep), the forward
// scales the kept elements by 1/(1 − p), and the backward is dy · mask.
#include <cmath>
#include <string>
#include <vector>

#include "kernels/dropout.h"
#include "tests/test_util.h"

using namespace activeip;
using namespace activeip::test;

namespace {
constexpr size_t kN = 100000;
}  // namespace

TEST_CASE("dropout: forward keeps 1 - p of the elements and scales them") {
  for (const float p : {0.1f, 0.5f, 0.8f}) {
    SUBCASE((std::string("p=") + std::to_string(p)).c_str()) {
      const DropoutParams d{.p = p, .seed = 1234};
      const std::vector<float> x = random_floats(kN, 1);
      std::vector<float> y = poisoned(kN), mask = poisoned(kN);
      dropout_fwd_cpu(kN, d, x.data(), y.data(), mask.data());

      const float scale = 1.0f / (1.0f - p);
      size_t kept = 0;
      bool mask_ok = true, y_ok = true;
      for (size_t i = 0; i < kN; ++i) {
        const bool keep = dropout_keep(d, i);
        kept += keep;
        mask_ok = mask_ok && mask[i] == (keep ? scale : 0.0f);
        y_ok = y_ok && y[i] == x[i] * mask[i];
      }
      CHECK(mask_ok);
      CHECK(y_ok);
      CHECK(std::fabs(static_cast<double>(kept) / kN - (1.0 - p)) < 0.01);
    }
  }
}

TEST_CASE("dropout: the mask depends on the seed and only on it") {
  const std::vector<float> x = random_floats(kN, 2);
  auto mask_of = [&](uint64_t seed) {
    std::vector<float> y(kN), mask(kN);
    dropout_fwd_cpu(kN, {.p = 0.5f, .seed = seed}, x.data(), y.data(), mask.data());
    return mask;
  };
  const std::vector<float> a = mask_of(7), b = mask_of(7), c = mask_of(8);
  CHECK(a == b);
  size_t differ = 0;
  for (size_t i = 0; i < kN; ++i) differ += a[i] != c[i];
  // Independent masks at p = 0.5 disagree on half the elements.
  CHECK(std::fabs(static_cast<double>(differ) / kN - 0.5) < 0.01);
}

TEST_CASE("dropout: p = 0 keeps everything unchanged") {
  const std::vector<float> x = random_floats(1000, 3);
  std::vector<float> y = poisoned(1000), mask = poisoned(1000);
  dropout_fwd_cpu(1000, {.p = 0.0f, .seed = 9}, x.data(), y.data(), mask.data());
  CHECK(y == x);
  CHECK(mask == std::vector<float>(1000, 1.0f));
}

TEST_CASE("dropout: backward is dy times the mask") {
  const size_t n = 1001;
  const std::vector<float> x = random_floats(n, 4), dy = random_floats(n, 5);
  std::vector<float> y(n), mask(n), dx = poisoned(n);
  dropout_fwd_cpu(n, {.p = 0.3f, .seed = 42}, x.data(), y.data(), mask.data());
  dropout_bwd_cpu(n, dy.data(), mask.data(), dx.data());
  std::vector<double> ref(n);
  size_t zeros = 0;
  for (size_t i = 0; i < n; ++i) {
    ref[i] = static_cast<double>(dy[i]) * mask[i];
    zeros += dx[i] == 0.0f;
  }
  expect_close(dx, ref);
  CHECK(zeros > 0);      // some gradients are dropped…
  CHECK(zeros < n / 2);  // …but not most of them at p = 0.3
}
