// GPU suite: CUDA batch norm against the CPU — training forward (y, saved and running
// statistics), eval forward and backward in both modes (dx, accumulated dgamma/dbeta) — on M×C shapes with
// C = 1, 3, 7, 13, 16, 64, 100, 512, N = 1 images, M not a multiple of the block rows and
// M large enough for a thousand row splits, and with clean statistics (c-BN) of the first rows. Outputs and the
// workspace are poisoned with NaN; running stats and dgamma/dbeta start from random values. A large mean offset checks
// that the variance is not formed as E[x²] − E[x]², and two runs must agree bit for bit.
#ifdef ACTIVEIP_CUDA

#include <cmath>
#include <string>
#include <vector>

#include "engine/core/context.h"
#include "engine/core/cuda_memory.h"
#include "kernels/batchnorm.h"
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
  BatchNormShape s;
};

// M = N·H·W. A block has ⌊256/min(C, 32)⌋ rows, and most M below are not multiples of it;
// 65536×16 reaches the largest number of row splits (1024).
const Case kCases[] = {
    {"N1 28x28 C1", {1 * 28 * 28, 1}},
    {"N2 32x32 C3", {2 * 32 * 32, 3}},
    {"N3 7x7 C7", {3 * 7 * 7, 7}},
    {"N1 28x28 C13", {1 * 28 * 28, 13}},
    {"N64 32x32 C16", {64 * 32 * 32, 16}},
    {"N5 9x9 C64", {5 * 9 * 9, 64}},
    {"N2 7x5 C100", {2 * 7 * 5, 100}},
    {"N8 4x4 C512", {8 * 4 * 4, 512}},
    {"N3 1x1 C7", {3, 7}},
    // Clean statistics (c-BN) from the first samples.
    {"N3 7x7 C7 stats of 2", {3 * 7 * 7, 7, 2 * 7 * 7}},
    {"N64 32x32 C16 stats of 48", {64 * 32 * 32, 16, 48 * 32 * 32}},
    {"N5 9x9 C64 stats of 3", {5 * 9 * 9, 64, 3 * 9 * 9}},
};

struct Data {
  std::vector<float> x, gamma, beta, running_mean, running_var, dy, dgamma, dbeta;
};

// x = offset + scale·u with u = ±[0.1, 1]; running variances positive.
Data make_data(const BatchNormShape& s, uint64_t seed, float offset = 0.5f, float scale = 2.0f) {
  const size_t n = static_cast<size_t>(s.M) * s.C;
  Data d{random_floats(n, seed),
         random_floats(s.C, seed + 1, 0.5f, 2.0f),
         random_floats(s.C, seed + 2),
         random_floats(s.C, seed + 3),
         random_floats(s.C, seed + 4, 0.5f, 2.0f),
         random_floats(n, seed + 5),
         random_floats(s.C, seed + 6),
         random_floats(s.C, seed + 7)};
  for (float& v : d.x) v = offset + scale * v;
  for (float& v : d.running_var) v = std::fabs(v);
  return d;
}

struct TrainResult {
  std::vector<float> y, save_mean, save_invstd, running_mean, running_var;
};

TrainResult train_cpu(const BatchNormShape& s, const BatchNormParams& p, Data d) {
  const size_t n = static_cast<size_t>(s.M) * s.C;
  TrainResult r{poisoned(n), poisoned(s.C), poisoned(s.C), d.running_mean, d.running_var};
  batchnorm_fwd_train_cpu(s, p,
                          {d.x.data(), d.gamma.data(), d.beta.data(), r.running_mean.data(), r.running_var.data(),
                           r.save_mean.data(), r.save_invstd.data(), r.y.data()});
  return r;
}

TrainResult train_cuda(const BatchNormShape& s, const BatchNormParams& p, const Data& d, Context& ctx) {
  const size_t n = static_cast<size_t>(s.M) * s.C;
  auto x = to_device(d.x, ctx), gamma = to_device(d.gamma, ctx), beta = to_device(d.beta, ctx);
  auto running_mean = to_device(d.running_mean, ctx), running_var = to_device(d.running_var, ctx);
  auto save_mean = to_device(poisoned(s.C), ctx), save_invstd = to_device(poisoned(s.C), ctx);
  auto y = to_device(poisoned(n), ctx);
  auto workspace = to_device(poisoned(batchnorm_workspace_floats(s)), ctx);
  batchnorm_fwd_train_cuda(s, p,
                           {x.data(), gamma.data(), beta.data(), running_mean.data(), running_var.data(),
                            save_mean.data(), save_invstd.data(), y.data()},
                           workspace.data(), ctx.stream());
  return {to_host(y, ctx), to_host(save_mean, ctx), to_host(save_invstd, ctx), to_host(running_mean, ctx),
          to_host(running_var, ctx)};
}

}  // namespace

TEST_CASE("batchnorm_fwd_train_cuda matches the CPU") {
  Context ctx(Device::cuda());
  const BatchNormParams p{.eps = 1e-5f, .momentum = 0.1f};
  for (const Case& c : kCases) SUBCASE(c.name) {
      const Data d = make_data(c.s, 100 + c.s.C);
      const TrainResult ref = train_cpu(c.s, p, d), got = train_cuda(c.s, p, d, ctx);
      expect_close(got.save_mean, ref.save_mean, kTol);
      expect_close(got.save_invstd, ref.save_invstd, kTol);
      expect_close(got.running_mean, ref.running_mean, kTol);
      expect_close(got.running_var, ref.running_var, kTol);
      expect_close(got.y, ref.y, kTol);
    }
}

// x = 1000 + u, u = ±[0.1, 1]: std ≈ 0.6 against a mean 1600 times larger. The float form
// E[x²] − E[x]² loses every digit of the variance here (ulp(10⁶) = 0.0625), so the saved
// invstd and the running variance keep the 1e-5 bound. y is held to 1e-3 only: the saved
// mean is rounded to float, ulp(1000) = 6.1e-5, and a mean one ulp off the CPU's moves every
// x − mean by 6.1e-5, i.e. 1e-4 of a normalised value of size 1.
TEST_CASE("batchnorm_fwd_train_cuda keeps the variance when |mean| >> std") {
  Context ctx(Device::cuda());
  const BatchNormParams p{.eps = 1e-5f, .momentum = 0.1f};
  for (const Case& c : {Case{"N16 32x32 C16", {16 * 32 * 32, 16}}, Case{"N3 7x7 C100", {3 * 7 * 7, 100}}})
    SUBCASE(c.name) {
      const Data d = make_data(c.s, 200 + c.s.C, 1000.0f, 1.0f);
      const TrainResult ref = train_cpu(c.s, p, d), got = train_cuda(c.s, p, d, ctx);
      expect_close(got.save_mean, ref.save_mean, kTol);
      expect_close(got.save_invstd, ref.save_invstd, kTol);
      expect_close(got.running_mean, ref.running_mean, kTol);
      expect_close(got.running_var, ref.running_var, kTol);
      expect_close(got.y, ref.y, {.rel = 1e-3});
    }
}

TEST_CASE("batchnorm_fwd_train_cuda is deterministic") {
  Context ctx(Device::cuda());
  const BatchNormShape s{64 * 32 * 32, 16};
  const Data d = make_data(s, 300);
  const TrainResult a = train_cuda(s, {}, d, ctx), b = train_cuda(s, {}, d, ctx);
  CHECK(a.y == b.y);
  CHECK(a.save_invstd == b.save_invstd);
}

TEST_CASE("batchnorm_fwd_eval_cuda matches the CPU") {
  Context ctx(Device::cuda());
  const BatchNormParams p{.eps = 1e-3f, .momentum = 0.1f};
  for (const Case& c : kCases) SUBCASE(c.name) {
      Data d = make_data(c.s, 400 + c.s.C);
      const size_t n = static_cast<size_t>(c.s.M) * c.s.C;
      std::vector<float> ref = poisoned(n);
      batchnorm_fwd_eval_cpu(c.s, p,
                             {d.x.data(), d.gamma.data(), d.beta.data(), d.running_mean.data(), d.running_var.data(),
                              nullptr, nullptr, ref.data()});

      auto x = to_device(d.x, ctx), gamma = to_device(d.gamma, ctx), beta = to_device(d.beta, ctx);
      auto running_mean = to_device(d.running_mean, ctx), running_var = to_device(d.running_var, ctx);
      auto y = to_device(poisoned(n), ctx);
      batchnorm_fwd_eval_cuda(
          c.s, p,
          {x.data(), gamma.data(), beta.data(), running_mean.data(), running_var.data(), nullptr, nullptr, y.data()},
          ctx.stream());
      expect_close(to_host(y, ctx), ref, kTol);
      // Eval mode leaves the running statistics alone.
      CHECK(to_host(running_mean, ctx) == d.running_mean);
      CHECK(to_host(running_var, ctx) == d.running_var);
    }
}

// The saved statistics come from the CPU's training forward, so both backward passes see the
// same inputs.
TEST_CASE("batchnorm_bwd_cuda matches the CPU") {
  Context ctx(Device::cuda());
  for (const Case& c : kCases) SUBCASE(c.name) {
      const Data d = make_data(c.s, 500 + c.s.C);
      const TrainResult fwd = train_cpu(c.s, {}, d);
      const size_t n = static_cast<size_t>(c.s.M) * c.s.C;
      std::vector<float> dx_ref = poisoned(n), dgamma_ref = d.dgamma, dbeta_ref = d.dbeta;
      batchnorm_bwd_cpu(c.s, {d.x.data(), d.dy.data(), d.gamma.data(), fwd.save_mean.data(), fwd.save_invstd.data(),
                              dx_ref.data(), dgamma_ref.data(), dbeta_ref.data()});

      auto x = to_device(d.x, ctx), dy = to_device(d.dy, ctx), gamma = to_device(d.gamma, ctx);
      auto save_mean = to_device(fwd.save_mean, ctx), save_invstd = to_device(fwd.save_invstd, ctx);
      auto dx = to_device(poisoned(n), ctx), dgamma = to_device(d.dgamma, ctx), dbeta = to_device(d.dbeta, ctx);
      auto workspace = to_device(poisoned(batchnorm_workspace_floats(c.s)), ctx);
      batchnorm_bwd_cuda(c.s,
                         {x.data(), dy.data(), gamma.data(), save_mean.data(), save_invstd.data(), dx.data(),
                          dgamma.data(), dbeta.data()},
                         workspace.data(), ctx.stream());
      expect_close(to_host(dx, ctx), dx_ref, kTol);
      expect_close(to_host(dgamma, ctx), dgamma_ref, kTol);
      expect_close(to_host(dbeta, ctx), dbeta_ref, kTol);
    }
}

// Eval mode: the running statistics in place of the saved ones (the stat rows of c-BN do not
// apply), dgamma/dbeta accumulated.
TEST_CASE("batchnorm_bwd_eval_cuda matches the CPU") {
  Context ctx(Device::cuda());
  const BatchNormParams p{.eps = 1e-3f, .momentum = 0.1f};
  for (const Case& c : kCases) SUBCASE(c.name) {
      const BatchNormShape s{c.s.M, c.s.C};
      const Data d = make_data(s, 600 + s.C);
      const size_t n = static_cast<size_t>(s.M) * s.C;
      std::vector<float> dx_ref = poisoned(n), dgamma_ref = d.dgamma, dbeta_ref = d.dbeta;
      batchnorm_bwd_eval_cpu(s, p,
                             {d.x.data(), d.dy.data(), d.gamma.data(), d.running_mean.data(), d.running_var.data(),
                              dx_ref.data(), dgamma_ref.data(), dbeta_ref.data()});

      auto x = to_device(d.x, ctx), dy = to_device(d.dy, ctx), gamma = to_device(d.gamma, ctx);
      auto running_mean = to_device(d.running_mean, ctx), running_var = to_device(d.running_var, ctx);
      auto dx = to_device(poisoned(n), ctx), dgamma = to_device(d.dgamma, ctx), dbeta = to_device(d.dbeta, ctx);
      auto workspace = to_device(poisoned(batchnorm_workspace_floats(s)), ctx);
      batchnorm_bwd_eval_cuda(s, p,
                              {x.data(), dy.data(), gamma.data(), running_mean.data(), running_var.data(), dx.data(),
                               dgamma.data(), dbeta.data()},
                              workspace.data(), ctx.stream());
      expect_close(to_host(dx, ctx), dx_ref, kTol);
      expect_close(to_host(dgamma, ctx), dgamma_ref, kTol);
      expect_close(to_host(dbeta, ctx), dbeta_ref, kTol);
    }
}

TEST_CASE("batchnorm_workspace_floats covers the row splits") {
  for (const Case& c : kCases) {
    CAPTURE(c.name);
    const int splits = batchnorm_row_splits(c.s);
    CHECK(splits >= 1);
    CHECK(batchnorm_workspace_floats(c.s) == 3 * (static_cast<size_t>(splits) + 1) * c.s.C);
  }
}

}  // namespace activeip

#endif  // ACTIVEIP_CUDA
