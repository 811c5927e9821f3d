// GPU suite: CUDA max-pool (forward values and argmax, backward) and global average pool
// against the CPU. Shapes: N = 1, C = 1/3/7/13/64/100, 28×28 and 32×32 images, odd sizes
// whose last row and column no window reaches, 2×2 stride 2, and overlapping windows (3×3
// stride 2 pad 1, 3×3 stride 1 pad 1); one input has many ties, where the first maximum in
// window order must win. Outputs are poisoned with NaN before each call.
#ifdef ACTIVEIP_CUDA

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/context.h"
#include "engine/core/cuda_memory.h"
#include "kernels/pool.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace activeip {
namespace {

using test::expect_close;
using test::poisoned;
using test::random_floats;
using test::to_device;
using test::to_host;

constexpr test::Tolerance kTol{.rel = 1e-5};

struct PoolCase {
  const char* name;
  Pool2dShape s;
  bool ties;  // inputs rounded to a few levels, so most windows hold equal maxima
};

const PoolCase kPoolCases[] = {
    {"N1 28x28 C1 2x2 s2", {1, 28, 28, 1, 2, 2, 2, 0}, false},
    {"N2 32x32 C3 2x2 s2", {2, 32, 32, 3, 2, 2, 2, 0}, false},
    {"N3 7x7 C13 3x3 s2 p1", {3, 7, 7, 13, 3, 3, 2, 1}, false},
    {"N2 32x32 C64 3x3 s2 p1", {2, 32, 32, 64, 3, 3, 2, 1}, false},
    {"N1 28x28 C7 3x3 s1 p1", {1, 28, 28, 7, 3, 3, 1, 1}, false},
    {"N2 9x9 C100 2x2 s2", {2, 9, 9, 100, 2, 2, 2, 0}, false},
    {"N1 5x7 C3 3x3 s2", {1, 5, 7, 3, 3, 3, 2, 0}, false},
    {"ties N2 28x28 C7 3x3 s2 p1", {2, 28, 28, 7, 3, 3, 2, 1}, true},
    {"ties N1 32x32 C3 2x2 s2", {1, 32, 32, 3, 2, 2, 2, 0}, true},
};

}  // namespace

TEST_CASE("maxpool2d_fwd_cuda and maxpool2d_bwd_cuda match the CPU") {
  Context ctx(Device::cuda());
  for (const PoolCase& c : kPoolCases) SUBCASE(c.name) {
      const Pool2dShape& s = c.s;
      const size_t in = static_cast<size_t>(s.N) * s.H * s.W * s.C,
                   out = static_cast<size_t>(s.N) * s.P() * s.Q() * s.C;
      std::vector<float> x = random_floats(in, 600 + in);
      if (c.ties)
        for (float& v : x) v = std::round(2.0f * v) / 2.0f;  // five levels, -1 … 1
      const std::vector<float> dy = random_floats(out, 601 + in);

      std::vector<float> y_ref = poisoned(out), dx_ref = poisoned(in);
      std::vector<int32_t> argmax_ref(out, -1);
      maxpool2d_fwd_cpu(s, x.data(), y_ref.data(), argmax_ref.data());
      maxpool2d_bwd_cpu(s, dy.data(), argmax_ref.data(), dx_ref.data());

      auto d_x = to_device(x, ctx), d_y = to_device(poisoned(out), ctx), d_dy = to_device(dy, ctx);
      auto d_dx = to_device(poisoned(in), ctx);
      auto d_argmax = to_device(std::vector<int32_t>(out, -1), ctx);
      maxpool2d_fwd_cuda(s, d_x.data(), d_y.data(), d_argmax.data(), ctx.stream());
      // The maximum is a selection, not arithmetic: values and indices agree exactly.
      expect_close(to_host(d_y, ctx), y_ref, {.rel = 0});
      CHECK(to_host(d_argmax, ctx) == argmax_ref);

      maxpool2d_bwd_cuda(s, d_dy.data(), d_argmax.data(), d_dx.data(), ctx.stream());
      expect_close(to_host(d_dx, ctx), dx_ref, kTol);
    }
}

TEST_CASE("global_avgpool_fwd_cuda and global_avgpool_bwd_cuda match the CPU") {
  struct Case {
    const char* name;
    GlobalPoolShape s;
  };
  const Case cases[] = {
      {"N1 8x8 C1", {1, 64, 1}},     {"N3 7x7 C13", {3, 49, 13}},   {"N2 32x32 C7", {2, 1024, 7}},
      {"N5 4x4 C100", {5, 16, 100}}, {"N4 8x8 C512", {4, 64, 512}}, {"N7 1x1 C3", {7, 1, 3}},
  };
  Context ctx(Device::cuda());
  for (const Case& c : cases) SUBCASE(c.name) {
      const GlobalPoolShape& s = c.s;
      const size_t in = static_cast<size_t>(s.N) * s.HW * s.C, out = static_cast<size_t>(s.N) * s.C;
      const std::vector<float> x = random_floats(in, 700 + in), dy = random_floats(out, 701 + in);
      std::vector<float> y_ref = poisoned(out), dx_ref = poisoned(in);
      global_avgpool_fwd_cpu(s, x.data(), y_ref.data());
      global_avgpool_bwd_cpu(s, dy.data(), dx_ref.data());

      auto d_x = to_device(x, ctx), d_y = to_device(poisoned(out), ctx), d_dy = to_device(dy, ctx);
      auto d_dx = to_device(poisoned(in), ctx);
      global_avgpool_fwd_cuda(s, d_x.data(), d_y.data(), ctx.stream());
      global_avgpool_bwd_cuda(s, d_dy.data(), d_dx.data(), ctx.stream());
      expect_close(to_host(d_y, ctx), y_ref, kTol);
      expect_close(to_host(d_dx, ctx), dx_ref, kTol);
    }
}

}  // namespace activeip

#endif  // ACTIVEIP_CUDA
