// GPU suite: the engine's SoftTargetCrossEntropy on a CUDA context against the same on the
// CPU (the loss ops themselves are in the op table, test_cuda_ops.cpp).
#ifdef ACTIVEIP_CUDA

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/context.h"
#include "engine/core/cuda_memory.h"
#include "engine/nn/loss.h"
#include "kernels/loss.h"
#include "tests/cuda_test_util.h"
#include "tests/op_table.h"
#include "tests/test_util.h"

namespace activeip {
namespace {

using test::expect_close;
using test::random_floats;
using test::soft_targets;

constexpr test::Tolerance kTol{.rel = 1e-5};

}  // namespace

TEST_CASE("SoftTargetCrossEntropy on CUDA matches the CPU") {
  Context gpu(Device::cuda()), cpu;
  const XentShape s{65, 10};
  const size_t n = static_cast<size_t>(s.N) * s.C;
  const std::vector<float> z = random_floats(n, 5, 0.1f, 5.0f), q = soft_targets(s, 4.0f, 6);
  Tensor logits = Tensor::host({s.N, s.C}), targets = Tensor::host({s.N, s.C});
  for (size_t i = 0; i < n; ++i) logits.data<float>()[i] = z[i], targets.data<float>()[i] = q[i];
  SoftTargetCrossEntropy on_cpu(4.0f), on_gpu(4.0f);
  on_cpu.forward(cpu, logits, targets);
  on_gpu.forward(gpu, logits.to(gpu.device(), gpu), targets.to(gpu.device(), gpu));
  const LossResult a = on_cpu.read(cpu), b = on_gpu.read(gpu);
  CHECK(b.loss == doctest::Approx(a.loss).epsilon(1e-5));
  CHECK(b.correct == a.correct);
  const Tensor ga = on_cpu.backward(cpu), gb = on_gpu.backward(gpu).to(Device::cpu(), gpu);
  gpu.synchronize();
  expect_close(std::vector<float>(gb.data<float>(), gb.data<float>() + n),
               std::vector<float>(ga.data<float>(), ga.data<float>() + n), kTol);
}

}  // namespace activeip

#endif  // ACTIVEIP_CUDA
