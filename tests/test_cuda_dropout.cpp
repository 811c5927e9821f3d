// GPU suite: CUDA dropout against the CPU on awkward sizes (1, 7, 1000003) and several drop
// probabilities and seeds. The keep bit is integer arithmetic on (seed, index), so the mask,
// y and dx must be bit-identical to the CPU's, not merely close. Outputs are poisoned with NaN.
#ifdef ACTIVEIP_CUDA

#include <string>
#include <vector>

#include "engine/core/context.h"
#include "engine/core/cuda_memory.h"
#include "kernels/dropout.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace activeip {
namespace {

using test::poisoned;
using test::random_floats;
using test::to_device;
using test::to_host;

constexpr size_t kSizes[] = {1, 7, 1000003};

}  // namespace

TEST_CASE("dropout_fwd_cuda and dropout_bwd_cuda match the CPU bit for bit") {
  struct Config {
    float p;
    uint64_t seed;
  };
  const Config configs[] = {{0.0f, 1}, {0.1f, 2}, {0.5f, 0x123456789abcdefull}, {0.8f, ~0ull}};
  Context ctx(Device::cuda());
  for (const Config& cfg : configs)
    for (size_t n : kSizes)
      SUBCASE(
          ("p=" + std::to_string(cfg.p) + " seed=" + std::to_string(cfg.seed) + " n=" + std::to_string(n)).c_str()) {
        const DropoutParams d{.p = cfg.p, .seed = cfg.seed};
        const auto x = random_floats(n, 800 + n), dy = random_floats(n, 801 + n);
        std::vector<float> y_ref = poisoned(n), mask_ref = poisoned(n), dx_ref = poisoned(n);
        dropout_fwd_cpu(n, d, x.data(), y_ref.data(), mask_ref.data());
        dropout_bwd_cpu(n, dy.data(), mask_ref.data(), dx_ref.data());

        auto d_x = to_device(x, ctx), d_y = to_device(poisoned(n), ctx), d_mask = to_device(poisoned(n), ctx);
        auto d_dy = to_device(dy, ctx), d_dx = to_device(poisoned(n), ctx);
        dropout_fwd_cuda(n, d, d_x.data(), d_y.data(), d_mask.data(), ctx.stream());
        dropout_bwd_cuda(n, d_dy.data(), d_mask.data(), d_dx.data(), ctx.stream());
        CHECK(to_host(d_mask, ctx) == mask_ref);
        CHECK(to_host(d_y, ctx) == y_ref);
        CHECK(to_host(d_dx, ctx) == dx_ref);
      }
}

TEST_CASE("dropout launchers accept n == 0") {
  Context ctx(Device::cuda());
  CHECK_NOTHROW(dropout_fwd_cuda(0, {}, nullptr, nullptr, nullptr, ctx.stream()));
  CHECK_NOTHROW(dropout_bwd_cuda(0, nullptr, nullptr, nullptr, ctx.stream()));
  CHECK_NOTHROW(ctx.synchronize());
}

}  // namespace activeip

#endif  // ACTIVEIP_CUDA
