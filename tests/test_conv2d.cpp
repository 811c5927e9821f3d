// conv2d beyond the op table (tests/op_table.h checks the fast passes against the double
// reference on bench/conv_cases.h's shapes): the fast passes do not depend on the thread
// count, and the reference dgrad / wgrad match finite differences of the reference fprop.
#include <omp.h>

#include <cstring>
#include <string>
#include <vector>

#include "bench/conv_cases.h"
#include "kernels/conv2d.h"
#include "tests/test_util.h"

namespace activeip {
namespace {

using test::expect_close;
using test::random_floats;
using test::to_double;

TEST_CASE("conv2d fast passes do not depend on the thread count") {
  const int saved = omp_get_max_threads();
  for (const ConvShapeCase& cc : {kConvTestCases[1], kConvTestCases[3], kConvTestCases[4], kConvTestCases[5]}) {
    const Conv2dShape& s = cc.s;
    CAPTURE(cc.name);
    const auto x = random_floats(s.x_size(), 21), w = random_floats(s.w_size(), 22);
    const auto dy = random_floats(s.y_size(), 23), b = random_floats(size_t(s.K), 24);
    std::vector<float> y[2], dx[2], dw[2], db[2];
    for (int t = 0; t < 2; ++t) {
      omp_set_num_threads(t + 1);
      y[t] = test::poisoned(s.y_size());
      dx[t] = test::poisoned(s.x_size());
      dw[t] = random_floats(s.w_size(), 25);
      db[t] = random_floats(size_t(s.K), 26);
      conv2d_fprop_cpu(s, x.data(), w.data(), b.data(), y[t].data());
      conv2d_dgrad_cpu(s, dy.data(), w.data(), dx[t].data());
      conv2d_wgrad_cpu(s, x.data(), dy.data(), dw[t].data(), db[t].data());
    }
    omp_set_num_threads(saved);
    auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
      return std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
    };
    CHECK(same(y[0], y[1]));
    CHECK(same(dx[0], dx[1]));
    CHECK(same(dw[0], dw[1]));
    CHECK(same(db[0], db[1]));
  }
}

TEST_CASE("conv2d reference dgrad and wgrad match finite differences of fprop") {
  // {N, H, W, C, K, R, S, stride, pad}
  const Conv2dShape shapes[] = {{2, 5, 4, 3, 2, 3, 3, 1, 1},
                                {2, 5, 4, 3, 2, 3, 3, 2, 1},
                                {1, 5, 5, 2, 3, 1, 1, 2, 0},
                                {1, 6, 5, 2, 2, 5, 5, 1, 2}};
  uint64_t seed = 500;
  for (const Conv2dShape& s : shapes) {
    CAPTURE(conv_shape_str(s));
    seed += 10;
    auto x = to_double(random_floats(s.x_size(), seed)), w = to_double(random_floats(s.w_size(), seed + 1));
    auto b = to_double(random_floats(size_t(s.K), seed + 2));
    const auto g = to_double(random_floats(s.y_size(), seed + 3));  // dL/dy of L = Σ y·g
    std::vector<double> y(s.y_size());
    auto loss = [&] {
      conv2d_fprop_ref(s, x.data(), w.data(), b.data(), y.data());
      return test::dot(y, g);
    };
    std::vector<double> dx(x.size()), dw(w.size(), 0.0), db(b.size(), 0.0);
    conv2d_dgrad_ref(s, g.data(), w.data(), dx.data());
    conv2d_wgrad_ref(s, x.data(), g.data(), dw.data(), db.data());
    // L is linear in each argument, so central differences are exact up to rounding.
    expect_close(dx, test::numeric_grad(x, loss), {.rel = 1e-7});
    expect_close(dw, test::numeric_grad(w, loss), {.rel = 1e-7});
    expect_close(db, test::numeric_grad(b, loss), {.rel = 1e-7});
  }
}

}  // namespace
}  // namespace activeip
