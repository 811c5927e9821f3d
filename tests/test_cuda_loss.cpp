// GPU suite: CUDA softmax cross-entropy with label smoothing against the CPU: probabilities,
// per-row loss and dlogits, for N = 1 … 130 rows and C = 1, 10, 37, 100, 1000 (fewer, as many
// and many more columns than a warp has lanes), smoothing 0 and 0.1, and logits offset by 100
// so that an exp without the max subtracted would overflow. Outputs are poisoned with NaN.
#ifdef ACTIVEIP_CUDA

#include <cstdint>
#include <string>
#include <vector>

#include "engine/context.h"
#include "engine/cuda_memory.h"
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

}  // namespace activeip

#endif  // ACTIVEIP_CUDA
