// GPU suite: what the op table (test_cuda_ops.cpp: relu, add, axpy, fill) does not reach —
// scale and the SGD step (with per-element decay and without a momentum buffer, which the
// op does not take) against their CPU versions on sizes 1, 7, 1000003, scale through aligned
// and unaligned pointers; empty launches; and indices past 2^31. In-place outputs start from
// random values.
#ifdef ACTIVEIP_CUDA

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "engine/core/context.h"
#include "engine/core/cuda_memory.h"
#include "kernels/elementwise.h"
#include "kernels/sgd.h"
#include "tests/test_util.h"

namespace activeip {
namespace {

using test::expect_close;
using test::poisoned;
using test::random_floats;

constexpr size_t kSizes[] = {1, 7, 1000003};
constexpr size_t kOffsets[] = {0, 1};  // floats past a 256-byte aligned allocation
constexpr test::Tolerance kTol{.rel = 1e-6};

// A device copy of a host array, `offset` floats into its own allocation.
class DeviceArray {
 public:
  DeviceArray(const std::vector<float>& host, size_t offset, Context& ctx)
      : buf_(host.size() + offset), offset_(offset) {
    cuda::copy_h2d(data(), host.data(), host.size() * sizeof(float), ctx.stream());
  }
  float* data() const { return buf_.data() + offset_; }
  std::vector<float> download(Context& ctx) const {
    std::vector<float> host(buf_.size() - offset_);
    cuda::copy_d2h(host.data(), data(), host.size() * sizeof(float), ctx.stream());
    return host;
  }

 private:
  cuda::DeviceBuffer<float> buf_;
  size_t offset_;
};

std::string case_name(size_t n, size_t offset) {
  return "n=" + std::to_string(n) + (offset ? " unaligned" : " aligned");
}

}  // namespace

TEST_CASE("scale_cuda matches the CPU") {
  Context ctx(Device::cuda());
  const float factor = -0.61f;
  for (size_t n : kSizes)
    for (size_t offset : kOffsets) SUBCASE(case_name(n, offset).c_str()) {
        auto y = random_floats(n, 32 + n);
        DeviceArray d_y(y, offset, ctx);
        scale_cpu(n, factor, y.data());
        scale_cuda(n, factor, d_y.data(), ctx.stream());
        expect_close(d_y.download(ctx), y, kTol);
      }
}

TEST_CASE("elementwise launchers accept n == 0") {
  Context ctx(Device::cuda());
  CHECK_NOTHROW(relu_fwd_cuda(0, nullptr, nullptr, ctx.stream()));
  CHECK_NOTHROW(relu_bwd_cuda(0, nullptr, nullptr, nullptr, ctx.stream()));
  CHECK_NOTHROW(add_cuda(0, nullptr, nullptr, nullptr, ctx.stream()));
  CHECK_NOTHROW(axpy_cuda(0, 1.0f, nullptr, nullptr, ctx.stream()));
  CHECK_NOTHROW(fill_cuda(0, 1.0f, nullptr, ctx.stream()));
  CHECK_NOTHROW(scale_cuda(0, 1.0f, nullptr, ctx.stream()));
  CHECK_NOTHROW(sgd_step_cuda(0, SgdParams{}, SgdArgs{}, ctx.stream()));
  CHECK_NOTHROW(ctx.synchronize());
}

// Indices are size_t: a 32-bit index would wrap at 2^31 and leave the last elements NaN.
TEST_CASE("fill_cuda and scale_cuda reach elements past 2^31") {
  Context ctx(Device::cuda());
  const size_t n = (size_t{1} << 31) + 5;
  size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (free_bytes < n * sizeof(float) + (size_t{1} << 30)) {
    MESSAGE("not run: needs 9 GiB of free GPU memory, " << free_bytes << " bytes free");
    return;
  }
  cuda::DeviceBuffer<float> y(n);
  const size_t window = (size_t{1} << 31) - 3;  // straddles 2^31 up to the last element
  const auto nan = poisoned(n - window);
  cuda::copy_h2d(y.data() + window, nan.data(), nan.size() * sizeof(float), ctx.stream());

  fill_cuda(n, 0.75f, y.data(), ctx.stream());           // aligned: the float4 path
  scale_cuda(n - 1, -2.0f, y.data() + 1, ctx.stream());  // unaligned: the scalar path
  std::vector<float> head(1), tail(n - window);
  cuda::copy_d2h(head.data(), y.data(), sizeof(float), ctx.stream());
  cuda::copy_d2h(tail.data(), y.data() + window, tail.size() * sizeof(float), ctx.stream());
  CHECK(head[0] == 0.75f);
  for (size_t i = 0; i < tail.size(); ++i) {
    CAPTURE(window + i);
    CHECK(tail[i] == -1.5f);
  }
}

TEST_CASE("sgd_step_cuda matches sgd_step_cpu") {
  struct Config {
    const char* name;
    SgdParams params;
    bool with_mask, with_decay, with_trainable = false;
  };
  const Config configs[] = {
      {"momentum", {0.1f, 0.9f, 5e-4f, false}, false, false},
      {"nesterov", {0.05f, 0.9f, 1e-3f, true}, false, false},
      {"mask and decay", {0.1f, 0.9f, 5e-4f, false}, true, true},
      {"nesterov, mask and decay", {0.2f, 0.8f, 1e-2f, true}, true, true},
      {"no momentum", {0.1f, 0.0f, 5e-4f, false}, true, false},
      {"frozen elements", {0.1f, 0.9f, 5e-4f, true}, false, false, true},
      {"frozen elements, mask and decay", {0.1f, 0.9f, 5e-4f, false}, true, true, true},
  };
  Context ctx(Device::cuda());
  for (const Config& c : configs)
    for (size_t n : kSizes) SUBCASE((std::string(c.name) + ", n=" + std::to_string(n)).c_str()) {
        auto w = random_floats(n, 41 + n), v = random_floats(n, 43 + n);
        const auto g = random_floats(n, 42 + n);
        // 0/1 masks with both values present for n > 1, from the signs of random numbers.
        std::vector<float> mask(n), decay(n), trainable(n);
        const auto coin_m = random_floats(n, 44 + n), coin_d = random_floats(n, 45 + n),
                   coin_t = random_floats(n, 46 + n);
        for (size_t i = 0; i < n; ++i) {
          mask[i] = coin_m[i] > 0 ? 1.0f : 0.0f;
          decay[i] = coin_d[i] > 0 ? 1.0f : 0.0f;
          trainable[i] = coin_t[i] > 0 ? 1.0f : 0.0f;
        }
        const bool momentum = c.params.momentum != 0.0f;
        const std::vector<float> w0 = w, v0 = v;
        DeviceArray d_w(w, 0, ctx), d_g(g, 0, ctx), d_v(v, 0, ctx), d_mask(mask, 0, ctx), d_decay(decay, 0, ctx),
            d_trainable(trainable, 0, ctx);

        SgdArgs cpu{w.data(), g.data(), momentum ? v.data() : nullptr, c.with_mask ? mask.data() : nullptr,
                    c.with_decay ? decay.data() : nullptr};
        cpu.trainable = c.with_trainable ? trainable.data() : nullptr;
        sgd_step_cpu(n, c.params, cpu);
        SgdArgs gpu{d_w.data(), d_g.data(), momentum ? d_v.data() : nullptr, c.with_mask ? d_mask.data() : nullptr,
                    c.with_decay ? d_decay.data() : nullptr};
        gpu.trainable = c.with_trainable ? d_trainable.data() : nullptr;
        sgd_step_cuda(n, c.params, gpu, ctx.stream());

        const auto w_got = d_w.download(ctx);
        expect_close(w_got, w, kTol);
        expect_close(d_v.download(ctx), v, kTol);  // without momentum neither side touches it
        const auto v_got = d_v.download(ctx);
        for (size_t i = 0; i < n; ++i) {
          const bool frozen = c.with_trainable && trainable[i] == 0.0f;
          if (c.with_mask && !frozen && mask[i] == 0.0f) REQUIRE(w_got[i] == 0.0f);
          if (frozen) {  // untouched, bit for bit
            REQUIRE(w_got[i] == w0[i]);
            REQUIRE(v_got[i] == v0[i]);
          }
        }
        expect_close(d_g.download(ctx), g, {.rel = 0});  // the gradient is read-only
      }
}

}  // namespace activeip

#endif  // ACTIVEIP_CUDA
