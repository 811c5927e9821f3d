// Softmax cross-entropy with label smoothing: a 2×3 case worked by hand, the fast CPU path
// against the double specification (loss, probabilities, gradient) with smoothing 0 and
// 0.1, and the specification's backward against finite differences of its forward.
#include <cmath>
#include <string>
#include <vector>

#include "kernels/loss.h"
#include "tests/test_util.h"

using namespace activeip;
using namespace activeip::test;

namespace {

struct Case {
  const char* name;
  XentShape s;
};

const Case kCases[] = {{"N1 C10", {1, 10}}, {"N17 C3", {17, 3}}, {"N64 C100", {64, 100}}, {"N5 C1", {5, 1}}};

std::vector<int32_t> random_labels(int N, int C, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> y(N);
  for (auto& l : y) l = static_cast<int32_t>(rng() % C);
  return y;
}

// Logits on the scale a network produces (several units apart), not just ±1.
std::vector<float> random_logits(size_t n, uint64_t seed) {
  std::vector<float> z = random_floats(n, seed);
  for (float& v : z) v *= 4.0f;
  return z;
}

}  // namespace

TEST_CASE("softmax_xent: a 2x3 case worked by hand") {
  // Row 0: z = (1, 2, 3), y = 2: lse = 3 + ln(1 + e⁻¹ + e⁻²) = 3.40760596444438;
  //   ε = 0: lse − 3 = 0.40760596444438; ε = 0.1: lse − 0.9·3 − (0.1/3)·6 = 0.50760596444438.
  // Row 1: z = (1, −1, 0.5), y = 0: lse = ln(e + e⁻¹ + e^0.5) = 1.55495691964199;
  //   ε = 0: lse − 1 = 0.55495691964199; ε = 0.1: lse − 0.9·1 − (0.1/3)·0.5 = 0.63829025297532.
  const XentShape s{2, 3};
  const std::vector<float> z = {1, 2, 3, 1, -1, 0.5f};
  const std::vector<int32_t> y = {2, 0};
  const std::vector<double> softmax = {0.09003057317038048, 0.2447284710547977,  0.665240955774822,
                                       0.5740969929676946,  0.07769557914857057, 0.3482074278837349};
  for (const double eps : {0.0, 0.1}) {
    SUBCASE(eps == 0 ? "smoothing 0" : "smoothing 0.1") {
      const std::vector<double> loss_hand = eps == 0 ? std::vector<double>{0.40760596444438, 0.55495691964199}
                                                     : std::vector<double>{0.50760596444438, 0.63829025297532};
      std::vector<float> probs = poisoned(6), loss = poisoned(2), dz = poisoned(6);
      softmax_xent_fwd_cpu(s, static_cast<float>(eps), z.data(), y.data(), probs.data(), loss.data());
      expect_close(loss, loss_hand, {.rel = 1e-6});
      expect_close(probs, softmax, {.rel = 1e-6});

      std::vector<double> loss_ref(2);
      const std::vector<double> zd = to_double(z);
      softmax_xent_fwd_ref(s, eps, zd.data(), y.data(), loss_ref.data());
      expect_close(loss_ref, loss_hand, {.rel = 1e-12});

      // Mean reduction: dz = (softmax − q)/2 with q = (1 − ε)·onehot + ε/3.
      std::vector<double> dz_hand(6);
      for (int n = 0; n < 2; ++n)
        for (int c = 0; c < 3; ++c)
          dz_hand[n * 3 + c] = (softmax[n * 3 + c] - ((c == y[n] ? 1 - eps : 0) + eps / 3)) / 2;
      softmax_xent_bwd_cpu(s, static_cast<float>(eps), probs.data(), y.data(), 0.5f, dz.data());
      expect_close(dz, dz_hand, {.rel = 1e-6});
    }
  }
}

TEST_CASE("softmax_xent: forward and backward match the specification") {
  for (const Case& k : kCases) {
    for (const float eps : {0.0f, 0.1f}) {
      SUBCASE((std::string(k.name) + (eps == 0 ? " smoothing 0" : " smoothing 0.1")).c_str()) {
        const XentShape s = k.s;
        const size_t n = static_cast<size_t>(s.N) * s.C;
        const std::vector<float> z = random_logits(n, 1);
        const std::vector<int32_t> y = random_labels(s.N, s.C, 2);
        std::vector<float> probs = poisoned(n), loss = poisoned(s.N), dz = poisoned(n);
        softmax_xent_fwd_cpu(s, eps, z.data(), y.data(), probs.data(), loss.data());
        softmax_xent_bwd_cpu(s, eps, probs.data(), y.data(), 1.0f / s.N, dz.data());

        const std::vector<double> zd = to_double(z);
        std::vector<double> loss_ref(s.N), dz_ref(n), softmax(n);
        softmax_xent_fwd_ref(s, eps, zd.data(), y.data(), loss_ref.data());
        softmax_xent_bwd_ref(s, eps, zd.data(), y.data(), 1.0 / s.N, dz_ref.data());
        for (int r = 0; r < s.N; ++r) {
          double sum = 0;
          for (int c = 0; c < s.C; ++c) sum += std::exp(zd[r * s.C + c]);
          for (int c = 0; c < s.C; ++c) softmax[r * s.C + c] = std::exp(zd[r * s.C + c]) / sum;
        }
        if (s.C > 1) {
          expect_close(loss, loss_ref);
          expect_close(dz, dz_ref);
        } else {
          // One class: softmax = 1 and q = 1, so the loss and its gradient vanish (up to
          // rounding, which a relative error cannot measure).
          for (const float l : loss) CHECK(std::fabs(l) < 1e-6f);
          for (const float g : dz) CHECK(std::fabs(g) < 1e-6f);
        }
        expect_close(probs, softmax);
      }
    }
  }
}

TEST_CASE("softmax_xent: specification backward matches finite differences") {
  const XentShape s{3, 4};
  const size_t n = static_cast<size_t>(s.N) * s.C;
  const std::vector<int32_t> y = random_labels(s.N, s.C, 3);
  for (const double eps : {0.0, 0.1}) {
    SUBCASE(eps == 0 ? "smoothing 0" : "smoothing 0.1") {
      std::vector<double> z = to_double(random_logits(n, 4)), loss(s.N), dz(n);
      const double scale = 1.0 / s.N;
      const auto f = [&] {
        softmax_xent_fwd_ref(s, eps, z.data(), y.data(), loss.data());
        double mean = 0;
        for (const double l : loss) mean += l * scale;
        return mean;
      };
      softmax_xent_bwd_ref(s, eps, z.data(), y.data(), scale, dz.data());
      expect_close(dz, numeric_grad(z, f), {.rel = 1e-6});
    }
  }
}
