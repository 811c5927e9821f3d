// The losses on the CPU. Softmax cross-entropy with label smoothing: a 2×3 case worked by
// hand, the fast CPU path against the double specification (loss, probabilities, gradient)
// with smoothing 0 and 0.1, and the specification's backward against finite differences of
// its forward. The soft-target loss of distillation, T²·KL(q ‖ softmax(z/T)): two rows worked
// by hand (one with zero targets, where 0·log 0 = 0), the fast path against the
// specification at T = 0.5, 1 and 4, finite differences, the softmax at T, and the engine's
// SoftTargetCrossEntropy: one-hot targets at T = 1 give exactly SoftmaxCrossEntropy.
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/nn/loss.h"
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

// A teacher's soft labels: softmax(teacher logits / T) in double, rows summing to 1, with
// row 0's first target exactly 0 (an underflowed class) when the rows are wide enough.
std::vector<double> soft_targets(const XentShape& s, double T, uint64_t seed) {
  const std::vector<float> t = random_logits(static_cast<size_t>(s.N) * s.C, seed);
  std::vector<double> q(t.size());
  for (int n = 0; n < s.N; ++n) {
    const size_t row = static_cast<size_t>(n) * s.C;
    double sum = 0;
    for (int c = 0; c < s.C; ++c) sum += q[row + c] = (n == 0 && c == 0 && s.C > 2) ? 0.0 : std::exp(t[row + c] / T);
    for (int c = 0; c < s.C; ++c) q[row + c] /= sum;
  }
  return q;
}

// A specification backward against central differences of its forward's mean over the rows:
// fwd(z, loss) writes each row's loss, bwd(z, 1/N, dz) the gradient of their mean.
void check_backward_by_differences(const XentShape& s, uint64_t seed,
                                   const std::function<void(const double*, double*)>& fwd,
                                   const std::function<void(const double*, double, double*)>& bwd) {
  const size_t n = static_cast<size_t>(s.N) * s.C;
  std::vector<double> z = to_double(random_logits(n, seed)), loss(s.N), dz(n);
  const double scale = 1.0 / s.N;
  const auto f = [&] {
    fwd(z.data(), loss.data());
    double mean = 0;
    for (const double l : loss) mean += l * scale;
    return mean;
  };
  bwd(z.data(), scale, dz.data());
  expect_close(dz, numeric_grad(z, f), {.rel = 1e-6});
}

std::string label(const char* name, double T) {
  return std::string(name) + " T=" + std::to_string(T);
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
  const std::vector<int32_t> y = random_labels(s.N, s.C, 3);
  for (const double eps : {0.0, 0.1}) {
    SUBCASE(eps == 0 ? "smoothing 0" : "smoothing 0.1") {
      check_backward_by_differences(
          s, 4, [&](const double* z, double* loss) { softmax_xent_fwd_ref(s, eps, z, y.data(), loss); },
          [&](const double* z, double scale, double* dz) { softmax_xent_bwd_ref(s, eps, z, y.data(), scale, dz); });
    }
  }
}

TEST_CASE("logit_spread: worked by hand, and its gradient matches finite differences") {
  // Rows 0 and 2 of three form the group: z0 = (1, 3), z2 = (3, −1), mean (2, 1);
  // ‖z0 − z̄‖² = 1 + 4 = 5, ‖z2 − z̄‖² = 5, loss = λ/(2·2)·10 = 2.5λ; row 1 is outside the group.
  const XentShape s{3, 2};
  const std::vector<double> z = {1, 3, 7, 7, 3, -1}, rows = {1, 0, 1};
  std::vector<double> dz(6, 0.0);
  CHECK(logit_spread_ref(s, 0.5, z.data(), rows.data(), dz.data()) == doctest::Approx(1.25));
  // dz_n = 2λ/(G·C)·(z_n − z̄) = 0.25·(z_n − z̄).
  expect_close(dz, std::vector<double>{-0.25, 0.5, 0, 0, 0.25, -0.5}, {.rel = 1e-12});
  std::vector<float> dzf(6, 1.0f);  // added to what is there
  const std::vector<float> zf = to_float(z), rowsf = to_float(rows);
  logit_spread_bwd_cpu(s, 0.5f, zf.data(), rowsf.data(), dzf.data());
  expect_close(dzf, std::vector<double>{0.75, 1.5, 1, 1, 1.25, 0.5}, {.rel = 1e-6});

  const XentShape big{9, 5};
  std::vector<double> zb = to_double(random_logits(45, 21)), rb(9), grad(45, 0.0);
  for (int i = 0; i < 9; ++i) rb[static_cast<size_t>(i)] = i % 4 == 2 ? 0 : 1;
  logit_spread_ref(big, 0.3, zb.data(), rb.data(), grad.data());
  expect_close(grad, numeric_grad(zb, [&] { return logit_spread_ref(big, 0.3, zb.data(), rb.data(), nullptr); }),
               {.rel = 1e-6});
  // An empty group adds nothing.
  const std::vector<float> none(9, 0.0f);
  std::vector<float> untouched(45, 2.0f);
  logit_spread_bwd_cpu(big, 0.3f, to_float(zb).data(), none.data(), untouched.data());
  CHECK(untouched == std::vector<float>(45, 2.0f));
}

TEST_CASE("soft_xent: two rows worked by hand") {
  // Row 0: z = (1, 2, 3), q = (0.7, 0.2, 0.1), T = 2: lse(z/2) = 2.18026967064173,
  //   p = (0.186323723, 0.307195886, 0.506480391), loss = 4·KL = 2.71380447239359.
  // Row 1 at T = 1: z = (0, −1, 0.5), q = (0, 0, 1): loss = lse(z) − 0.5 = 0.60413060533673
  //   (the cross-entropy, as KL against a one-hot target is); the zero targets add nothing.
  const XentShape one{1, 3};
  const std::vector<float> z0 = {1, 2, 3}, q0 = {0.7f, 0.2f, 0.1f};
  const std::vector<float> z1 = {0, -1, 0.5f}, q1 = {0, 0, 1};
  std::vector<float> p = poisoned(3), loss = poisoned(1), dz = poisoned(3);

  soft_xent_fwd_cpu(one, 2.0f, z0.data(), q0.data(), p.data(), loss.data());
  expect_close(p, std::vector<double>{0.18632372322584756, 0.3071958857184984, 0.506480391055654}, {.rel = 1e-6});
  expect_close(loss, std::vector<double>{2.713804472393589}, {.rel = 1e-6});
  // dz = scale·T·(p − q), scale 1 here.
  soft_xent_bwd_cpu(one, 2.0f, p.data(), q0.data(), 1.0f, dz.data());
  expect_close(dz, std::vector<double>{-1.0273525535483048, 0.21439177143699673, 0.8129607821113081}, {.rel = 1e-6});

  soft_xent_fwd_cpu(one, 1.0f, z1.data(), q1.data(), p.data(), loss.data());
  expect_close(loss, std::vector<double>{0.6041306053367284}, {.rel = 1e-6});
  std::vector<double> loss_ref(1);
  const std::vector<double> z1d = to_double(z1), q1d = to_double(q1);
  soft_xent_fwd_ref(one, 1.0, z1d.data(), q1d.data(), loss_ref.data());
  expect_close(loss_ref, std::vector<double>{0.6041306053367284}, {.rel = 1e-12});
}

TEST_CASE("soft_xent: forward and backward match the specification") {
  for (const Case& k : kCases) {
    for (const double T : {0.5, 1.0, 4.0}) {
      SUBCASE(label(k.name, T).c_str()) {
        const XentShape s = k.s;
        const size_t n = static_cast<size_t>(s.N) * s.C;
        const std::vector<float> z = random_logits(n, 11);
        const std::vector<float> q = to_float(soft_targets(s, T, 12));
        std::vector<float> probs = poisoned(n), loss = poisoned(s.N), dz = poisoned(n);
        soft_xent_fwd_cpu(s, static_cast<float>(T), z.data(), q.data(), probs.data(), loss.data());
        soft_xent_bwd_cpu(s, static_cast<float>(T), probs.data(), q.data(), 1.0f / s.N, dz.data());

        // The specification sees the very floats the fast path saw.
        const std::vector<double> zd = to_double(z), qd = to_double(q);
        std::vector<double> loss_ref(s.N), dz_ref(n), softmax(n);
        soft_xent_fwd_ref(s, T, zd.data(), qd.data(), loss_ref.data());
        soft_xent_bwd_ref(s, T, zd.data(), qd.data(), 1.0 / s.N, dz_ref.data());
        for (int r = 0; r < s.N; ++r) {
          double sum = 0;
          for (int c = 0; c < s.C; ++c) sum += std::exp(zd[r * s.C + c] / T);
          for (int c = 0; c < s.C; ++c) softmax[r * s.C + c] = std::exp(zd[r * s.C + c] / T) / sum;
        }
        expect_close(probs, softmax);
        if (s.C > 1) {
          expect_close(loss, loss_ref);
          expect_close(dz, dz_ref);
        } else {
          // One class: p = q = 1, so the loss and its gradient vanish.
          for (const float l : loss) CHECK(std::fabs(l) < 1e-6f);
          for (const float g : dz) CHECK(std::fabs(g) < 1e-6f);
        }
        for (const float l : loss) CHECK(l >= -1e-6f);  // a KL divergence
      }
    }
  }
}

TEST_CASE("soft_xent: specification backward matches finite differences") {
  const XentShape s{3, 5};
  for (const double T : {0.5, 1.0, 4.0}) {
    SUBCASE(label("N3 C5", T).c_str()) {
      const std::vector<double> q = soft_targets(s, T, 21);
      check_backward_by_differences(
          s, 22, [&](const double* z, double* loss) { soft_xent_fwd_ref(s, T, z, q.data(), loss); },
          [&](const double* z, double scale, double* dz) { soft_xent_bwd_ref(s, T, z, q.data(), scale, dz); });
    }
  }
}

TEST_CASE("soft_xent: softmax at temperature T") {
  const XentShape s{9, 37};
  const size_t n = static_cast<size_t>(s.N) * s.C;
  std::vector<float> z = random_logits(n, 31);
  for (float& v : z) v += 100.0f;  // an exp without the max subtracted would overflow
  for (const double T : {0.5, 1.0, 4.0}) {
    SUBCASE(label("N9 C37", T).c_str()) {
      std::vector<float> p = poisoned(n);
      softmax_temperature_fwd_cpu(s, static_cast<float>(T), z.data(), p.data());
      std::vector<double> ref(n);
      for (int r = 0; r < s.N; ++r) {
        double zmax = z[r * s.C], sum = 0;
        for (int c = 0; c < s.C; ++c) zmax = std::max(zmax, static_cast<double>(z[r * s.C + c]));
        for (int c = 0; c < s.C; ++c) sum += std::exp((z[r * s.C + c] - zmax) / T);
        for (int c = 0; c < s.C; ++c) ref[r * s.C + c] = std::exp((z[r * s.C + c] - zmax) / T) / sum;
      }
      expect_close(p, ref);
    }
  }
}

TEST_CASE("SoftTargetCrossEntropy: one-hot targets at T = 1 are the cross-entropy") {
  Context ctx;
  const XentShape s{6, 4};
  const size_t n = static_cast<size_t>(s.N) * s.C;
  Tensor logits = Tensor::host({s.N, s.C}), targets = Tensor::host({s.N, s.C}),
         labels = Tensor::host({s.N}, DType::I32);
  const std::vector<float> z = random_logits(n, 41);
  for (size_t i = 0; i < n; ++i) logits.data<float>()[i] = z[i];
  for (int r = 0; r < s.N; ++r) {
    labels.data<int32_t>()[r] = (3 * r + 1) % s.C;
    for (int c = 0; c < s.C; ++c) targets.data<float>()[r * s.C + c] = c == labels.data<int32_t>()[r] ? 1.0f : 0.0f;
  }
  SoftmaxCrossEntropy hard;
  SoftTargetCrossEntropy soft(1.0f);
  hard.forward(ctx, logits, labels);
  soft.forward(ctx, logits, targets);
  const LossResult h = hard.read(ctx), t = soft.read(ctx);
  CHECK(t.loss == doctest::Approx(h.loss).epsilon(1e-6));
  CHECK(t.correct == h.correct);  // agreement with the one-hot top-1 = hits on the labels
  const Tensor gh = hard.backward(ctx), gs = soft.backward(ctx);
  std::vector<float> a(gh.data<float>(), gh.data<float>() + n), b(gs.data<float>(), gs.data<float>() + n);
  expect_close(b, a, {.rel = 1e-6});

  CHECK_THROWS_WITH_AS(SoftTargetCrossEntropy(0.0f), doctest::Contains("temperature"), Error);
  Tensor wrong = Tensor::host({s.N, s.C + 1});
  CHECK_THROWS_WITH_AS(soft.forward(ctx, logits, wrong), doctest::Contains("targets"), Error);
}
