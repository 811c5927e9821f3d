// GPU suite: the pruning kernels against their CPU versions — magnitude keys, the k-th key
// (CUB radix sort) and the threshold mask on awkward sizes with many ties, the channel sums
// of fine-pruning — and the engine's masks computed on CUDA equal the CPU's exactly; a masked
// SGD step on the flat buffer keeps pruned weights at zero; filter pruning keeps and copies
// the same filters from a net on the device. Outputs poisoned with NaN first.
#ifdef ACTIVEIP_CUDA

#include <cmath>
#include <string>
#include <vector>

#include "attacks/prune.h"
#include "engine/core/context.h"
#include "engine/core/cuda_memory.h"
#include "engine/train/optimizer.h"
#include "kernels/prune.h"
#include "nets/nets.h"
#include "tests/test_util.h"

namespace activeip {
namespace {

using test::expect_close;
using test::poisoned;
using test::random_floats;

constexpr size_t kSizes[] = {1, 7, 4099, 1000003};

// Magnitudes from a few values only, so that ties are everywhere.
std::vector<float> tied_floats(size_t n, uint64_t seed) {
  std::vector<float> v = random_floats(n, seed);
  for (float& x : v) x = std::round(x * 4.0f) / 4.0f;
  return v;
}

template <class T>
std::vector<T> download(const cuda::DeviceBuffer<T>& d, size_t n, Context& ctx) {
  std::vector<T> h(n);
  cuda::copy_d2h(h.data(), d.data(), n * sizeof(T), ctx.stream());
  return h;
}

}  // namespace

TEST_CASE("prune kernels on CUDA match the CPU") {
  Context ctx(Device::cuda());
  for (size_t n : kSizes) SUBCASE(("n=" + std::to_string(n)).c_str()) {
      const std::vector<float> w = tied_floats(n, 7 + n);
      const uint32_t first = 13;
      std::vector<uint64_t> keys(n);
      magnitude_keys_cpu(n, w.data(), first, keys.data());

      cuda::DeviceBuffer<float> d_w(n), d_mask(n);
      cuda::DeviceBuffer<uint64_t> d_keys(n);
      cuda::copy_h2d(d_w.data(), w.data(), n * sizeof(float), ctx.stream());
      magnitude_keys_cuda(n, d_w.data(), first, d_keys.data(), ctx.stream());
      CHECK(download(d_keys, n, ctx) == keys);

      const size_t bytes = kth_smallest_key_workspace_bytes(n);
      cuda::DeviceBuffer<uint8_t> workspace(bytes);
      for (size_t k : {size_t{0}, n / 3, n / 2, n - 1}) {
        const uint64_t ref = kth_smallest_key_cpu(n, keys.data(), k);
        CHECK(kth_smallest_key_cuda(n, d_keys.data(), k, workspace.data(), bytes, ctx.stream()) == ref);
        std::vector<float> mask_ref(n);
        threshold_mask_cpu(n, w.data(), first, ref, mask_ref.data());
        const std::vector<float> nan = poisoned(n);
        cuda::copy_h2d(d_mask.data(), nan.data(), n * sizeof(float), ctx.stream());
        threshold_mask_cuda(n, d_w.data(), first, ref, d_mask.data(), ctx.stream());
        CHECK(download(d_mask, n, ctx) == mask_ref);
      }
    }
}

TEST_CASE("channel_sum_cuda matches the CPU") {
  Context ctx(Device::cuda());
  for (const auto& [rows, C] : std::vector<std::pair<size_t, int>>{{1, 1}, {7, 3}, {256, 130}, {1000, 512}})
    SUBCASE(("rows=" + std::to_string(rows) + " C=" + std::to_string(C)).c_str()) {
      const std::vector<float> x = random_floats(rows * static_cast<size_t>(C), 3 + rows);
      std::vector<double> ref(static_cast<size_t>(C), 1.0);  // accumulates onto what is there
      channel_sum_cpu(rows, C, x.data(), ref.data());
      cuda::DeviceBuffer<float> d_x(x.size());
      cuda::DeviceBuffer<double> d_sum(static_cast<size_t>(C));
      const std::vector<double> ones(static_cast<size_t>(C), 1.0);
      cuda::copy_h2d(d_x.data(), x.data(), x.size() * sizeof(float), ctx.stream());
      cuda::copy_h2d(d_sum.data(), ones.data(), ones.size() * sizeof(double), ctx.stream());
      channel_sum_cuda(rows, C, d_x.data(), d_sum.data(), ctx.stream());
      expect_close(download(d_sum, static_cast<size_t>(C), ctx), ref, {.rel = 1e-12});
    }
}

TEST_CASE("magnitude masks on CUDA equal the CPU's, and a masked step keeps them") {
  Context cpu, gpu(Device::cuda());
  auto a = make_net("resnet20", {32, 32, 3, 10}), b = make_net("resnet20", {32, 32, 3, 10});
  a->build(cpu, 5);
  b->build(gpu, 5);
  for (const double s : {0.0, 0.3, 0.75, 1.0})
    for (const bool per_layer : {false, true}) {
      CAPTURE(s);
      CAPTURE(per_layer);
      const Tensor ref = magnitude_mask(*a, cpu, s, per_layer);
      const Tensor got = magnitude_mask(*b, gpu, s, per_layer).to(Device::cpu(), gpu);
      gpu.synchronize();
      CHECK(std::vector<float>(got.data<float>(), got.data<float>() + got.numel()) ==
            std::vector<float>(ref.data<float>(), ref.data<float>() + ref.numel()));
    }
  // Through the optimizer: non-zero gradients everywhere, pruned weights stay exactly zero.
  const Tensor mask = magnitude_mask(*b, gpu, 0.6, false);
  Sgd sgd(*b, gpu, SgdParams{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 5e-4f, .nesterov = true});
  sgd.set_mask(gpu, mask);
  const std::vector<float> g = random_floats(static_cast<size_t>(b->num_parameters()), 77);
  cuda::copy_h2d(b->grads().raw(), g.data(), g.size() * sizeof(float), gpu.stream());
  for (int step = 0; step < 3; ++step) sgd.step(gpu, 0.1f);
  const Tensor w = b->params().to(Device::cpu(), gpu), m = mask.to(Device::cpu(), gpu);
  gpu.synchronize();
  int64_t bad = 0, pruned = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    pruned += m.data<float>()[i] == 0.0f;
    bad += m.data<float>()[i] == 0.0f && w.data<float>()[i] != 0.0f;
  }
  CHECK(pruned > 0);
  CHECK(bad == 0);
}

TEST_CASE("filter pruning of a net on CUDA keeps and copies the same filters as on the CPU") {
  Context cpu, gpu(Device::cuda());
  auto a = make_net("resnet20", {32, 32, 3, 10}), b = make_net("resnet20", {32, 32, 3, 10});
  a->build(cpu, 6);
  b->build(gpu, 6);
  const auto keep = filters_to_keep(*a, cpu, 0.45);
  REQUIRE(filters_to_keep(*b, gpu, 0.45) == keep);
  auto na = make_net("resnet20", {32, 32, 3, 10, kept_widths(keep)});
  auto nb = make_net("resnet20", {32, 32, 3, 10, kept_widths(keep)});
  na->build(cpu, 1);
  nb->build(gpu, 2);
  copy_kept_filters(*a, cpu, keep, *na);
  copy_kept_filters(*b, gpu, keep, *nb);
  for (const bool params : {true, false}) {
    const Tensor ref = params ? na->params() : na->buffers();
    const Tensor got = (params ? nb->params() : nb->buffers()).to(Device::cpu(), gpu);
    gpu.synchronize();
    CHECK(std::vector<float>(got.data<float>(), got.data<float>() + got.numel()) ==
          std::vector<float>(ref.data<float>(), ref.data<float>() + ref.numel()));
  }
}

}  // namespace activeip

#endif  // ACTIVEIP_CUDA
