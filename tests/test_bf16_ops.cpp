// The bf16 CPU passes (kernels/bf16.h's rounding plan) on a context set to bf16, through the
// op boundary: each against the float64 reference on the bf16-rounded operands — the same
// products, only the fp32 accumulation order differs, so within fp32's 1e-5 — and on the
// unrounded operands within DESIGN §5's bf16 tolerance (1e-2). Also the GEMM's rounding and
// edge shapes, thread-count independence, and a short training in bf16 against fp32. This
// suite exits 77 (skipped) on a CPU without AVX512-BF16 (bf16_main.cpp).
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "bench/conv_cases.h"
#include "engine/nn/ops.h"
#include "engine/train/trainer.h"
#include "kernels/bf16.h"
#include "kernels/gemm.h"
#include "nets/nets.h"
#include "tests/op_harness.h"
#include "tests/train_test_util.h"

namespace activeip {
namespace {

using test::expect_close;
using test::host_of;
using test::nan_on;
using test::on;
using test::random_floats;
using test::to_double;

constexpr test::Tolerance kRounded{1e-5};  // same operands as the reference: fp32 accumulation only
constexpr test::Tolerance kBf16{1e-2};     // DESIGN §5

std::vector<double> rounded(const std::vector<float>& v) {
  std::vector<double> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = round_to_bf16(v[i]);
  return r;
}

// A float with the given bits.
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

std::unique_ptr<Context> bf16_context() {
  auto ctx = std::make_unique<Context>();
  ctx->set_precision(Precision::BF16);
  return ctx;
}

TEST_CASE("round_to_bf16 rounds to nearest, ties to even") {
  CHECK(round_to_bf16(1.0f) == 1.0f);
  CHECK(round_to_bf16(from_bits(0x3F808000u)) == 1.0f);                    // 1 + 2^-8: tie, down to even
  CHECK(round_to_bf16(from_bits(0x3F818000u)) == from_bits(0x3F820000u));  // 1 + 3·2^-8: tie, up to even
  CHECK(round_to_bf16(from_bits(0x3F808001u)) == from_bits(0x3F810000u));  // just past the tie: up
  CHECK(round_to_bf16(from_bits(0xBF807FFFu)) == -1.0f);                   // just below it: down
  CHECK(round_to_bf16(std::numeric_limits<float>::infinity()) == std::numeric_limits<float>::infinity());
  CHECK(std::isnan(round_to_bf16(std::numeric_limits<float>::quiet_NaN())));
  CHECK(round_to_bf16(from_bits(0x7F7FFFFFu)) == std::numeric_limits<float>::infinity());  // FLT_MAX rounds up
  CHECK(round_to_bf16(from_bits(0x00400000u)) == 0.0f);                                    // denormal: zero
}

TEST_CASE("the bf16 GEMM rounds each operand as round_to_bf16 does") {
  // K = 1 and the other operand 1: C holds the rounded operand itself, exactly.
  std::vector<float> v = random_floats(1000, 7, 1e-3f, 1e3f);
  for (uint32_t m = 0; m < 64; ++m) v.push_back(from_bits(0x3F800000u | m << 13 | 0x8000u));  // ties
  const int n = int(v.size());
  const std::vector<float> one(1, 1.0f);
  std::vector<float> c(v.size());
  gemm_bf16_cpu({.M = 1, .N = n, .K = 1, .lda = 1, .ldb = n, .ldc = n}, one.data(), v.data(), c.data());
  for (int i = 0; i < n; ++i) REQUIRE(c[i] == round_to_bf16(v[i]));
  gemm_bf16_cpu({.M = n, .N = 1, .K = 1, .lda = 1, .ldb = 1, .ldc = 1}, v.data(), one.data(), c.data());
  for (int i = 0; i < n; ++i) REQUIRE(c[i] == round_to_bf16(v[i]));
}

TEST_CASE("the bf16 GEMM matches the float64 reference on every transpose and edge shape") {
  struct Case {
    int M, N, K;
  };
  // Rows off the 14-row tile, columns off the 32-wide sliver, odd reductions, several
  // reduction blocks with an odd last one, one row, one column.
  const Case cases[] = {{1, 1, 1},    {14, 32, 2},   {15, 33, 3},    {29, 65, 257}, {7, 100, 513},
                        {100, 7, 31}, {64, 10, 512}, {3, 300, 1001}, {130, 96, 64}};
  uint64_t seed = 300;
  for (const Case& k : cases)
    for (const bool ta : {false, true})
      for (const bool tb : {false, true})
        for (const float beta : {0.0f, 0.5f}) {
          INFO("M " << k.M << " N " << k.N << " K " << k.K << " trans_a " << ta << " trans_b " << tb << " beta "
                    << beta);
          GemmShape s{.M = k.M, .N = k.N, .K = k.K, .trans_a = ta, .trans_b = tb};
          s.lda = (ta ? k.M : k.K) + 3;  // padded leading dimensions
          s.ldb = (tb ? k.K : k.N) + 1;
          s.ldc = k.N + 2;
          s.alpha = 1.5f;
          s.beta = beta;
          seed += 3;
          const auto A = random_floats(size_t(ta ? k.K : k.M) * s.lda, seed);
          const auto B = random_floats(size_t(tb ? k.N : k.K) * s.ldb, seed + 1);
          std::vector<float> C = random_floats(size_t(k.M) * s.ldc, seed + 2);
          if (beta == 0.0f) C = test::poisoned(C.size());  // beta 0 must not read C
          std::vector<double> ref(C.size()), ref_exact(C.size());
          for (size_t i = 0; i < C.size(); ++i) ref[i] = ref_exact[i] = C[i];
          gemm_ref(s, rounded(A).data(), rounded(B).data(), ref.data());
          gemm_ref(s, to_double(A).data(), to_double(B).data(), ref_exact.data());
          gemm_bf16_cpu(s, A.data(), B.data(), C.data());
          // Only the M×N entries (the padding columns keep their values or NaNs).
          std::vector<float> got;
          std::vector<double> want, want_exact;
          for (int i = 0; i < k.M; ++i)
            for (int j = 0; j < k.N; ++j) {
              got.push_back(C[size_t(i) * s.ldc + j]);
              want.push_back(ref[size_t(i) * s.ldc + j]);
              want_exact.push_back(ref_exact[size_t(i) * s.ldc + j]);
            }
          expect_close(got, want, kRounded);
          expect_close(got, want_exact, kBf16);
        }
}

TEST_CASE("bf16 conv2d fprop, dgrad (+add) and wgrad match the float64 reference, rounded and not") {
  std::unique_ptr<Context> ctx = bf16_context();
  uint64_t seed = 2000;
  for (const ConvShapeCase& cc : kConvTestCases) {
    const Conv2dShape s = cc.s;
    CAPTURE(cc.name);
    CAPTURE(conv_shape_str(s));
    seed += 10;
    const auto x = random_floats(s.x_size(), seed), w = random_floats(s.w_size(), seed + 1);
    const auto dy = random_floats(s.y_size(), seed + 2), b = random_floats(size_t(s.K), seed + 3);
    const auto dw0 = random_floats(s.w_size(), seed + 4), db0 = random_floats(size_t(s.K), seed + 5);
    const auto add = random_floats(s.x_size(), seed + 6);
    const Tensor tx = on(*ctx, x), tw = on(*ctx, w), tdy = on(*ctx, dy), tb = on(*ctx, b), tadd = on(*ctx, add);
    const auto xr = rounded(x), wr = rounded(w), dyr = rounded(dy), bd = to_double(b);

    {
      INFO("fprop");
      Tensor ty = nan_on(*ctx, s.y_size());
      ops::conv2d_fprop(*ctx, s, tx, tw, &tb, ty);
      std::vector<double> ref(s.y_size()), exact(s.y_size());
      conv2d_fprop_ref(s, xr.data(), wr.data(), bd.data(), ref.data());
      conv2d_fprop_ref(s, to_double(x).data(), to_double(w).data(), bd.data(), exact.data());
      const std::vector<float> got = host_of(*ctx, ty);
      expect_close(got, ref, kRounded);
      expect_close(got, exact, kBf16);
    }
    {
      INFO("dgrad, and dgrad adding a residual branch's gradient");
      Tensor tdx = nan_on(*ctx, s.x_size()), tdx_add = nan_on(*ctx, s.x_size());
      ops::conv2d_dgrad(*ctx, s, tdy, tw, tdx);
      ops::conv2d_dgrad(*ctx, s, tdy, tw, tdx_add, &tadd);
      std::vector<double> ref(s.x_size()), exact(s.x_size());
      conv2d_dgrad_ref(s, dyr.data(), wr.data(), ref.data());
      conv2d_dgrad_ref(s, to_double(dy).data(), to_double(w).data(), exact.data());
      const std::vector<float> got = host_of(*ctx, tdx);
      expect_close(got, ref, kRounded);
      expect_close(got, exact, kBf16);
      for (size_t i = 0; i < ref.size(); ++i) ref[i] += add[i];
      expect_close(host_of(*ctx, tdx_add), ref, kRounded);
    }
    {
      INFO("wgrad, accumulating into dw and dbias");
      Tensor tdw = on(*ctx, dw0), tdb = on(*ctx, db0);
      ops::conv2d_wgrad(*ctx, s, tx, tdy, tdw, &tdb);
      std::vector<double> ref = to_double(dw0), exact = to_double(dw0), db = to_double(db0);
      conv2d_wgrad_ref(s, xr.data(), dyr.data(), ref.data(), nullptr);
      conv2d_wgrad_ref(s, to_double(x).data(), to_double(dy).data(), exact.data(), db.data());  // dbias: fp32 sums
      const std::vector<float> got = host_of(*ctx, tdw);
      expect_close(got, ref, kRounded);
      expect_close(got, exact, kBf16);
      expect_close(host_of(*ctx, tdb), db, kRounded);
    }
  }
}

TEST_CASE("bf16 linear forward and backward match the float64 reference, rounded and not") {
  std::unique_ptr<Context> ctx = bf16_context();
  // {N, IN, OUT}: one row, odd sizes, a classifier head, a reduction past two blocks.
  const LinearShape shapes[] = {{1, 7, 10}, {5, 512, 10}, {64, 300, 33}, {3, 1001, 17}, {33, 64, 100}};
  uint64_t seed = 4000;
  for (const LinearShape& s : shapes) {
    INFO("N " << s.N << " IN " << s.IN << " OUT " << s.OUT);
    seed += 10;
    const size_t nx = size_t(s.N) * s.IN, nw = size_t(s.OUT) * s.IN, ny = size_t(s.N) * s.OUT;
    const auto x = random_floats(nx, seed), w = random_floats(nw, seed + 1), b = random_floats(size_t(s.OUT), seed + 2);
    const auto dy = random_floats(ny, seed + 3), dw0 = random_floats(nw, seed + 4);
    const auto db0 = random_floats(size_t(s.OUT), seed + 5);
    const Tensor tx = on(*ctx, x), tw = on(*ctx, w), tb = on(*ctx, b), tdy = on(*ctx, dy);
    Tensor ty = nan_on(*ctx, ny), tdx = nan_on(*ctx, nx), tdw = on(*ctx, dw0), tdb = on(*ctx, db0);
    ops::linear_fwd(*ctx, s, tx, tw, &tb, ty);
    ops::linear_bwd(*ctx, s, tx, tw, tdy, tdx, tdw, &tdb);

    const auto xr = rounded(x), wr = rounded(w), dyr = rounded(dy), bd = to_double(b);
    std::vector<double> y(ny), dx(nx), dw = to_double(dw0), db = to_double(db0);
    std::vector<double> ye(ny), dxe(nx), dwe = to_double(dw0), dbe = to_double(db0);
    linear_fwd_ref(s, xr.data(), wr.data(), bd.data(), y.data());
    linear_bwd_ref(s, xr.data(), wr.data(), dyr.data(), dx.data(), dw.data(), nullptr);
    linear_fwd_ref(s, to_double(x).data(), to_double(w).data(), bd.data(), ye.data());
    linear_bwd_ref(s, to_double(x).data(), to_double(w).data(), to_double(dy).data(), dxe.data(), dwe.data(),
                   dbe.data());  // db: fp32 sums of the unrounded dy
    const std::vector<float> gy = host_of(*ctx, ty), gdx = host_of(*ctx, tdx), gdw = host_of(*ctx, tdw);
    expect_close(gy, y, kRounded);
    expect_close(gdx, dx, kRounded);
    expect_close(gdw, dw, kRounded);
    expect_close(gy, ye, kBf16);
    expect_close(gdx, dxe, kBf16);
    expect_close(gdw, dwe, kBf16);
    expect_close(host_of(*ctx, tdb), dbe, kRounded);
  }
}

TEST_CASE("bf16 conv2d passes do not depend on the thread count") {
  const int saved = omp_get_max_threads();
  for (const ConvShapeCase& cc : {kConvTestCases[1], kConvTestCases[3], kConvTestCases[5], kConvTestCases[9]}) {
    const Conv2dShape& s = cc.s;
    CAPTURE(cc.name);
    const auto x = random_floats(s.x_size(), 21), w = random_floats(s.w_size(), 22);
    const auto dy = random_floats(s.y_size(), 23), b = random_floats(size_t(s.K), 24);
    std::vector<float> y[2], dx[2], dw[2], db[2];
    for (int t = 0; t < 2; ++t) {
      omp_set_num_threads(t + 1);
      y[t] = test::poisoned(s.y_size());
      dx[t] = test::poisoned(s.x_size());
      dw[t] = random_floats(s.w_size(), 25);
      db[t] = random_floats(size_t(s.K), 26);
      conv2d_fprop_bf16_cpu(s, x.data(), w.data(), b.data(), y[t].data());
      conv2d_dgrad_bf16_cpu(s, dy.data(), w.data(), dx[t].data());
      conv2d_wgrad_bf16_cpu(s, x.data(), dy.data(), dw[t].data(), db[t].data());
    }
    omp_set_num_threads(saved);
    CHECK(y[0] == y[1]);
    CHECK(dx[0] == dx[1]);
    CHECK(dw[0] == dw[1]);
    CHECK(db[0] == db[1]);
  }
}

TEST_CASE("training in bf16 follows fp32: same seed, close loss, not the same bits") {
  const DataSplits data = load_data({"synthetic", "", 512, 128});
  struct Run {
    EpochRecord record;
    std::vector<float> params;
  };
  auto run = [&](Precision p) {
    Context ctx;
    ctx.set_precision(p);
    auto net = make_net("convnet", {32, 32, 3, 10});
    net->build(ctx, 4);
    Trainer t(*net, ctx, data, test::small_config(2));
    Run r;
    while (!t.done()) r.record = t.train_epoch({});
    r.params = test::host_floats(net->params(), ctx);
    return r;
  };
  const Run f = run(Precision::F32), b = run(Precision::BF16);
  INFO("fp32 loss " << f.record.train_loss << " accuracy " << f.record.test_accuracy << "; bf16 loss "
                    << b.record.train_loss << " accuracy " << b.record.test_accuracy);
  CHECK(f.params != b.params);
  CHECK(std::fabs(b.record.train_loss - f.record.train_loss) <= 0.05 * f.record.train_loss);
  CHECK(std::fabs(b.record.test_accuracy - f.record.test_accuracy) <= 0.05);
}

}  // namespace
}  // namespace activeip
