// conv2d fast CPU passes against the double reference over a table of shapes (N = 1 and
// N > 1, C and K off the register tile, odd spatial sizes, 3×3 / 5×5 / 1×1 shortcut, stride
// 1 and 2, with and without bias), outputs NaN-poisoned first and wgrad checked as an
// accumulation; thread-count independence; and the reference dgrad / wgrad against finite
// differences of the reference fprop on tiny shapes.
#include <omp.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "tests/test_util.h"

namespace activeip {
namespace {

using test::expect_close;
using test::random_floats;
using test::to_double;

struct ConvCase {
  Conv2dShape s;
  bool bias;
};

std::string name_of(const ConvCase& cc) {
  const auto& s = cc.s;
  char buf[128];
  std::snprintf(buf, sizeof buf, "N%d %dx%d C%d K%d %dx%d stride%d pad%d%s", s.N, s.H, s.W, s.C, s.K, s.R, s.S,
                s.stride, s.pad, cc.bias ? " bias" : "");
  return buf;
}

// {N, H, W, C, K, R, S, stride, pad}, bias
const ConvCase kCases[] = {
    {{1, 28, 28, 3, 17, 3, 3, 1, 1}, true},    // first layer: C = 3
    {{2, 32, 32, 64, 64, 3, 3, 1, 1}, false},  // the ResNet CIFAR 3×3 layer
    {{3, 7, 9, 5, 17, 3, 3, 2, 1}, true},      // odd sizes, stride 2
    {{2, 32, 32, 17, 64, 3, 3, 2, 1}, false},  // downsampling 3×3
    {{2, 28, 28, 17, 5, 1, 1, 1, 0}, true},    // 1×1 stride 1: x is the GEMM operand directly
    {{2, 9, 7, 64, 17, 1, 1, 2, 0}, false},    // 1×1 stride 2 shortcut
    {{1, 13, 11, 5, 64, 5, 5, 1, 2}, true},    // 5×5
    {{4, 8, 8, 64, 128, 3, 3, 1, 1}, true},    // deeper layer, RSC > the reduction block
    {{1, 4, 4, 128, 33, 3, 3, 1, 0}, false},   // no padding, tiny output
    {{2, 4, 4, 32, 300, 3, 3, 1, 1}, false},   // K > the reduction block (dgrad) and > 8 B slivers
    {{1, 5, 5, 8, 520, 3, 3, 2, 1}, true},     // K > 16 B slivers: several column tiles
};

TEST_CASE("conv2d fast passes match the double reference") {
  uint64_t seed = 1;
  for (const ConvCase& cc : kCases) {
    const Conv2dShape& s = cc.s;
    seed += 10;
    SUBCASE(name_of(cc).c_str()) {
      const auto x = random_floats(s.x_size(), seed), w = random_floats(s.w_size(), seed + 1);
      const auto dy = random_floats(s.y_size(), seed + 2), b = random_floats(size_t(s.K), seed + 3);
      const auto xd = to_double(x), wd = to_double(w), dyd = to_double(dy), bd = to_double(b);

      auto y = test::poisoned(s.y_size());
      std::vector<double> y_ref(y.size());
      conv2d_fprop_cpu(s, x.data(), w.data(), cc.bias ? b.data() : nullptr, y.data());
      conv2d_fprop_ref(s, xd.data(), wd.data(), cc.bias ? bd.data() : nullptr, y_ref.data());
      expect_close(y, y_ref);

      auto dx = test::poisoned(s.x_size());
      std::vector<double> dx_ref(dx.size());
      conv2d_dgrad_cpu(s, dy.data(), w.data(), dx.data());
      conv2d_dgrad_ref(s, dyd.data(), wd.data(), dx_ref.data());
      expect_close(dx, dx_ref);

      // wgrad adds into dw / dbias: start both from random non-zero values.
      auto dw = random_floats(s.w_size(), seed + 4), db = random_floats(size_t(s.K), seed + 5);
      auto dw_ref = to_double(dw), db_ref = to_double(db);
      conv2d_wgrad_cpu(s, x.data(), dy.data(), dw.data(), cc.bias ? db.data() : nullptr);
      conv2d_wgrad_ref(s, xd.data(), dyd.data(), dw_ref.data(), cc.bias ? db_ref.data() : nullptr);
      expect_close(dw, dw_ref);
      expect_close(db, db_ref);  // untouched (equal to its start) without bias
    }
  }
}

TEST_CASE("conv2d fast passes do not depend on the thread count") {
  const int saved = omp_get_max_threads();
  for (const ConvCase& cc : {kCases[1], kCases[3], kCases[4], kCases[5]}) {
    const Conv2dShape& s = cc.s;
    CAPTURE(name_of(cc));
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
    CAPTURE(name_of({s, true}));
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
