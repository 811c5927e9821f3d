// Max-pool and global average pool: the fast CPU path against the double specification
// on awkward shapes (overlapping 3×3/s2 windows with padding, 7×5, N = 1, C = 1), the
// recorded argmax, ties and padding, and the specification's backward against finite
// differences of its forward.
#include <cmath>
#include <string>
#include <vector>

#include "kernels/pool.h"
#include "tests/test_util.h"

using namespace activeip;
using namespace activeip::test;

namespace {

struct PoolCase {
  const char* name;
  Pool2dShape s;
};

const PoolCase kPoolCases[] = {
    {"N1 28x28 C3 2x2/s2", {1, 28, 28, 3, 2, 2, 2, 0}},      {"N2 7x5 C17 3x3/s2 pad1", {2, 7, 5, 17, 3, 3, 2, 1}},
    {"N3 28x28 C1 3x3/s2 pad1", {3, 28, 28, 1, 3, 3, 2, 1}}, {"N1 7x5 C3 3x3/s1 pad1", {1, 7, 5, 3, 3, 3, 1, 1}},
    {"N2 7x5 C1 3x2/s2", {2, 7, 5, 1, 3, 2, 2, 0}},
};

size_t in_size(const Pool2dShape& s) {
  return static_cast<size_t>(s.N) * s.H * s.W * s.C;
}
size_t out_size(const Pool2dShape& s) {
  return static_cast<size_t>(s.N) * s.P() * s.Q() * s.C;
}

}  // namespace

TEST_CASE("maxpool2d: forward and backward match the specification") {
  for (const PoolCase& k : kPoolCases) {
    SUBCASE(k.name) {
      const Pool2dShape s = k.s;
      const std::vector<float> x = random_floats(in_size(s), 1), dy = random_floats(out_size(s), 2);
      std::vector<float> y = poisoned(out_size(s)), dx = poisoned(in_size(s));
      std::vector<int32_t> argmax(out_size(s), -7);
      maxpool2d_fwd_cpu(s, x.data(), y.data(), argmax.data());
      maxpool2d_bwd_cpu(s, dy.data(), argmax.data(), dx.data());

      const std::vector<double> xd = to_double(x), dyd = to_double(dy);
      std::vector<double> y_ref(out_size(s)), dx_ref(in_size(s));
      maxpool2d_fwd_ref(s, xd.data(), y_ref.data());
      maxpool2d_bwd_ref(s, xd.data(), dyd.data(), dx_ref.data());
      expect_close(y, y_ref);
      expect_close(dx, dx_ref);

      // Each recorded index lies inside its window and holds the output value.
      const size_t img = static_cast<size_t>(s.H) * s.W * s.C;
      bool inside = true, holds = true;
      for (int n = 0; n < s.N; ++n)
        for (int p = 0; p < s.P(); ++p)
          for (int q = 0; q < s.Q(); ++q)
            for (int c = 0; c < s.C; ++c) {
              const size_t o = ((static_cast<size_t>(n) * s.P() + p) * s.Q() + q) * s.C + c;
              const int h = argmax[o] / s.W, w = argmax[o] % s.W;
              inside = inside && argmax[o] >= 0 && h >= p * s.stride - s.pad && h < p * s.stride - s.pad + s.R &&
                       w >= q * s.stride - s.pad && w < q * s.stride - s.pad + s.S && h < s.H;
              holds = holds && x[n * img + static_cast<size_t>(argmax[o]) * s.C + c] == y[o];
            }
      CHECK(inside);
      CHECK(holds);
    }
  }
}

TEST_CASE("maxpool2d: padding never wins and the first maximum wins ties") {
  // 1×3×3×1, 3×3 window, stride 2, pad 1: four overlapping windows over negative inputs,
  // where a zero padding value would win if it were allowed to.
  const Pool2dShape s{1, 3, 3, 1, 3, 3, 2, 1};
  const std::vector<float> x = {-5, -2, -2,  //
                                -3, -4, -9,  //
                                -2, -8, -7};
  std::vector<float> y = poisoned(4);
  std::vector<int32_t> argmax(4, -7);
  maxpool2d_fwd_cpu(s, x.data(), y.data(), argmax.data());
  // Window (0,0) covers x[0..1][0..1]: max −2 at (0,1). Window (0,1) covers rows 0–1, cols
  // 1–2: the tie −2 at (0,1) and (0,2) goes to (0,1), first in window order. Window (1,0)
  // covers rows 1–2, cols 0–1: −2 at (2,0). Window (1,1) covers rows 1–2, cols 1–2: −4.
  CHECK(y == std::vector<float>{-2, -2, -2, -4});
  CHECK(argmax == std::vector<int32_t>{1, 1, 6, 4});

  // Backward scatters through the recorded winners; overlapping windows add.
  const std::vector<float> dy = {1.0f, 10.0f, 100.0f, 1000.0f};
  std::vector<float> dx = poisoned(9);
  maxpool2d_bwd_cpu(s, dy.data(), argmax.data(), dx.data());
  CHECK(dx == std::vector<float>{0, 11, 0, 0, 1000, 0, 100, 0, 0});
}

TEST_CASE("maxpool2d: specification backward matches finite differences") {
  const Pool2dShape shapes[] = {{1, 5, 4, 2, 3, 3, 2, 1}, {2, 4, 4, 1, 2, 2, 2, 0}};
  for (const Pool2dShape& s : shapes) {
    SUBCASE((std::string("H") + std::to_string(s.H) + " R" + std::to_string(s.R)).c_str()) {
      // Distinct inputs far apart relative to the step, so no perturbation changes a winner.
      std::vector<double> x = to_double(random_floats(in_size(s), 11)), wv = to_double(random_floats(out_size(s), 12));
      for (size_t i = 0; i < x.size(); ++i) x[i] += 0.01 * static_cast<double>(i);
      std::vector<double> y(out_size(s)), dx(in_size(s));
      const auto f = [&] {
        maxpool2d_fwd_ref(s, x.data(), y.data());
        return dot(y, wv);
      };
      maxpool2d_bwd_ref(s, x.data(), wv.data(), dx.data());
      expect_close(dx, numeric_grad(x, f), {.rel = 1e-6});
    }
  }
}

TEST_CASE("global_avgpool: forward and backward match the specification") {
  const GlobalPoolShape shapes[] = {{1, 28 * 28, 3}, {2, 7 * 5, 17}, {3, 1, 1}, {2, 4 * 4, 130}};
  for (const GlobalPoolShape& s : shapes) {
    SUBCASE(
        (std::string("N") + std::to_string(s.N) + " HW" + std::to_string(s.HW) + " C" + std::to_string(s.C)).c_str()) {
      const size_t in = static_cast<size_t>(s.N) * s.HW * s.C, out = static_cast<size_t>(s.N) * s.C;
      const std::vector<float> x = random_floats(in, 21), dy = random_floats(out, 22);
      std::vector<float> y = poisoned(out), dx = poisoned(in);
      global_avgpool_fwd_cpu(s, x.data(), y.data());
      global_avgpool_bwd_cpu(s, dy.data(), dx.data());
      const std::vector<double> xd = to_double(x), dyd = to_double(dy);
      std::vector<double> y_ref(out), dx_ref(in);
      global_avgpool_fwd_ref(s, xd.data(), y_ref.data());
      global_avgpool_bwd_ref(s, dyd.data(), dx_ref.data());
      expect_close(y, y_ref);
      expect_close(dx, dx_ref);
    }
  }
}

TEST_CASE("global_avgpool: specification backward matches finite differences") {
  const GlobalPoolShape s{2, 6, 3};
  const size_t in = static_cast<size_t>(s.N) * s.HW * s.C, out = static_cast<size_t>(s.N) * s.C;
  std::vector<double> x = to_double(random_floats(in, 31)), wv = to_double(random_floats(out, 32));
  std::vector<double> y(out), dx(in);
  const auto f = [&] {
    global_avgpool_fwd_ref(s, x.data(), y.data());
    return dot(y, wv);
  };
  global_avgpool_bwd_ref(s, wv.data(), dx.data());
  expect_close(dx, numeric_grad(x, f), {.rel = 1e-6});
}
