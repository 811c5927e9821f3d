// Elementwise ops against their formulas in double, on sizes below and above the
// threshold where the loops go parallel; add with an aliased output; ReLU's backward
// against finite differences of ReLU.
#include <cmath>
#include <string>
#include <vector>

#include "kernels/elementwise.h"
#include "tests/test_util.h"

using namespace activeip;
using namespace activeip::test;

namespace {
const size_t kSizes[] = {1, 17, 1000, 100003};
}  // namespace

TEST_CASE("elementwise: relu forward and backward") {
  for (const size_t n : kSizes) {
    SUBCASE((std::string("n=") + std::to_string(n)).c_str()) {
      const std::vector<float> x = random_floats(n, 1), dy = random_floats(n, 2);
      std::vector<float> y = poisoned(n), dx = poisoned(n);
      relu_fwd_cpu(n, x.data(), y.data());
      relu_bwd_cpu(n, y.data(), dy.data(), dx.data());
      std::vector<double> y_ref(n), dx_ref(n);
      for (size_t i = 0; i < n; ++i) {
        y_ref[i] = std::max(static_cast<double>(x[i]), 0.0);
        dx_ref[i] = x[i] > 0 ? dy[i] : 0.0;
      }
      // ReLU copies or zeroes: exact.
      CHECK(y == to_float(y_ref));
      CHECK(dx == to_float(dx_ref));
    }
  }
}

TEST_CASE("elementwise: relu backward matches finite differences") {
  const size_t n = 23;
  std::vector<double> x = to_double(random_floats(n, 3)), wv = to_double(random_floats(n, 4));
  const auto f = [&] {
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += std::max(x[i], 0.0) * wv[i];
    return s;
  };
  const std::vector<float> xf = to_float(x), dy = to_float(wv);
  std::vector<float> y = poisoned(n), dx = poisoned(n);
  relu_fwd_cpu(n, xf.data(), y.data());
  relu_bwd_cpu(n, y.data(), dy.data(), dx.data());
  expect_close(dx, numeric_grad(x, f), {.rel = 1e-6});
}

TEST_CASE("elementwise: add, axpy, fill, scale") {
  for (const size_t n : kSizes) {
    SUBCASE((std::string("n=") + std::to_string(n)).c_str()) {
      const std::vector<float> a = random_floats(n, 5), b = random_floats(n, 6);
      std::vector<double> ref(n);

      std::vector<float> y = poisoned(n);
      add_cpu(n, a.data(), b.data(), y.data());
      for (size_t i = 0; i < n; ++i) ref[i] = static_cast<double>(a[i]) + b[i];
      expect_close(y, ref);

      // The residual add writes in place: y aliases an input.
      std::vector<float> inplace = a;
      add_cpu(n, inplace.data(), b.data(), inplace.data());
      expect_close(inplace, ref);

      std::vector<float> acc = b;
      axpy_cpu(n, -0.75f, a.data(), acc.data());
      for (size_t i = 0; i < n; ++i) ref[i] = b[i] - 0.75 * a[i];
      expect_close(acc, ref);

      std::vector<float> filled = poisoned(n);
      fill_cpu(n, 2.5f, filled.data());
      CHECK(filled == std::vector<float>(n, 2.5f));

      std::vector<float> scaled = a;
      scale_cpu(n, -3.0f, scaled.data());
      for (size_t i = 0; i < n; ++i) ref[i] = -3.0 * a[i];
      expect_close(scaled, ref);
    }
  }
}
