// GPU suite: a CUDA context refuses --precision bf16 with a clear error until the
// tensor-core kernels exist (the CPU-side decision is in test_precision.cpp).
#ifdef ACTIVEIP_CUDA

#include "engine/core/context.h"
#include "tests/test_util.h"

namespace activeip {

TEST_CASE("precision: a CUDA context refuses bf16 and keeps fp32") {
  Context ctx(Device::cuda());
  CHECK_THROWS_WITH_AS(ctx.set_precision(Precision::BF16),
                       doctest::Contains("--precision bf16 is not built for CUDA yet"), Error);
  CHECK(ctx.precision() == Precision::F32);
  CHECK_NOTHROW(ctx.set_precision(Precision::F32));
}

}  // namespace activeip

#endif  // ACTIVEIP_CUDA
