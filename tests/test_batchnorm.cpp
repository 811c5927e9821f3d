// Batch normalisation: the fast CPU path against the double specification (forward in
// training and eval mode, backward in both), the running-stat update, gradient accumulation, and
// the specification's backward against finite differences of its forward; each also with
// clean statistics (c-BN: the statistics of the first rows normalise all of them), whose
// other rows move neither the statistics nor the statistics' rows.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/batchnorm.h"
#include "tests/test_util.h"

using namespace activeip;
using namespace activeip::test;

namespace {

struct Case {
  const char* name;
  BatchNormShape s;
};

// M = N·H·W: a 28×28 image with C = 3, N = 2 of 7×5 with C = 17, C = 1, a single row of
// channels per image, and a larger batch to span several reduction chunks; then clean
// statistics from the first samples (of 3 of 7×5; 3 of 5 1×1; 3 of 4 28×28, several chunks).
const Case kCases[] = {
    {"N1 28x28 C3", {1 * 28 * 28, 3}},
    {"N2 7x5 C17", {2 * 7 * 5, 17}},
    {"N5 1x1 C1", {5, 1}},
    {"N3 1x1 C64", {3, 64}},
    {"N4 28x28 C17", {4 * 28 * 28, 17}},
    {"N3 7x5 C17 stats of 1", {3 * 7 * 5, 17, 1 * 7 * 5}},
    {"N5 1x1 C3 stats of 3", {5, 3, 3}},
    {"N4 28x28 C17 stats of 3", {4 * 28 * 28, 17, 3 * 28 * 28}},
};

struct Data {
  std::vector<float> x, gamma, beta, dy;
};

Data make_data(const BatchNormShape& s, uint64_t seed) {
  const size_t n = static_cast<size_t>(s.M) * s.C;
  Data d{random_floats(n, seed), random_floats(s.C, seed + 1, 0.5f, 2.0f), random_floats(s.C, seed + 2),
         random_floats(n, seed + 3)};
  // A per-channel offset so the mean is not near zero and the two-pass variance matters.
  for (size_t i = 0; i < n; ++i) d.x[i] = 3.0f + 2.0f * d.x[i];
  return d;
}

// Running variances must be positive; random_floats draws either sign.
std::vector<float> positive(std::vector<float> v) {
  for (float& e : v) e = std::fabs(e);
  return v;
}

}  // namespace

TEST_CASE("batchnorm: training forward and running stats match the specification") {
  for (const Case& k : kCases) {
    SUBCASE(k.name) {
      const BatchNormShape s = k.s;
      const BatchNormParams p;
      const Data d = make_data(s, 11);
      std::vector<float> rm = random_floats(s.C, 21), rv = positive(random_floats(s.C, 22, 0.5f, 2.0f));
      const std::vector<float> rm0 = rm, rv0 = rv;
      std::vector<float> y = poisoned(d.x.size()), save_mean = poisoned(s.C), save_invstd = poisoned(s.C);
      batchnorm_fwd_train_cpu(s, p,
                              {d.x.data(), d.gamma.data(), d.beta.data(), rm.data(), rv.data(), save_mean.data(),
                               save_invstd.data(), y.data()});

      const std::vector<double> xd = to_double(d.x), gd = to_double(d.gamma), bd = to_double(d.beta);
      std::vector<double> ref(d.x.size());
      batchnorm_fwd_train_ref(s, p.eps, xd.data(), gd.data(), bd.data(), ref.data());
      expect_close(y, ref);

      // Statistics of the first S rows in double, then PyTorch's update with the unbiased variance.
      const int S = s.stats();
      std::vector<double> mean(s.C, 0), var(s.C, 0), rm_ref(s.C), rv_ref(s.C), invstd_ref(s.C);
      for (int r = 0; r < S; ++r)
        for (int c = 0; c < s.C; ++c) mean[c] += xd[static_cast<size_t>(r) * s.C + c] / S;
      for (int r = 0; r < S; ++r)
        for (int c = 0; c < s.C; ++c) {
          const double e = xd[static_cast<size_t>(r) * s.C + c] - mean[c];
          var[c] += e * e / S;
        }
      for (int c = 0; c < s.C; ++c) {
        rm_ref[c] = 0.9 * rm0[c] + 0.1 * mean[c];
        rv_ref[c] = 0.9 * rv0[c] + 0.1 * var[c] * S / (S - 1);
        invstd_ref[c] = 1.0 / std::sqrt(var[c] + p.eps);
      }
      expect_close(rm, rm_ref);
      expect_close(rv, rv_ref);
      expect_close(save_mean, mean);
      expect_close(save_invstd, invstd_ref);
    }
  }
}

TEST_CASE("batchnorm: eval forward uses the running stats") {
  for (const Case& k : kCases) {
    SUBCASE(k.name) {
      const BatchNormShape s = k.s;
      const BatchNormParams p{.eps = 1e-3f, .momentum = 0.1f};
      const Data d = make_data(s, 31);
      std::vector<float> rm = random_floats(s.C, 41), rv = positive(random_floats(s.C, 42, 0.5f, 2.0f));
      const std::vector<float> rm0 = rm, rv0 = rv;
      std::vector<float> y = poisoned(d.x.size());
      batchnorm_fwd_eval_cpu(
          s, p, {d.x.data(), d.gamma.data(), d.beta.data(), rm.data(), rv.data(), nullptr, nullptr, y.data()});
      std::vector<double> ref(d.x.size());
      for (int r = 0; r < s.M; ++r)
        for (int c = 0; c < s.C; ++c) {
          const size_t i = static_cast<size_t>(r) * s.C + c;
          ref[i] = d.gamma[c] * (d.x[i] - static_cast<double>(rm[c])) / std::sqrt(rv[c] + static_cast<double>(p.eps)) +
                   d.beta[c];
        }
      expect_close(y, ref);
      CHECK(rm == rm0);  // eval leaves the running stats alone
      CHECK(rv == rv0);
    }
  }
}

TEST_CASE("batchnorm: backward matches the specification and accumulates dgamma, dbeta") {
  for (const Case& k : kCases) {
    SUBCASE(k.name) {
      const BatchNormShape s = k.s;
      const BatchNormParams p;
      const Data d = make_data(s, 51);
      std::vector<float> rm(s.C, 0.0f), rv(s.C, 1.0f), save_mean(s.C), save_invstd(s.C);
      std::vector<float> y(d.x.size());
      batchnorm_fwd_train_cpu(s, p,
                              {d.x.data(), d.gamma.data(), d.beta.data(), rm.data(), rv.data(), save_mean.data(),
                               save_invstd.data(), y.data()});

      const std::vector<float> dgamma0 = random_floats(s.C, 61), dbeta0 = random_floats(s.C, 62);
      std::vector<float> dx = poisoned(d.x.size()), dgamma = dgamma0, dbeta = dbeta0;
      batchnorm_bwd_cpu(s, {d.x.data(), d.dy.data(), d.gamma.data(), save_mean.data(), save_invstd.data(), dx.data(),
                            dgamma.data(), dbeta.data()});

      const std::vector<double> xd = to_double(d.x), dyd = to_double(d.dy), gd = to_double(d.gamma);
      std::vector<double> dx_ref(d.x.size()), dgamma_ref = to_double(dgamma0), dbeta_ref = to_double(dbeta0);
      batchnorm_bwd_ref(s, p.eps, xd.data(), dyd.data(), gd.data(), dx_ref.data(), dgamma_ref.data(), dbeta_ref.data());
      expect_close(dx, dx_ref);
      expect_close(dgamma, dgamma_ref);
      expect_close(dbeta, dbeta_ref);
    }
  }
}

TEST_CASE("batchnorm: eval backward matches the specification, with and without the fused ReLU") {
  for (const Case& k : kCases) {
    SUBCASE(k.name) {
      const BatchNormShape s{k.s.M, k.s.C};  // eval mode has no statistics rows
      const BatchNormParams p{.eps = 1e-3f, .momentum = 0.1f};
      const Data d = make_data(s, 71);
      const std::vector<float> rm = random_floats(s.C, 72), rv = positive(random_floats(s.C, 73, 0.5f, 2.0f));
      const std::vector<float> dgamma0 = random_floats(s.C, 74), dbeta0 = random_floats(s.C, 75);
      std::vector<float> dx = poisoned(d.x.size()), dgamma = dgamma0, dbeta = dbeta0;
      batchnorm_bwd_eval_cpu(s, p,
                             {d.x.data(), d.dy.data(), d.gamma.data(), rm.data(), rv.data(), dx.data(), dgamma.data(),
                              dbeta.data()});
      const std::vector<double> xd = to_double(d.x), dyd = to_double(d.dy), gd = to_double(d.gamma);
      const std::vector<double> rmd = to_double(rm), rvd = to_double(rv);
      std::vector<double> dx_ref(d.x.size()), dgamma_ref = to_double(dgamma0), dbeta_ref = to_double(dbeta0);
      batchnorm_bwd_eval_ref(s, p.eps, xd.data(), dyd.data(), gd.data(), rmd.data(), rvd.data(), dx_ref.data(),
                             dgamma_ref.data(), dbeta_ref.data());
      expect_close(dx, dx_ref);
      expect_close(dgamma, dgamma_ref);
      expect_close(dbeta, dbeta_ref);

      // Through a fused ReLU of output y: the specification of the masked gradient g = dy·[y > 0],
      // which is also written to dg.
      const std::vector<float> y = random_floats(d.x.size(), 76);  // either sign
      std::vector<double> g(d.x.size());
      for (size_t i = 0; i < g.size(); ++i) g[i] = y[i] > 0 ? d.dy[i] : 0.0;
      std::vector<float> dg = poisoned(d.x.size());
      dx = poisoned(d.x.size()), dgamma = dgamma0, dbeta = dbeta0;
      batchnorm_bwd_eval_act_cpu(s, p,
                                 {d.x.data(), d.dy.data(), d.gamma.data(), rm.data(), rv.data(), dx.data(),
                                  dgamma.data(), dbeta.data()},
                                 y.data(), dg.data());
      dgamma_ref = to_double(dgamma0), dbeta_ref = to_double(dbeta0);
      batchnorm_bwd_eval_ref(s, p.eps, xd.data(), g.data(), gd.data(), rmd.data(), rvd.data(), dx_ref.data(),
                             dgamma_ref.data(), dbeta_ref.data());
      expect_close(dg, g);
      expect_close(dx, dx_ref);
      expect_close(dgamma, dgamma_ref);
      expect_close(dbeta, dbeta_ref);
    }
  }
}

TEST_CASE("batchnorm: specification backward matches finite differences") {
  // M ≥ 3: with two rows x̂ = ±1 whatever x is, and the gradient w.r.t. x all but vanishes.
  const Case shapes[] = {{"M6 C3", {6, 3}},
                         {"M3 C1", {3, 1}},
                         {"M5 C4", {5, 4}},
                         {"M6 C3 stats of 4", {6, 3, 4}},
                         {"M7 C2 stats of 3", {7, 2, 3}}};
  for (const Case& k : shapes) {
    SUBCASE(k.name) {
      const BatchNormShape s = k.s;
      const float eps = 1e-5f;
      const size_t n = static_cast<size_t>(s.M) * s.C;
      std::vector<double> x = to_double(random_floats(n, 71)), gamma = to_double(random_floats(s.C, 72)),
                          beta = to_double(random_floats(s.C, 73)), wv = to_double(random_floats(n, 74));
      std::vector<double> y(n);
      const auto f = [&] {
        batchnorm_fwd_train_ref(s, eps, x.data(), gamma.data(), beta.data(), y.data());
        return dot(y, wv);
      };
      std::vector<double> dx(n), dgamma(s.C, 0.0), dbeta(s.C, 0.0);
      batchnorm_bwd_ref(s, eps, x.data(), wv.data(), gamma.data(), dx.data(), dgamma.data(), dbeta.data());
      expect_close(dx, numeric_grad(x, f), {.rel = 1e-6});
      expect_close(dgamma, numeric_grad(gamma, f), {.rel = 1e-6});
      expect_close(dbeta, numeric_grad(beta, f), {.rel = 1e-6});
    }
  }
}

TEST_CASE("batchnorm: with clean statistics the other rows move neither the statistics nor their rows") {
  const BatchNormShape s{4 * 7 * 5, 17, 2 * 7 * 5};
  const BatchNormParams p;
  Data d = make_data(s, 91);
  struct Out {
    std::vector<float> y, rm, rv, save_mean, save_invstd, dx, dgamma, dbeta;
  };
  const auto run = [&] {
    Out o{std::vector<float>(d.x.size()), std::vector<float>(s.C, 0.0f), std::vector<float>(s.C, 1.0f),
          std::vector<float>(s.C),        std::vector<float>(s.C),       std::vector<float>(d.x.size()),
          std::vector<float>(s.C, 0.0f),  std::vector<float>(s.C, 0.0f)};
    batchnorm_fwd_train_cpu(s, p,
                            {d.x.data(), d.gamma.data(), d.beta.data(), o.rm.data(), o.rv.data(), o.save_mean.data(),
                             o.save_invstd.data(), o.y.data()});
    batchnorm_bwd_cpu(s, {d.x.data(), d.dy.data(), d.gamma.data(), o.save_mean.data(), o.save_invstd.data(),
                          o.dx.data(), o.dgamma.data(), o.dbeta.data()});
    return o;
  };
  const Out a = run();
  const size_t split = static_cast<size_t>(s.stat_rows) * s.C;
  for (size_t i = split; i < d.x.size(); ++i) d.x[i] = 10.0f * d.x[i] - 40.0f;  // other rows, far off
  const Out b = run();
  CHECK(b.save_mean == a.save_mean);
  CHECK(b.save_invstd == a.save_invstd);
  CHECK(b.rm == a.rm);
  CHECK(b.rv == a.rv);
  CHECK(std::equal(a.y.begin(), a.y.begin() + split, b.y.begin()));
  CHECK(!std::equal(a.y.begin() + split, a.y.end(), b.y.begin() + split));
  CHECK(b.dbeta == a.dbeta);  // Σdy over all rows; dγ and dx move with the other rows' x̂
}

TEST_CASE("batchnorm: results do not depend on the thread count") {
  const BatchNormShape s{4 * 28 * 28, 17};
  const BatchNormParams p;
  const Data d = make_data(s, 81);
  auto run = [&](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<float> rm(s.C, 0.0f), rv(s.C, 1.0f), save_mean(s.C), save_invstd(s.C), y(d.x.size());
    batchnorm_fwd_train_cpu(s, p,
                            {d.x.data(), d.gamma.data(), d.beta.data(), rm.data(), rv.data(), save_mean.data(),
                             save_invstd.data(), y.data()});
    std::vector<float> dx(d.x.size()), dgamma(s.C, 0.0f), dbeta(s.C, 0.0f);
    batchnorm_bwd_cpu(s, {d.x.data(), d.dy.data(), d.gamma.data(), save_mean.data(), save_invstd.data(), dx.data(),
                          dgamma.data(), dbeta.data()});
    omp_set_num_threads(saved);
    std::vector<float> all = y;
    for (const auto* v : {&rm, &rv, &dx, &dgamma, &dbeta}) all.insert(all.end(), v->begin(), v->end());
    return all;
  };
  const std::vector<float> one = run(1), three = run(3);
  CHECK(one == three);
}
