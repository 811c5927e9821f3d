// GPU suite, cuDNN builds only: what the op table (test_cuda_ops.cpp, which checks the cuDNN
// passes against the reference and our kernels) does not see — VendorHandles finds each
// pass's algorithm once per shape, never with TF32 math, and an empty output is refused.
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

using test::poisoned;
using test::random_floats;
using test::to_device;

}  // namespace

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
