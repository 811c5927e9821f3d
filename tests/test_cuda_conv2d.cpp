// GPU suite: the implicit-GEMM convolutions against the CPU versions on a table of shapes
// with awkward sizes: N = 1, C = 1 and 3 (first layers), C and K not multiples of the
// 128×64 tiles, stride 2, 1×1 shortcuts, non-square filters and images, and one layer large
// enough that wgrad splits its reduction over blocks. Outputs are poisoned with NaN before
// each call; wgrad's dw and dbias start from random values, since it adds into them.
#ifdef ACTIVEIP_CUDA

#include <vector>

#include "engine/core/context.h"
#include "engine/core/cuda_memory.h"
#include "kernels/conv2d.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace activeip {
namespace {

using test::expect_close;
using test::poisoned;
using test::random_floats;
using test::to_device;
using test::to_host;

// fp32 on both sides, summed in different orders (wgrad's split sums also in any order).
constexpr test::Tolerance kTol{.rel = 1e-5};

struct ConvCase {
  const char* name;
  Conv2dShape s;
};

const ConvCase kCases[] = {
    {"N=1 3x3 pad 1", {.N = 1, .H = 8, .W = 8, .C = 16, .K = 32, .R = 3, .S = 3, .stride = 1, .pad = 1}},
    {"CIFAR first layer C=3", {.N = 2, .H = 32, .W = 32, .C = 3, .K = 16, .R = 3, .S = 3, .stride = 1, .pad = 1}},
    {"Fashion-MNIST first layer C=1 28x28",
     {.N = 2, .H = 28, .W = 28, .C = 1, .K = 8, .R = 3, .S = 3, .stride = 1, .pad = 1}},
    {"odd C=7 K=13 9x11", {.N = 3, .H = 9, .W = 11, .C = 7, .K = 13, .R = 3, .S = 3, .stride = 1, .pad = 1}},
    {"3x3 stride 2", {.N = 2, .H = 16, .W = 16, .C = 32, .K = 64, .R = 3, .S = 3, .stride = 2, .pad = 1}},
    {"1x1 stride 2 shortcut", {.N = 2, .H = 16, .W = 16, .C = 32, .K = 64, .R = 1, .S = 1, .stride = 2, .pad = 0}},
    {"5x3 stride 2 pad 2 on 13x12", {.N = 2, .H = 13, .W = 12, .C = 5, .K = 6, .R = 5, .S = 3, .stride = 2, .pad = 2}},
    {"C=64 K=64 16x16 N=4", {.N = 4, .H = 16, .W = 16, .C = 64, .K = 64, .R = 3, .S = 3, .stride = 1, .pad = 1}},
    {"C=72 K=80 off the tiles", {.N = 2, .H = 10, .W = 10, .C = 72, .K = 80, .R = 3, .S = 3, .stride = 1, .pad = 1}},
    {"N=8 32x32 C=K=64", {.N = 8, .H = 32, .W = 32, .C = 64, .K = 64, .R = 3, .S = 3, .stride = 1, .pad = 1}},
};

}  // namespace

TEST_CASE("conv2d_fprop_cuda matches the CPU, with and without bias") {
  Context ctx(Device::cuda());
  for (const ConvCase& c : kCases) SUBCASE(c.name) {
      const Conv2dShape& s = c.s;
      const auto x = random_floats(s.x_size(), 101), w = random_floats(s.w_size(), 102);
      const auto bias = random_floats(s.K, 103);
      std::vector<float> ref(s.y_size()), ref_bias(s.y_size());
      conv2d_fprop_cpu(s, x.data(), w.data(), nullptr, ref.data());
      conv2d_fprop_cpu(s, x.data(), w.data(), bias.data(), ref_bias.data());

      const auto d_x = to_device(x, ctx), d_w = to_device(w, ctx), d_bias = to_device(bias, ctx);
      auto d_y = to_device(poisoned(s.y_size()), ctx);
      conv2d_fprop_cuda(s, d_x.data(), d_w.data(), nullptr, d_y.data(), ctx.stream());
      expect_close(to_host(d_y, ctx), ref, kTol);

      d_y = to_device(poisoned(s.y_size()), ctx);
      conv2d_fprop_cuda(s, d_x.data(), d_w.data(), d_bias.data(), d_y.data(), ctx.stream());
      expect_close(to_host(d_y, ctx), ref_bias, kTol);
    }
}

TEST_CASE("conv2d_dgrad_cuda matches the CPU and overwrites all of dx") {
  Context ctx(Device::cuda());
  for (const ConvCase& c : kCases) SUBCASE(c.name) {
      const Conv2dShape& s = c.s;
      const auto dy = random_floats(s.y_size(), 201), w = random_floats(s.w_size(), 202);
      std::vector<float> ref(s.x_size());
      conv2d_dgrad_cpu(s, dy.data(), w.data(), ref.data());

      const auto d_dy = to_device(dy, ctx), d_w = to_device(w, ctx);
      auto d_dx = to_device(poisoned(s.x_size()), ctx);  // stride 2 with a 1×1 filter leaves inputs no output sees
      conv2d_dgrad_cuda(s, d_dy.data(), d_w.data(), d_dx.data(), ctx.stream());
      expect_close(to_host(d_dx, ctx), ref, kTol);
    }
}

TEST_CASE("conv2d_wgrad_cuda matches the CPU and adds into dw and dbias") {
  Context ctx(Device::cuda());
  for (const ConvCase& c : kCases) SUBCASE(c.name) {
      const Conv2dShape& s = c.s;
      const auto x = random_floats(s.x_size(), 301), dy = random_floats(s.y_size(), 302);
      auto dw = random_floats(s.w_size(), 303), dbias = random_floats(s.K, 304);
      const auto d_x = to_device(x, ctx), d_dy = to_device(dy, ctx);
      auto d_dw = to_device(dw, ctx), d_dbias = to_device(dbias, ctx);

      conv2d_wgrad_cpu(s, x.data(), dy.data(), dw.data(), dbias.data());
      conv2d_wgrad_cuda(s, d_x.data(), d_dy.data(), d_dw.data(), d_dbias.data(), ctx.stream());
      expect_close(to_host(d_dw, ctx), dw, kTol);
      expect_close(to_host(d_dbias, ctx), dbias, kTol);

      // A second step accumulates on top; without dbias only dw changes.
      conv2d_wgrad_cpu(s, x.data(), dy.data(), dw.data(), nullptr);
      conv2d_wgrad_cuda(s, d_x.data(), d_dy.data(), d_dw.data(), nullptr, ctx.stream());
      expect_close(to_host(d_dw, ctx), dw, kTol);
      expect_close(to_host(d_dbias, ctx), dbias, kTol);
    }
}

}  // namespace activeip

#endif  // ACTIVEIP_CUDA
