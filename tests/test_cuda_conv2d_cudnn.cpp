// GPU suite, cuDNN builds only: the cuDNN comparators conv2d_{fprop,dgrad,wgrad}_cudnn against
// the CPU versions and against our own conv2d_*_cuda kernels, on N = 1, the CIFAR (C = 3, 32×32)
// and Fashion-MNIST (C = 1, 28×28) first layers, stride 2 (one leaving input rows that no
// output reads), a 1×1 stride-2 shortcut, C and K not multiples of 8, and 64 channels.
// y and dx are poisoned with NaN; dw and dbias start random, since wgrad adds into them.
#if defined(ACTIVEIP_CUDA) && defined(ACTIVEIP_CUDNN)

#include <string>
#include <vector>

#include "engine/core/context.h"
#include "engine/core/cuda_memory.h"
#include "kernels/conv2d.h"
#include "kernels/vendor/vendor.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace activeip {
namespace {

using test::expect_close;
using test::poisoned;
using test::random_floats;
using test::to_device;
using test::to_host;

// fp32 on every side (cuDNN runs with CUDNN_FMA_MATH, no TF32), summed in different orders.
constexpr test::Tolerance kTol{.rel = 1e-5};

struct ConvCase {
  const char* name;
  Conv2dShape s;
};

const ConvCase kCases[] = {
    {"N=1 3x3 pad 1", {.N = 1, .H = 8, .W = 8, .C = 16, .K = 32, .R = 3, .S = 3, .stride = 1, .pad = 1}},
    {"CIFAR first layer C=3 32x32", {.N = 2, .H = 32, .W = 32, .C = 3, .K = 16, .R = 3, .S = 3, .stride = 1, .pad = 1}},
    {"Fashion-MNIST first layer C=1 28x28",
     {.N = 2, .H = 28, .W = 28, .C = 1, .K = 8, .R = 3, .S = 3, .stride = 1, .pad = 1}},
    {"3x3 stride 2 pad 1", {.N = 2, .H = 16, .W = 16, .C = 16, .K = 32, .R = 3, .S = 3, .stride = 2, .pad = 1}},
    {"3x3 stride 2 pad 0, last row and column unread",
     {.N = 2, .H = 16, .W = 16, .C = 8, .K = 8, .R = 3, .S = 3, .stride = 2, .pad = 0}},
    {"1x1 stride 2 shortcut", {.N = 2, .H = 16, .W = 16, .C = 16, .K = 32, .R = 1, .S = 1, .stride = 2, .pad = 0}},
    {"C=7 K=13 on 9x11", {.N = 3, .H = 9, .W = 11, .C = 7, .K = 13, .R = 3, .S = 3, .stride = 1, .pad = 1}},
    {"C=K=64 16x16", {.N = 2, .H = 16, .W = 16, .C = 64, .K = 64, .R = 3, .S = 3, .stride = 1, .pad = 1}},
};

}  // namespace

TEST_CASE("conv2d_fprop_cudnn matches the CPU and conv2d_fprop_cuda, with and without bias") {
  Context ctx(Device::cuda());
  VendorHandles vendor(ctx.stream());
  for (const ConvCase& c : kCases)
    for (const bool with_bias : {true, false})
      SUBCASE((std::string(c.name) + (with_bias ? ", bias" : ", no bias")).c_str()) {
        const Conv2dShape& s = c.s;
        const auto x = random_floats(s.x_size(), 201), w = random_floats(s.w_size(), 202);
        const auto bias = random_floats(s.K, 203);
        std::vector<float> ref(s.y_size());
        conv2d_fprop_cpu(s, x.data(), w.data(), with_bias ? bias.data() : nullptr, ref.data());

        const auto d_x = to_device(x, ctx), d_w = to_device(w, ctx), d_bias = to_device(bias, ctx);
        const float* bias_arg = with_bias ? d_bias.data() : nullptr;
        auto d_y = to_device(poisoned(s.y_size()), ctx), d_ours = to_device(poisoned(s.y_size()), ctx);
        conv2d_fprop_cudnn(vendor, s, d_x.data(), d_w.data(), bias_arg, d_y.data());
        conv2d_fprop_cuda(s, d_x.data(), d_w.data(), bias_arg, d_ours.data(), ctx.stream());
        const auto y = to_host(d_y, ctx);
        expect_close(y, ref, kTol);
        expect_close(y, to_host(d_ours, ctx), kTol);
      }
}

TEST_CASE("conv2d_dgrad_cudnn matches the CPU and conv2d_dgrad_cuda, and overwrites all of dx") {
  Context ctx(Device::cuda());
  VendorHandles vendor(ctx.stream());
  for (const ConvCase& c : kCases) SUBCASE(c.name) {
      const Conv2dShape& s = c.s;
      const auto dy = random_floats(s.y_size(), 301), w = random_floats(s.w_size(), 302);
      std::vector<float> ref(s.x_size());
      conv2d_dgrad_cpu(s, dy.data(), w.data(), ref.data());

      const auto d_dy = to_device(dy, ctx), d_w = to_device(w, ctx);
      auto d_dx = to_device(poisoned(s.x_size()), ctx), d_ours = to_device(poisoned(s.x_size()), ctx);
      conv2d_dgrad_cudnn(vendor, s, d_dy.data(), d_w.data(), d_dx.data());
      conv2d_dgrad_cuda(s, d_dy.data(), d_w.data(), d_ours.data(), ctx.stream());
      const auto dx = to_host(d_dx, ctx);
      expect_close(dx, ref, kTol);
      expect_close(dx, to_host(d_ours, ctx), kTol);
    }
}

TEST_CASE("conv2d_wgrad_cudnn matches the CPU and conv2d_wgrad_cuda, adding into dw and dbias") {
  Context ctx(Device::cuda());
  VendorHandles vendor(ctx.stream());
  for (const ConvCase& c : kCases)
    for (const bool with_bias : {true, false})
      SUBCASE((std::string(c.name) + (with_bias ? ", dbias" : ", no dbias")).c_str()) {
        const Conv2dShape& s = c.s;
        const auto x = random_floats(s.x_size(), 401), dy = random_floats(s.y_size(), 402);
        const auto dw0 = random_floats(s.w_size(), 403), dbias0 = random_floats(s.K, 404);
        std::vector<float> dw_ref = dw0, dbias_ref = dbias0;
        conv2d_wgrad_cpu(s, x.data(), dy.data(), dw_ref.data(), with_bias ? dbias_ref.data() : nullptr);

        const auto d_x = to_device(x, ctx), d_dy = to_device(dy, ctx);
        auto d_dw = to_device(dw0, ctx), d_dbias = to_device(dbias0, ctx);
        auto d_dw_ours = to_device(dw0, ctx), d_dbias_ours = to_device(dbias0, ctx);
        conv2d_wgrad_cudnn(vendor, s, d_x.data(), d_dy.data(), d_dw.data(), with_bias ? d_dbias.data() : nullptr);
        conv2d_wgrad_cuda(s, d_x.data(), d_dy.data(), d_dw_ours.data(), with_bias ? d_dbias_ours.data() : nullptr,
                          ctx.stream());
        const auto dw = to_host(d_dw, ctx), dbias = to_host(d_dbias, ctx);
        expect_close(dw, dw_ref, kTol);
        expect_close(dw, to_host(d_dw_ours, ctx), kTol);
        if (with_bias) {
          expect_close(dbias, dbias_ref, kTol);
          expect_close(dbias, to_host(d_dbias_ours, ctx), kTol);
        } else {
          CHECK(dbias == dbias0);  // a null dbias is never written
        }
      }
}

TEST_CASE("VendorHandles finds each cuDNN pass once per shape and keeps the choice") {
  Context ctx(Device::cuda());
  VendorHandles vendor(ctx.stream());
  cudnnHandle_t h = vendor.cudnn();
  CHECK(vendor.cudnn() == h);
  cudaStream_t bound = nullptr;
  CUDNN_CHECK(cudnnGetStream(h, &bound));
  CHECK(bound == ctx.stream());

  const Conv2dShape s{.N = 2, .H = 12, .W = 12, .C = 16, .K = 16, .R = 3, .S = 3, .stride = 1, .pad = 1};
  const auto x = to_device(random_floats(s.x_size(), 501), ctx), w = to_device(random_floats(s.w_size(), 502), ctx);
  const auto dy = to_device(random_floats(s.y_size(), 503), ctx);
  auto y = to_device(poisoned(s.y_size()), ctx), dx = to_device(poisoned(s.x_size()), ctx);
  auto dw = to_device(random_floats(s.w_size(), 504), ctx);

  CHECK_FALSE(vendor.conv_algos(s).fprop.has_value());
  conv2d_fprop_cudnn(vendor, s, x.data(), w.data(), nullptr, y.data());
  REQUIRE(vendor.conv_algos(s).fprop.has_value());
  const auto fprop = vendor.conv_algos(s).fprop->algo;
  conv2d_fprop_cudnn(vendor, s, x.data(), w.data(), nullptr, y.data());
  CHECK(vendor.conv_algos(s).fprop->algo == fprop);
  CHECK_FALSE(vendor.conv_algos(s).dgrad.has_value());  // each pass is searched on its own first call

  conv2d_dgrad_cudnn(vendor, s, dy.data(), w.data(), dx.data());
  conv2d_wgrad_cudnn(vendor, s, x.data(), dy.data(), dw.data(), nullptr);
  const CudnnConvAlgos& algos = vendor.conv_algos(s);
  REQUIRE(algos.dgrad.has_value());
  REQUIRE(algos.wgrad.has_value());
  // The choices, for the log of a GPU run: none may use tensor-core (TF32) math.
  MESSAGE("cuDNN algorithms: fprop " << int(algos.fprop->algo) << " (math " << int(algos.fprop->mathType) << "), dgrad "
                                     << int(algos.dgrad->algo) << " (math " << int(algos.dgrad->mathType) << "), wgrad "
                                     << int(algos.wgrad->algo) << " (math " << int(algos.wgrad->mathType) << ")");
  CHECK(algos.fprop->mathType != CUDNN_TENSOR_OP_MATH);
  CHECK(algos.dgrad->mathType != CUDNN_TENSOR_OP_MATH);
  CHECK(algos.wgrad->mathType != CUDNN_TENSOR_OP_MATH);

  const Conv2dShape other{.N = 1, .H = 12, .W = 12, .C = 16, .K = 16, .R = 3, .S = 3, .stride = 1, .pad = 1};
  CHECK_FALSE(vendor.conv_algos(other).fprop.has_value());  // another shape, another entry
  CHECK_NOTHROW(ctx.synchronize());
}

TEST_CASE("conv2d cuDNN comparators reject an empty output") {
  Context ctx(Device::cuda());
  VendorHandles vendor(ctx.stream());
  const Conv2dShape s{.N = 1, .H = 2, .W = 2, .C = 1, .K = 1, .R = 3, .S = 3, .stride = 1, .pad = 0};
  CHECK(test::error_of([&] { conv2d_fprop_cudnn(vendor, s, nullptr, nullptr, nullptr, nullptr); }).find("bad shape") !=
        std::string::npos);
}

}  // namespace activeip

#endif  // ACTIVEIP_CUDA && ACTIVEIP_CUDNN
