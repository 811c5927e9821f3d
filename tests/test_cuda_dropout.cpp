// GPU suite: the CUDA dropout launchers accept an empty tensor (the kernels against the CPU
// are in the op table, test_cuda_ops.cpp).
#ifdef ACTIVEIP_CUDA

#include "engine/core/context.h"
#include "kernels/dropout.h"
#include "tests/test_util.h"

namespace activeip {

TEST_CASE("dropout launchers accept n == 0") {
  Context ctx(Device::cuda());
  CHECK_NOTHROW(dropout_fwd_cuda(0, {}, nullptr, nullptr, nullptr, ctx.stream()));
  CHECK_NOTHROW(dropout_bwd_cuda(0, nullptr, nullptr, nullptr, ctx.stream()));
  CHECK_NOTHROW(ctx.synchronize());
}

}  // namespace activeip

#endif  // ACTIVEIP_CUDA
