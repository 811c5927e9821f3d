// GPU suite: the CUDA losses against the CPU, for N = 1 … 130 rows and C = 1, 10, 37, 100, 1000
// (fewer, as many and many more columns than a warp has lanes), with logits offset by 100 so
// that an exp without the max subtracted would overflow; outputs are poisoned with NaN.
// Softmax cross-entropy with label smoothing 0 and 0.1: probabilities, per-row loss and
// dlogits. The soft-target loss of distillation and the softmax at temperature T, for
// T = 0.5, 1 and 4, targets with exact zeros (0·log 0); and the engine's
// SoftTargetCrossEntropy on a CUDA context against the same on the CPU.
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
#include "tests/test_util.h"

namespace activeip {
namespace {

using test::expect_close;
using test::poisoned;
using test::random_floats;
using test::to_device;
using test::to_host;

constexpr test::Tolerance kTol{.rel = 1e-5};

struct Case {
  const char* name;
  XentShape s;
  float offset;  // added to every logit
};

const Case kCases[] = {
    {"N1 C1", {1, 1}, 0.0f},          {"N1 C10", {1, 10}, 0.0f},   {"N7 C10", {7, 10}, 0.0f},
    {"N130 C100", {130, 100}, 0.0f},  {"N33 C37", {33, 37}, 0.0f}, {"N5 C1000", {5, 1000}, 0.0f},
    {"N9 C10 +100", {9, 10}, 100.0f},
};

// Rows of probabilities from random teacher logits at T; every third entry of row 0 is an
// exact zero (an underflowed class) when the row is wide enough.
std::vector<float> soft_targets(const XentShape& s, float T, uint64_t seed) {
  const std::vector<float> t = random_floats(static_cast<size_t>(s.N) * s.C, seed, 0.1f, 5.0f);
  std::vector<float> q(t.size());
  for (int n = 0; n < s.N; ++n) {
    const size_t row = static_cast<size_t>(n) * s.C;
    double sum = 0;
    for (int c = 0; c < s.C; ++c) {
      const double e = (n == 0 && c % 3 == 0 && s.C > 3) ? 0.0 : std::exp(t[row + c] / T);
      q[row + c] = static_cast<float>(e);
      sum += e;
    }
    for (int c = 0; c < s.C; ++c) q[row + c] = static_cast<float>(q[row + c] / sum);
  }
  return q;
}

}  // namespace

TEST_CASE("softmax_xent_fwd_cuda and softmax_xent_bwd_cuda match the CPU") {
  Context ctx(Device::cuda());
  for (const Case& c : kCases)
    for (const float smoothing : {0.0f, 0.1f})
      SUBCASE((std::string(c.name) + " smoothing=" + std::to_string(smoothing)).c_str()) {
        const XentShape& s = c.s;
        const size_t n = static_cast<size_t>(s.N) * s.C;
        // Logits spread over ±5 so that the probabilities span several orders of magnitude.
        std::vector<float> logits = random_floats(n, 900 + n, 0.1f, 5.0f);
        for (float& z : logits) z += c.offset;
        std::vector<int32_t> labels(s.N);
        for (int i = 0; i < s.N; ++i) labels[i] = static_cast<int32_t>((7 * i + 3) % s.C);
        const float scale = 1.0f / static_cast<float>(s.N);

        std::vector<float> probs_ref = poisoned(n), loss_ref = poisoned(s.N), dlogits_ref = poisoned(n);
        softmax_xent_fwd_cpu(s, smoothing, logits.data(), labels.data(), probs_ref.data(), loss_ref.data());
        softmax_xent_bwd_cpu(s, smoothing, probs_ref.data(), labels.data(), scale, dlogits_ref.data());

        auto d_logits = to_device(logits, ctx), d_probs = to_device(poisoned(n), ctx);
        auto d_loss = to_device(poisoned(s.N), ctx), d_dlogits = to_device(poisoned(n), ctx);
        auto d_labels = to_device(labels, ctx);
        softmax_xent_fwd_cuda(s, smoothing, d_logits.data(), d_labels.data(), d_probs.data(), d_loss.data(),
                              ctx.stream());
        softmax_xent_bwd_cuda(s, smoothing, d_probs.data(), d_labels.data(), scale, d_dlogits.data(), ctx.stream());
        expect_close(to_host(d_probs, ctx), probs_ref, kTol);
        expect_close(to_host(d_loss, ctx), loss_ref, kTol);
        expect_close(to_host(d_dlogits, ctx), dlogits_ref, kTol);
      }
}

TEST_CASE("soft_xent_fwd_cuda, soft_xent_bwd_cuda and softmax_temperature_fwd_cuda match the CPU") {
  Context ctx(Device::cuda());
  for (const Case& c : kCases)
    for (const float T : {0.5f, 1.0f, 4.0f}) SUBCASE((std::string(c.name) + " T=" + std::to_string(T)).c_str()) {
        const XentShape& s = c.s;
        const size_t n = static_cast<size_t>(s.N) * s.C;
        std::vector<float> logits = random_floats(n, 700 + n, 0.1f, 5.0f);
        for (float& z : logits) z += c.offset;
        const std::vector<float> targets = soft_targets(s, T, 800 + n);
        const float scale = 1.0f / static_cast<float>(s.N);

        std::vector<float> probs_ref = poisoned(n), loss_ref = poisoned(s.N), dlogits_ref = poisoned(n);
        std::vector<float> softmax_ref = poisoned(n);
        soft_xent_fwd_cpu(s, T, logits.data(), targets.data(), probs_ref.data(), loss_ref.data());
        soft_xent_bwd_cpu(s, T, probs_ref.data(), targets.data(), scale, dlogits_ref.data());
        softmax_temperature_fwd_cpu(s, T, logits.data(), softmax_ref.data());

        auto d_logits = to_device(logits, ctx), d_targets = to_device(targets, ctx);
        auto d_probs = to_device(poisoned(n), ctx), d_loss = to_device(poisoned(s.N), ctx);
        auto d_dlogits = to_device(poisoned(n), ctx), d_softmax = to_device(poisoned(n), ctx);
        soft_xent_fwd_cuda(s, T, d_logits.data(), d_targets.data(), d_probs.data(), d_loss.data(), ctx.stream());
        soft_xent_bwd_cuda(s, T, d_probs.data(), d_targets.data(), scale, d_dlogits.data(), ctx.stream());
        softmax_temperature_fwd_cuda(s, T, d_logits.data(), d_softmax.data(), ctx.stream());
        expect_close(to_host(d_probs, ctx), probs_ref, kTol);
        expect_close(to_host(d_softmax, ctx), softmax_ref, kTol);
        if (s.C > 1) {
          expect_close(to_host(d_loss, ctx), loss_ref, kTol);
          expect_close(to_host(d_dlogits, ctx), dlogits_ref, kTol);
        } else {
          // One class: the loss and its gradient are rounding noise around 0 on both sides.
          for (const float l : to_host(d_loss, ctx)) CHECK(std::fabs(l) < 1e-6f);
          for (const float g : to_host(d_dlogits, ctx)) CHECK(std::fabs(g) < 1e-6f);
        }
      }
}

TEST_CASE("SoftTargetCrossEntropy on CUDA matches the CPU") {
  Context gpu(Device::cuda()), cpu;
  const XentShape s{65, 10};
  const size_t n = static_cast<size_t>(s.N) * s.C;
  const std::vector<float> z = random_floats(n, 5, 0.1f, 5.0f), q = soft_targets(s, 4.0f, 6);
  Tensor logits = Tensor::host({s.N, s.C}), targets = Tensor::host({s.N, s.C});
  for (size_t i = 0; i < n; ++i) logits.data<float>()[i] = z[i], targets.data<float>()[i] = q[i];
  SoftTargetCrossEntropy on_cpu(4.0f), on_gpu(4.0f);
  const LossResult a = on_cpu.forward(cpu, logits, targets);
  const LossResult b = on_gpu.forward(gpu, logits.to(gpu.device(), gpu), targets.to(gpu.device(), gpu));
  CHECK(b.loss == doctest::Approx(a.loss).epsilon(1e-5));
  CHECK(b.correct == a.correct);
  const Tensor ga = on_cpu.backward(cpu), gb = on_gpu.backward(gpu).to(Device::cpu(), gpu);
  gpu.synchronize();
  expect_close(std::vector<float>(gb.data<float>(), gb.data<float>() + n),
               std::vector<float>(ga.data<float>(), ga.data<float>() + n), kTol);
}

}  // namespace activeip

#endif  // ACTIVEIP_CUDA
