// The op table of the harness (tests/op_harness.h): every case is one op on one shape, with
// awkward sizes (N = 1, C and K off the tiles, 7×7, 28×28, odd and non-square, stride 2) and
// random, never-zero inputs; the reference is the float64 specification in kernels/, or the
// CPU op where there is none (argmax, data movement). Passes
// that accumulate (wgrad, linear and batch-norm parameter gradients) start from random values
// and run twice. The CPU suite (test_ops.cpp) and the GPU suite (test_cuda_ops.cpp) run it all.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "bench/conv_cases.h"
#include "engine/nn/ops.h"
#include "kernels/batchnorm.h"
#include "kernels/conv2d.h"
#include "kernels/linear.h"
#include "kernels/loss.h"
#include "kernels/pool.h"
#include "kernels/sam.h"
#include "kernels/shortcut.h"
#include "tests/op_harness.h"

namespace activeip::test {

inline void add_conv2d_cases(std::vector<OpCase>& cases) {
  uint64_t seed = 1000;
  for (const ConvShapeCase& cc : kConvTestCases)
    for (const bool bias : {true, false}) {
      const Conv2dShape s = cc.s;
      const std::string shape = conv_shape_str(s) + " (" + cc.name + ")" + (bias ? ", bias" : ", no bias");
      seed += 10;
      const auto x = random_floats(s.x_size(), seed), w = random_floats(s.w_size(), seed + 1);
      const auto dy = random_floats(s.y_size(), seed + 2), b = random_floats(size_t(s.K), seed + 3);
      const auto dw0 = random_floats(s.w_size(), seed + 4), db0 = random_floats(size_t(s.K), seed + 5);
      cases.push_back({"conv2d_fprop " + shape,
                       {"y"},
                       [=] {
                         std::vector<double> y(s.y_size());
                         const auto bd = to_double(b);
                         conv2d_fprop_ref(s, to_double(x).data(), to_double(w).data(), bias ? bd.data() : nullptr,
                                          y.data());
                         return RefOutputs{y};
                       },
                       [=](Context& ctx) {
                         const Tensor tx = on(ctx, x), tw = on(ctx, w), tb = on(ctx, b);
                         Tensor ty = nan_on(ctx, s.y_size());
                         ops::conv2d_fprop(ctx, s, tx, tw, bias ? &tb : nullptr, ty);
                         return Outputs{host_of(ctx, ty)};
                       }});
      if (bias)  // dgrad has no bias: once per shape
        cases.push_back({"conv2d_dgrad " + conv_shape_str(s) + " (" + cc.name + ")",
                         {"dx"},
                         [=] {
                           std::vector<double> dx(s.x_size());
                           conv2d_dgrad_ref(s, to_double(dy).data(), to_double(w).data(), dx.data());
                           return RefOutputs{dx};
                         },
                         [=](Context& ctx) {
                           // stride 2 with a 1×1 filter leaves inputs no output sees: still written
                           const Tensor tdy = on(ctx, dy), tw = on(ctx, w);
                           Tensor tdx = nan_on(ctx, s.x_size());
                           ops::conv2d_dgrad(ctx, s, tdy, tw, tdx);
                           return Outputs{host_of(ctx, tdx)};
                         }});
      if (!bias)  // dgrad adding a residual branch's gradient (dx_add) in the same pass
        cases.push_back({"conv2d_dgrad+add " + conv_shape_str(s) + " (" + cc.name + ")",
                         {"dx"},
                         [=] {
                           std::vector<double> dx(s.x_size());
                           conv2d_dgrad_ref(s, to_double(dy).data(), to_double(w).data(), dx.data());
                           for (size_t i = 0; i < dx.size(); ++i) dx[i] += x[i];
                           return RefOutputs{dx};
                         },
                         [=](Context& ctx) {
                           const Tensor tdy = on(ctx, dy), tw = on(ctx, w), tadd = on(ctx, x);
                           Tensor tdx = nan_on(ctx, s.x_size());
                           ops::conv2d_dgrad(ctx, s, tdy, tw, tdx, &tadd);
                           return Outputs{host_of(ctx, tdx)};
                         }});
      // Two steps into random dw / dbias; without dbias, dbias stays as it started.
      cases.push_back({"conv2d_wgrad " + shape,
                       {"dw", {"dbias", !bias}},
                       [=] {
                         auto dw = to_double(dw0), db = to_double(db0);
                         for (int step = 0; step < 2; ++step)
                           conv2d_wgrad_ref(s, to_double(x).data(), to_double(dy).data(), dw.data(),
                                            bias ? db.data() : nullptr);
                         return RefOutputs{dw, db};
                       },
                       [=](Context& ctx) {
                         const Tensor tx = on(ctx, x), tdy = on(ctx, dy);
                         Tensor tdw = on(ctx, dw0), tdb = on(ctx, db0);
                         for (int step = 0; step < 2; ++step)
                           ops::conv2d_wgrad(ctx, s, tx, tdy, tdw, bias ? &tdb : nullptr);
                         return Outputs{host_of(ctx, tdw), host_of(ctx, tdb)};
                       }});
    }
}

// The three CPU convolution algorithms called directly, whichever conv2d_*_cpu would pick: the
// direct and Winograd kernels on every table shape they support and on shapes of their own
// (N = 1, 7×5 and 5×7 images, C and K off the 16 lanes, stride 2 with pad 0 and 1, images
// smaller than the filter, 5×5; for Winograd 1×1 and odd images, C past the reduction block,
// K past its output block, tiles past its tile block), and the im2col GEMMs on the shapes the
// dispatcher sends to the other two. Host memory whatever the context: these are CPU kernels ("cpu conv2d" family).
inline void add_cpu_conv2d_algorithm_cases(std::vector<OpCase>& cases) {
  struct Algo {
    const char* name;
    void (*fprop)(const Conv2dShape&, const float*, const float*, const float*, float*);
    void (*dgrad)(const Conv2dShape&, const float*, const float*, float*);  // plain dgrad
    // dgrad + dx_add in one pass, and wgrad; null where the algorithm has none
    void (*dgrad_add)(const Conv2dShape&, const float*, const float*, float*, const float*);
    void (*wgrad)(const Conv2dShape&, const float*, const float*, float*, float*);
  };
  const Algo direct{
      "direct", conv2d_fprop_direct_cpu,
      [](const Conv2dShape& s, const float* dy, const float* w, float* dx) { conv2d_dgrad_direct_cpu(s, dy, w, dx); },
      conv2d_dgrad_direct_cpu, conv2d_wgrad_direct_cpu};
  const Algo im2col{"im2col", conv2d_fprop_im2col_cpu, conv2d_dgrad_im2col_cpu, nullptr, conv2d_wgrad_im2col_cpu};
  const Algo winograd{
      "winograd", conv2d_fprop_winograd_cpu,
      [](const Conv2dShape& s, const float* dy, const float* w, float* dx) { conv2d_dgrad_winograd_cpu(s, dy, w, dx); },
      conv2d_dgrad_winograd_cpu, conv2d_wgrad_winograd_cpu};
  std::vector<std::pair<Conv2dShape, bool>> shapes;  // (shape, one of the extras)
  for (const ConvShapeCase& cc : kConvTestCases) shapes.emplace_back(cc.s, false);
  const Conv2dShape extra[] = {
      // {N, H, W, C, K, R, S, stride, pad}
      {1, 7, 5, 3, 16, 3, 3, 1, 1},   {1, 7, 5, 16, 16, 3, 3, 2, 1},   {2, 5, 7, 20, 32, 3, 3, 1, 1},
      {1, 5, 7, 32, 31, 3, 3, 2, 1},  {2, 3, 2, 4, 4, 3, 3, 1, 1},     {1, 13, 11, 5, 30, 5, 5, 1, 2},
      {2, 9, 9, 17, 17, 3, 3, 2, 0},  {3, 7, 5, 9, 1, 3, 3, 1, 1},     {1, 6, 6, 32, 32, 3, 3, 2, 1},
      {1, 1, 1, 5, 7, 3, 3, 1, 1},    {2, 3, 5, 33, 70, 3, 3, 1, 1},   {1, 9, 7, 300, 40, 3, 3, 1, 1},
      {1, 6, 4, 48, 150, 3, 3, 1, 1}, {2, 17, 15, 24, 40, 3, 3, 1, 1},
  };
  for (const Conv2dShape& s : extra) shapes.emplace_back(s, true);
  uint64_t seed = 2000;
  for (const auto& [s, is_extra] : shapes) {
    seed += 10;
    std::vector<Algo> algos;
    if (conv2d_direct_supported(s)) algos.push_back(direct);
    if (conv2d_winograd_supported(s)) algos.push_back(winograd);
    if (is_extra || conv2d_use_direct(s) || conv2d_use_winograd(s) || conv2d_use_winograd_wgrad(s))
      algos.push_back(im2col);
    const auto x = random_floats(s.x_size(), seed), w = random_floats(s.w_size(), seed + 1);
    const auto dy = random_floats(s.y_size(), seed + 2), b = random_floats(size_t(s.K), seed + 3);
    const auto dw0 = random_floats(s.w_size(), seed + 4), db0 = random_floats(size_t(s.K), seed + 5);
    for (const Algo& a : algos) {
      const std::string shape = std::string(a.name) + " " + conv_shape_str(s);
      cases.push_back({"cpu conv2d_fprop " + shape + ", bias",
                       {"y"},
                       [=] {
                         std::vector<double> y(s.y_size());
                         conv2d_fprop_ref(s, to_double(x).data(), to_double(w).data(), to_double(b).data(), y.data());
                         return RefOutputs{y};
                       },
                       [=](Context&) {
                         std::vector<float> y = poisoned(s.y_size());
                         a.fprop(s, x.data(), w.data(), b.data(), y.data());
                         return Outputs{y};
                       }});
      cases.push_back({"cpu conv2d_dgrad " + shape,
                       {"dx"},
                       [=] {
                         std::vector<double> dx(s.x_size());
                         conv2d_dgrad_ref(s, to_double(dy).data(), to_double(w).data(), dx.data());
                         return RefOutputs{dx};
                       },
                       [=](Context&) {
                         std::vector<float> dx = poisoned(s.x_size());
                         a.dgrad(s, dy.data(), w.data(), dx.data());
                         return Outputs{dx};
                       }});
      if (a.dgrad_add)
        cases.push_back({"cpu conv2d_dgrad+add " + shape,
                         {"dx"},
                         [=] {
                           std::vector<double> dx(s.x_size());
                           conv2d_dgrad_ref(s, to_double(dy).data(), to_double(w).data(), dx.data());
                           for (size_t i = 0; i < dx.size(); ++i) dx[i] += x[i];
                           return RefOutputs{dx};
                         },
                         [=](Context&) {
                           std::vector<float> dx = poisoned(s.x_size());
                           a.dgrad_add(s, dy.data(), w.data(), dx.data(), x.data());
                           return Outputs{dx};
                         }});
      if (a.wgrad)
        cases.push_back({"cpu conv2d_wgrad " + shape + ", bias",
                         {"dw", "dbias"},
                         [=] {
                           auto dw = to_double(dw0), db = to_double(db0);
                           for (int step = 0; step < 2; ++step)
                             conv2d_wgrad_ref(s, to_double(x).data(), to_double(dy).data(), dw.data(), db.data());
                           return RefOutputs{dw, db};
                         },
                         [=](Context&) {
                           std::vector<float> dw = dw0, db = db0;
                           for (int step = 0; step < 2; ++step) a.wgrad(s, x.data(), dy.data(), dw.data(), db.data());
                           return Outputs{dw, db};
                         }});
    }
  }
}

inline void add_linear_cases(std::vector<OpCase>& cases) {
  const LinearShape shapes[] = {
      {1, 7, 10},    {3, 64, 10},  {5, 49, 13},  {32, 512, 100}, {2, 784, 1},    {1, 3, 10},
      {17, 512, 10}, {7, 33, 100}, {128, 64, 1}, {3, 1, 1},      {512, 512, 10}, {256, 512, 100},
  };
  uint64_t seed = 3000;
  for (const LinearShape& s : shapes)
    for (const bool bias : {true, false}) {
      seed += 10;
      const std::string shape = strfmt("N%d IN%d OUT%d, %s", s.N, s.IN, s.OUT, bias ? "bias" : "no bias");
      const size_t nx = size_t(s.N) * s.IN, nw = size_t(s.OUT) * s.IN, ny = size_t(s.N) * s.OUT;
      const auto x = random_floats(nx, seed), w = random_floats(nw, seed + 1), b = random_floats(s.OUT, seed + 2);
      const auto dy = random_floats(ny, seed + 3), dw0 = random_floats(nw, seed + 4);
      const auto db0 = random_floats(s.OUT, seed + 5);
      cases.push_back({"linear_fwd " + shape,
                       {"y"},
                       [=] {
                         std::vector<double> y(ny);
                         const auto bd = to_double(b);
                         linear_fwd_ref(s, to_double(x).data(), to_double(w).data(), bias ? bd.data() : nullptr,
                                        y.data());
                         return RefOutputs{y};
                       },
                       [=](Context& ctx) {
                         const Tensor tx = on(ctx, x), tw = on(ctx, w), tb = on(ctx, b);
                         Tensor ty = nan_on(ctx, ny);
                         ops::linear_fwd(ctx, s, tx, tw, bias ? &tb : nullptr, ty);
                         return Outputs{host_of(ctx, ty)};
                       }});
      // dx overwritten, dw and db accumulated over two steps; a null db is never written.
      cases.push_back({"linear_bwd " + shape,
                       {"dx", "dw", {"db", !bias}},
                       [=] {
                         std::vector<double> dx(nx);
                         auto dw = to_double(dw0), db = to_double(db0);
                         for (int step = 0; step < 2; ++step)
                           linear_bwd_ref(s, to_double(x).data(), to_double(w).data(), to_double(dy).data(), dx.data(),
                                          dw.data(), bias ? db.data() : nullptr);
                         return RefOutputs{dx, dw, db};
                       },
                       [=](Context& ctx) {
                         const Tensor tx = on(ctx, x), tw = on(ctx, w), tdy = on(ctx, dy);
                         Tensor tdx = nan_on(ctx, nx), tdw = on(ctx, dw0), tdb = on(ctx, db0);
                         for (int step = 0; step < 2; ++step)
                           ops::linear_bwd(ctx, s, tx, tw, tdy, tdx, tdw, bias ? &tdb : nullptr);
                         return Outputs{host_of(ctx, tdx), host_of(ctx, tdw), host_of(ctx, tdb)};
                       }});
    }
}

inline void add_batchnorm_cases(std::vector<OpCase>& cases) {
  // M = N·H·W rows: N = 1 images, 7×7 and 28×28, C off the warp and the block, M not a
  // multiple of a block's rows, and 64×32×32×16, which reaches the most row splits (1024).
  const BatchNormShape shapes[] = {
      {1 * 7 * 7, 3},    {2 * 28 * 28, 16},
      {3 * 5 * 5, 33},   {64 * 8 * 8, 64},
      {2, 129},          {1 * 28 * 28, 1},
      {2 * 32 * 32, 3},  {3 * 7 * 7, 7},
      {1 * 28 * 28, 13}, {64 * 32 * 32, 16},
      {5 * 9 * 9, 64},   {2 * 7 * 5, 100},
      {8 * 4 * 4, 512},  {3, 7},
  };
  uint64_t seed = 5000;
  for (const BatchNormShape& s : shapes) {
    seed += 10;
    const std::string shape = strfmt("M%d C%d", s.M, s.C);
    const size_t n = size_t(s.M) * s.C, C = size_t(s.C);
    const auto x = random_floats(n, seed), gamma = random_floats(C, seed + 1, 0.5f, 2.0f);
    const auto beta = random_floats(C, seed + 2), dy = random_floats(n, seed + 3);
    const auto dg0 = random_floats(C, seed + 4), db0 = random_floats(C, seed + 5);
    const BatchNormParams p{};
    // Forward then backward in training mode, as a layer runs them.
    cases.push_back({"batchnorm_fwd+bwd (training) " + shape,
                     {"y", "dx", "dgamma", "dbeta"},
                     [=] {
                       std::vector<double> y(n), dx(n);
                       auto dg = to_double(dg0), db = to_double(db0);
                       batchnorm_fwd_train_ref(s, p.eps, to_double(x).data(), to_double(gamma).data(),
                                               to_double(beta).data(), y.data());
                       batchnorm_bwd_ref(s, p.eps, to_double(x).data(), to_double(dy).data(), to_double(gamma).data(),
                                         dx.data(), dg.data(), db.data());
                       return RefOutputs{y, dx, dg, db};
                     },
                     [=](Context& ctx) {
                       const Tensor tx = on(ctx, x), tg = on(ctx, gamma), tb = on(ctx, beta), tdy = on(ctx, dy);
                       Tensor rm = on(ctx, std::vector<float>(C, 0.0f)), rv = on(ctx, std::vector<float>(C, 1.0f));
                       Tensor sm = nan_on(ctx, C), si = nan_on(ctx, C), ty = nan_on(ctx, n), tdx = nan_on(ctx, n);
                       Tensor tdg = on(ctx, dg0), tdb = on(ctx, db0);
                       ops::batchnorm_fwd(ctx, s, p, true, {tx, tg, tb, rm, rv, sm, si, ty});
                       ops::batchnorm_bwd(ctx, s, {tx, tdy, tg, sm, si, tdx, tdg, tdb});
                       return Outputs{host_of(ctx, ty), host_of(ctx, tdx), host_of(ctx, tdg), host_of(ctx, tdb)};
                     }});
  }
}

// The batch norm with the ReLU and the residual add fused in (ops::BatchNormFusion), against
// the composition of the float64 specifications: y = relu(bn(x) + residual), then
// g = dy·[y > 0] and the batch-norm backward of g, g kept for the residual branch. Inputs of
// both signs so that the ReLU cuts; eval mode through the running statistics once per shape.
inline void add_batchnorm_act_cases(std::vector<OpCase>& cases) {
  const BatchNormShape shapes[] = {{1 * 7 * 5, 3}, {2 * 7 * 5, 17}, {3 * 5 * 5, 33}, {2 * 8 * 8, 16}, {3, 7}};
  uint64_t seed = 5500;
  for (const BatchNormShape& s : shapes)
    for (const bool residual : {false, true}) {
      seed += 10;
      const size_t n = size_t(s.M) * s.C, C = size_t(s.C);
      const auto x = random_floats(n, seed), gamma = random_floats(C, seed + 1, 0.5f, 2.0f);
      const auto beta = random_floats(C, seed + 2), dy = random_floats(n, seed + 3), res = random_floats(n, seed + 4);
      const auto dg0 = random_floats(C, seed + 5), db0 = random_floats(C, seed + 6);
      const auto rm = random_floats(C, seed + 7, 0.1f, 0.5f);
      auto rv = random_floats(C, seed + 8, 0.5f, 2.0f);
      for (float& v : rv) v = std::fabs(v);  // random_floats draws either sign
      const BatchNormParams p{};
      const std::string shape = strfmt("M%d C%d%s", s.M, s.C, residual ? ", residual" : "");
      cases.push_back({"batchnorm_act fwd+bwd relu(bn(x) + residual) (training) " + shape,
                       {"y", "dx", "dgamma", "dbeta", "g"},
                       [=] {
                         std::vector<double> y(n), dx(n), g(n);
                         auto dgm = to_double(dg0), dbt = to_double(db0);
                         batchnorm_fwd_train_ref(s, p.eps, to_double(x).data(), to_double(gamma).data(),
                                                 to_double(beta).data(), y.data());
                         for (size_t i = 0; i < n; ++i) {
                           y[i] = std::max(0.0, y[i] + (residual ? double(res[i]) : 0.0));
                           g[i] = y[i] > 0 ? double(dy[i]) : 0.0;
                         }
                         batchnorm_bwd_ref(s, p.eps, to_double(x).data(), g.data(), to_double(gamma).data(), dx.data(),
                                           dgm.data(), dbt.data());
                         return RefOutputs{y, dx, dgm, dbt, g};
                       },
                       [=](Context& ctx) {
                         const Tensor tx = on(ctx, x), tg = on(ctx, gamma), tb = on(ctx, beta), tdy = on(ctx, dy);
                         const Tensor tres = on(ctx, res);
                         Tensor trm = on(ctx, rm), trv = on(ctx, rv);
                         Tensor sm = nan_on(ctx, C), si = nan_on(ctx, C), ty = nan_on(ctx, n), tdx = nan_on(ctx, n);
                         Tensor tgg = nan_on(ctx, n), tdg = on(ctx, dg0), tdb = on(ctx, db0);
                         ops::batchnorm_fwd(ctx, s, p, true, {tx, tg, tb, trm, trv, sm, si, ty},
                                            {residual ? &tres : nullptr, true});
                         ops::batchnorm_bwd(ctx, s, {tx, tdy, tg, sm, si, tdx, tdg, tdb}, {&ty, &tgg, true});
                         return Outputs{host_of(ctx, ty), host_of(ctx, tdx), host_of(ctx, tdg), host_of(ctx, tdb),
                                        host_of(ctx, tgg)};
                       }});
      cases.push_back({"batchnorm_act fwd relu(bn(x) + residual) (eval) " + shape,
                       {"y"},
                       [=] {
                         std::vector<double> y(n);
                         for (int r = 0; r < s.M; ++r)
                           for (int c = 0; c < s.C; ++c) {
                             const size_t i = size_t(r) * C + c;
                             const double v = (double(x[i]) - rm[c]) / std::sqrt(double(rv[c]) + p.eps) * gamma[c] +
                                              beta[c] + (residual ? double(res[i]) : 0.0);
                             y[i] = std::max(0.0, v);
                           }
                         return RefOutputs{y};
                       },
                       [=](Context& ctx) {
                         const Tensor tx = on(ctx, x), tg = on(ctx, gamma), tb = on(ctx, beta), tres = on(ctx, res);
                         Tensor trm = on(ctx, rm), trv = on(ctx, rv), sm = nan_on(ctx, C), si = nan_on(ctx, C);
                         Tensor ty = nan_on(ctx, n);
                         ops::batchnorm_fwd(ctx, s, p, false, {tx, tg, tb, trm, trv, sm, si, ty},
                                            {residual ? &tres : nullptr, true});
                         return Outputs{host_of(ctx, ty)};
                       }});
    }
}

inline std::string pool_shape_str(const Pool2dShape& s) {
  return strfmt("N%d %dx%d C%d %dx%d stride%d pad%d", s.N, s.H, s.W, s.C, s.R, s.S, s.stride, s.pad);
}

inline void add_pool_cases(std::vector<OpCase>& cases) {
  // 28×28 and 32×32, odd sizes whose last row and column no window reaches, 2×2 stride 2 and
  // overlapping windows (3×3 stride 2 pad 1, 3×3 stride 1 pad 1). ties: inputs rounded to five
  // levels, so most windows hold equal maxima and the first in window order must win.
  struct PoolCase {
    Pool2dShape s;
    bool ties;
  };
  const PoolCase shapes[] = {
      {{1, 7, 7, 3}, false},
      {{2, 28, 28, 16}, false},
      {{3, 9, 5, 33, 3, 3, 2, 1}, false},
      {{2, 8, 8, 64, 3, 3, 1, 1}, false},
      {{1, 28, 28, 1, 2, 2, 2, 0}, false},
      {{2, 32, 32, 3, 2, 2, 2, 0}, false},
      {{3, 7, 7, 13, 3, 3, 2, 1}, false},
      {{2, 32, 32, 64, 3, 3, 2, 1}, false},
      {{1, 28, 28, 7, 3, 3, 1, 1}, false},
      {{2, 9, 9, 100, 2, 2, 2, 0}, false},
      {{1, 5, 7, 3, 3, 3, 2, 0}, false},
      {{2, 28, 28, 7, 3, 3, 2, 1}, true},
      {{1, 32, 32, 3, 2, 2, 2, 0}, true},
  };
  uint64_t seed = 7000;
  for (const PoolCase& pc : shapes) {
    const Pool2dShape s = pc.s;
    seed += 10;
    const std::string shape = pool_shape_str(s) + (pc.ties ? ", ties" : "");
    const size_t nx = size_t(s.N) * s.H * s.W * s.C, ny = size_t(s.N) * s.P() * s.Q() * s.C;
    auto x = random_floats(nx, seed);
    if (pc.ties)
      for (float& v : x) v = std::round(2.0f * v) / 2.0f;  // five levels, -1 … 1
    const auto dy = random_floats(ny, seed + 1);
    auto run = [=](Context& ctx) {
      const Tensor tx = on(ctx, x), tdy = on(ctx, dy);
      Tensor ty = nan_on(ctx, ny), tdx = nan_on(ctx, nx);
      Tensor argmax = on(ctx, std::vector<int32_t>(ny, -1));
      ops::maxpool2d_fwd(ctx, s, tx, ty, argmax);
      ops::maxpool2d_bwd(ctx, s, tdy, argmax, tdx);
      const Tensor a = argmax.to(Device::cpu(), ctx);
      ctx.synchronize();
      const std::vector<float> index(a.data<int32_t>(), a.data<int32_t>() + a.numel());  // exact below 2^24
      return Outputs{host_of(ctx, ty), index, host_of(ctx, tdx)};
    };
    if (!pc.ties)
      cases.push_back({"maxpool2d_fwd+bwd " + shape,
                       {"y", "dx"},
                       [=] {
                         std::vector<double> y(ny), dx(nx);
                         maxpool2d_fwd_ref(s, to_double(x).data(), y.data());
                         maxpool2d_bwd_ref(s, to_double(x).data(), to_double(dy).data(), dx.data());
                         return RefOutputs{y, dx};
                       },
                       [=](Context& ctx) {
                         Outputs o = run(ctx);
                         return Outputs{o[0], o[2]};
                       }});
    // The maximum is a selection, not arithmetic: values and indices agree exactly.
    cases.push_back(
        {"maxpool2d_fwd+bwd against the CPU " + shape, {{"y", true}, {"argmax", true}, "dx"}, nullptr, run});
  }
  const GlobalPoolShape gshapes[] = {{1, 49, 3},  {2, 784, 16}, {3, 45, 33},  {2, 64, 64},  {1, 64, 1},
                                     {3, 49, 13}, {2, 1024, 7}, {5, 16, 100}, {4, 64, 512}, {7, 1, 3}};
  for (const GlobalPoolShape& g : gshapes) {
    seed += 10;
    const std::string shape = strfmt("N%d HW%d C%d", g.N, g.HW, g.C);
    const size_t nx = size_t(g.N) * g.HW * g.C, ng = size_t(g.N) * g.C;
    const auto x = random_floats(nx, seed), dy = random_floats(ng, seed + 1);
    cases.push_back({"global_avgpool_fwd+bwd " + shape,
                     {"y", "dx"},
                     [=] {
                       std::vector<double> y(ng), dx(nx);
                       global_avgpool_fwd_ref(g, to_double(x).data(), y.data());
                       global_avgpool_bwd_ref(g, to_double(dy).data(), dx.data());
                       return RefOutputs{y, dx};
                     },
                     [=](Context& ctx) {
                       const Tensor tx = on(ctx, x), tdy = on(ctx, dy);
                       Tensor ty = nan_on(ctx, ng), tdx = nan_on(ctx, nx);
                       ops::global_avgpool_fwd(ctx, g, tx, ty);
                       ops::global_avgpool_bwd(ctx, g, tdy, tdx);
                       return Outputs{host_of(ctx, ty), host_of(ctx, tdx)};
                     }});
  }
}

// The option-A shortcut (N = 1, odd H and W so that the stride leaves a ragged edge, stride 1
// and 2, padding before and after): pure data movement, so exact against the CPU.
inline void add_shortcut_cases(std::vector<OpCase>& cases) {
  const PadShortcutShape shapes[] = {{1, 8, 8, 16, 2, 8, 8},
                                     {3, 7, 9, 5, 2, 3, 2},
                                     {2, 32, 32, 16, 2, 8, 8},
                                     {2, 5, 5, 3, 1, 0, 4},
                                     {4, 28, 28, 1, 2, 1, 0}};
  for (const PadShortcutShape& s : shapes) {
    const size_t nx = size_t(s.N) * s.H * s.W * s.C, ny = size_t(s.N) * s.P() * s.Q() * s.K();
    const auto x = random_floats(nx, 1 + nx), dy = random_floats(ny, 2 + ny);
    cases.push_back({strfmt("pad_shortcut_fwd+bwd N%d %dx%dx%d stride %d pad %d+%d", s.N, s.H, s.W, s.C, s.stride,
                            s.pad_before, s.pad_after),
                     {{"y", true}, {"dx", true}},
                     nullptr,
                     [=](Context& ctx) {
                       const Tensor tx = on(ctx, x), tdy = on(ctx, dy);
                       Tensor ty = nan_on(ctx, ny), tdx = nan_on(ctx, nx);
                       ops::pad_shortcut_fwd(ctx, s, tx, ty);
                       ops::pad_shortcut_bwd(ctx, s, tdy, tdx);
                       return Outputs{host_of(ctx, ty), host_of(ctx, tdx)};
                     }});
  }
}

// Rows of probabilities from random teacher logits at T; every third entry of row 0 is an
// exact zero (an underflowed class, 0·log 0) when the row is wide enough.
inline std::vector<float> soft_targets(const XentShape& s, float T, uint64_t seed) {
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

// The losses against the CPU for N = 1 … 130 rows and C = 1, 10, 37, 100, 1000 (fewer, as many
// and many more columns than a warp has lanes), logits spread over ±5 so that probabilities
// span orders of magnitude, and offset by 100 once, where an exp without the maximum
// subtracted would overflow. Softmax cross-entropy with label smoothing 0 and 0.1; the
// distillation loss and the softmax at temperature T = 0.5, 1, 4.
inline void add_loss_cases(std::vector<OpCase>& cases) {
  struct LossCase {
    XentShape s;
    float offset;  // added to every logit
  };
  const LossCase shapes[] = {{{1, 1}, 0.0f},   {{1, 10}, 0.0f},   {{7, 10}, 0.0f},  {{130, 100}, 0.0f},
                             {{33, 37}, 0.0f}, {{5, 1000}, 0.0f}, {{9, 10}, 100.0f}};
  for (const LossCase& lc : shapes) {
    const XentShape s = lc.s;
    const size_t n = size_t(s.N) * s.C;
    const std::string shape =
        lc.offset != 0 ? strfmt("N%d C%d +%g", s.N, s.C, static_cast<double>(lc.offset)) : strfmt("N%d C%d", s.N, s.C);
    const float scale = 1.0f / static_cast<float>(s.N);
    for (const float smoothing : {0.0f, 0.1f}) {
      std::vector<float> logits = random_floats(n, 900 + n, 0.1f, 5.0f);
      for (float& z : logits) z += lc.offset;
      std::vector<int32_t> labels(s.N);
      for (int i = 0; i < s.N; ++i) labels[i] = static_cast<int32_t>((7 * i + 3) % s.C);
      cases.push_back({strfmt("softmax_xent_fwd+bwd %s smoothing %g", shape.c_str(), static_cast<double>(smoothing)),
                       {"probs", "loss", "dlogits"},
                       nullptr,
                       [=](Context& ctx) {
                         const Tensor tl = on(ctx, logits), tlab = on(ctx, labels);
                         Tensor probs = nan_on(ctx, n), loss = nan_on(ctx, s.N), dlogits = nan_on(ctx, n);
                         ops::softmax_xent_fwd(ctx, s, smoothing, tl, tlab, probs, loss);
                         ops::softmax_xent_bwd(ctx, s, smoothing, probs, tlab, scale, dlogits);
                         return Outputs{host_of(ctx, probs), host_of(ctx, loss), host_of(ctx, dlogits)};
                       }});
    }
    for (const float T : {0.5f, 1.0f, 4.0f}) {
      std::vector<float> logits = random_floats(n, 700 + n, 0.1f, 5.0f);
      for (float& z : logits) z += lc.offset;
      const std::vector<float> targets = soft_targets(s, T, 800 + n);
      // One class: the loss and its gradient are rounding noise around 0 on every backend.
      const double zero = s.C == 1 ? 1e-6 : 0;
      cases.push_back(
          {strfmt("soft_xent_fwd+bwd and softmax_temperature_fwd %s T %g", shape.c_str(), static_cast<double>(T)),
           {"probs", "softmax", {"loss", false, 0, zero}, {"dlogits", false, 0, zero}},
           nullptr,
           [=](Context& ctx) {
             const Tensor tl = on(ctx, logits), tt = on(ctx, targets);
             Tensor probs = nan_on(ctx, n), loss = nan_on(ctx, s.N), dlogits = nan_on(ctx, n);
             Tensor softmax = nan_on(ctx, n);
             ops::soft_xent_fwd(ctx, s, T, tl, tt, probs, loss);
             ops::soft_xent_bwd(ctx, s, T, probs, tt, scale, dlogits);
             ops::softmax_temperature_fwd(ctx, s, T, tl, softmax);
             return Outputs{host_of(ctx, probs), host_of(ctx, softmax), host_of(ctx, loss), host_of(ctx, dlogits)};
           }});
    }
    // Logit spread: every third row outside the group (all of them with N = 1, an empty group),
    // added to a random dlogits.
    {
      std::vector<float> logits = random_floats(n, 600 + n, 0.1f, 5.0f);
      for (float& z : logits) z += lc.offset;
      const std::vector<float> d0 = random_floats(n, 601 + n);
      std::vector<float> rows(static_cast<size_t>(s.N));
      for (int i = 0; i < s.N; ++i) rows[static_cast<size_t>(i)] = s.N > 1 && i % 3 != 1 ? 1.0f : 0.0f;
      cases.push_back({strfmt("logit_spread_bwd %s", shape.c_str()),
                       {"dlogits"},
                       [=] {
                         std::vector<double> d = to_double(d0);
                         logit_spread_ref(s, 0.75, to_double(logits).data(), to_double(rows).data(), d.data());
                         return RefOutputs{d};
                       },
                       [=](Context& ctx) {
                         const Tensor tl = on(ctx, logits), tr = on(ctx, rows);
                         Tensor d = on(ctx, d0);
                         ops::logit_spread_bwd(ctx, s, 0.75f, tl, tr, d);
                         return Outputs{host_of(ctx, d)};
                       }});
    }
  }
}

// Dropout on sizes 1, 7 and 1000003, several drop probabilities and seeds. The keep bit is
// integer arithmetic on (seed, index), so mask, y and dx equal the CPU's exactly.
inline void add_dropout_cases(std::vector<OpCase>& cases) {
  const DropoutParams configs[] = {{0.0f, 1}, {0.1f, 2}, {0.5f, 0x123456789abcdefull}, {0.8f, ~0ull}};
  for (const DropoutParams& d : configs)
    for (const size_t n : {size_t{1}, size_t{7}, size_t{1000003}}) {
      const auto x = random_floats(n, 800 + n), dy = random_floats(n, 801 + n);
      cases.push_back({strfmt("dropout_fwd+bwd p %g seed %llu n %zu", static_cast<double>(d.p),
                              static_cast<unsigned long long>(d.seed), n),
                       {{"mask", true}, {"y", true}, {"dx", true}},
                       nullptr,
                       [=](Context& ctx) {
                         const Tensor tx = on(ctx, x), tdy = on(ctx, dy);
                         Tensor y = nan_on(ctx, n), mask = nan_on(ctx, n), dx = nan_on(ctx, n);
                         ops::dropout_fwd(ctx, d, tx, y, mask);
                         ops::dropout_bwd(ctx, tdy, mask, dx);
                         return Outputs{host_of(ctx, mask), host_of(ctx, y), host_of(ctx, dx)};
                       }});
    }
}

// The elementwise ops on sizes 1, 7 and 1000003, through aligned pointers (the float4 path)
// and one float past alignment (the scalar path); add also in place (the residual a += b).
// Against the CPU at 1e-6: one rounding per element on either side.
inline void add_elementwise_cases(std::vector<OpCase>& cases) {
  for (const size_t n : {size_t{1}, size_t{7}, size_t{1000003}})
    for (const size_t at : {size_t{0}, size_t{1}}) {
      const std::string shape = strfmt("n %zu %s", n, at ? "unaligned" : "aligned");
      const auto x = random_floats(n, 11 + n), dy = random_floats(n, 12 + n), b = random_floats(n, 22 + n);
      const auto y0 = random_floats(n, 32 + n);
      cases.push_back({"relu_fwd+bwd " + shape, {{"y", false, 1e-6}, {"dx", false, 1e-6}}, nullptr, [=](Context& ctx) {
                         const Tensor tx = on_at(ctx, x, at), tdy = on_at(ctx, dy, at);
                         Tensor y = on_at(ctx, poisoned(n), at), dx = on_at(ctx, poisoned(n), at);
                         ops::relu_fwd(ctx, tx, y);
                         ops::relu_bwd(ctx, y, tdy, dx);
                         return Outputs{host_of(ctx, y), host_of(ctx, dx)};
                       }});
      cases.push_back({"add " + shape, {{"y", false, 1e-6}, {"a += b", false, 1e-6}}, nullptr, [=](Context& ctx) {
                         Tensor ta = on_at(ctx, x, at), tb = on_at(ctx, b, at), y = on_at(ctx, poisoned(n), at);
                         ops::add(ctx, ta, tb, y);
                         ops::add(ctx, ta, tb, ta);
                         return Outputs{host_of(ctx, y), host_of(ctx, ta)};
                       }});
      cases.push_back({"axpy and fill " + shape,
                       {{"y += 0.37 x", false, 1e-6}, {"fill -1.25", false, 1e-6}},
                       nullptr,
                       [=](Context& ctx) {
                         const Tensor tx = on_at(ctx, x, at);
                         Tensor y = on_at(ctx, y0, at), f = on_at(ctx, poisoned(n), at);
                         ops::axpy(ctx, 0.37f, tx, y);
                         ops::fill(ctx, -1.25f, f);
                         return Outputs{host_of(ctx, y), host_of(ctx, f)};
                       }});
    }
}

// Doubles held as 8 bytes each in a U8 tensor (an accumulator, per-segment norms), on ctx's
// device, and back.
inline Tensor doubles_on(Context& ctx, const std::vector<double>& v) {
  std::vector<uint8_t> bytes(v.size() * sizeof(double));
  std::memcpy(bytes.data(), v.data(), bytes.size());
  return on(ctx, bytes);
}
inline std::vector<double> doubles_of(Context& ctx, const Tensor& t) {
  const Tensor h = t.to(Device::cpu(), ctx);
  ctx.synchronize();
  std::vector<double> v(static_cast<size_t>(h.numel()) / sizeof(double));
  std::memcpy(v.data(), h.raw(), v.size() * sizeof(double));
  return v;
}

// A double as two floats, its rounding and what the rounding left, so that an exact check of
// both compares about 48 bits of it; a NaN as the flag 1 (a NaN output never passes `exact`).
inline std::vector<float> split_double(double v) {
  if (std::isnan(v)) return {1.0f, 0.0f};
  const float hi = static_cast<float>(v);
  return {hi, static_cast<float>(v - hi)};
}

// The loss/accuracy accumulator on N = 1 … 257 rows and C = 1 … 100 columns, against labels
// and against target rows, from a random start and run twice (it adds). The loss sum is the
// reference's bit for bit on every backend (one thread adds in row order, as the
// specification does), so it and the hits are checked exactly. "ties": probabilities and
// targets on three levels, so most rows hold equal maxima and the first must win; "NaN": one
// row diverged (its loss and probabilities NaN), which must make the sum NaN.
inline void add_loss_accumulate_cases(std::vector<OpCase>& cases) {
  struct AccCase {
    XentShape s;
    bool ties, nan;
  };
  const AccCase shapes[] = {{{1, 1}, false, false},     {{1, 10}, false, false}, {{7, 10}, true, false},
                            {{257, 100}, false, false}, {{33, 37}, false, true}, {{300, 3}, true, false},
                            {{5, 1}, false, true}};
  uint64_t seed = 9000;
  for (const AccCase& ac : shapes)
    for (const bool soft : {false, true}) {
      const XentShape s = ac.s;
      seed += 10;
      const size_t nc = size_t(s.N) * s.C;
      std::vector<float> loss = random_floats(size_t(s.N), seed, 0.1f, 5.0f);
      std::vector<float> probs = random_floats(nc, seed + 1), targets = random_floats(nc, seed + 2);
      if (ac.ties)
        for (size_t i = 0; i < nc; ++i) {
          probs[i] = std::round(2.0f * probs[i]) / 2.0f;  // 0, 0.5 or 1 (from [0.1, 1))
          targets[i] = std::round(2.0f * targets[i]) / 2.0f;
        }
      if (ac.nan) {
        const int row = s.N / 2;
        loss[size_t(row)] = std::numeric_limits<float>::quiet_NaN();
        for (int c = 0; c < s.C; ++c) probs[size_t(row) * s.C + c] = std::numeric_limits<float>::quiet_NaN();
      }
      std::vector<int32_t> labels(size_t(s.N));
      for (int n = 0; n < s.N; ++n) labels[size_t(n)] = (5 * n + 2) % s.C;
      const std::vector<double> acc0 = {1.0 / 3.0 + static_cast<double>(seed), 17.0};
      const std::string name = strfmt("loss_accumulate N%d C%d %s%s%s", s.N, s.C, soft ? "targets" : "labels",
                                      ac.ties ? ", ties" : "", ac.nan ? ", NaN row" : "");
      cases.push_back({name,
                       {{"loss sum", true}, {"loss sum residue", true}, {"hits", true}},
                       [=] {
                         std::vector<double> acc = acc0;
                         const auto l = to_double(loss), p = to_double(probs), q = to_double(targets);
                         for (int pass = 0; pass < 2; ++pass)
                           loss_accumulate_ref(s, l.data(), p.data(), soft ? nullptr : labels.data(),
                                               soft ? q.data() : nullptr, acc.data());
                         const std::vector<float> sum = split_double(acc[0]);
                         return RefOutputs{{sum[0]}, {sum[1]}, {acc[1]}};
                       },
                       [=](Context& ctx) {
                         const Tensor tl = on(ctx, loss), tp = on(ctx, probs), tq = on(ctx, targets);
                         const Tensor ty = on(ctx, labels);
                         Tensor acc = doubles_on(ctx, acc0);
                         for (int pass = 0; pass < 2; ++pass)
                           ops::loss_accumulate(ctx, s, tl, tp, soft ? nullptr : &ty, soft ? &tq : nullptr, acc);
                         const std::vector<double> a = doubles_of(ctx, acc);
                         const std::vector<float> sum = split_double(a[0]);
                         return Outputs{{sum[0]}, {sum[1]}, {static_cast<float>(a[1])}};
                       }});
    }
}

// SAM's ascent over segment tables like a network's: one element; a bias-sized and a
// 300001-element segment (many grid strides), a gap between segments (e stays 0 there), an
// empty segment, one whose gradient is 0 and one whose weights are 0 (no move); with and
// without a pruning mask.
inline void add_sam_cases(std::vector<OpCase>& cases) {
  struct SamCase {
    const char* name;
    int64_t n;
    std::vector<int32_t> segments;
    int zero_g = -1, zero_w = -1;  // a segment whose g or w is all zero
  };
  const std::vector<SamCase> tables = {
      {"one element", 1, {0, 1}},
      {"bias and conv", 300001 + 64, {0, 64, 64, 300001 + 64}},
      {"gap, empty, zero g, zero w", 5000, {3, 700, 700, 700, 710, 2000, 2000, 2500, 2600, 4999}, 2, 3},
      {"many small", 7 * 33, {0, 33, 33, 66, 66, 99, 99, 132, 132, 165, 165, 198, 198, 231}},
  };
  uint64_t seed = 9500;
  for (const SamCase& tc : tables)
    for (const bool masked : {false, true}) {
      seed += 10;
      const SamShape s{tc.n, static_cast<int>(tc.segments.size() / 2)};
      const size_t n = static_cast<size_t>(tc.n);
      std::vector<float> w = random_floats(n, seed, -1.0f, 1.0f), g = random_floats(n, seed + 1, -0.1f, 0.1f);
      for (const auto& [l, v] : {std::pair{tc.zero_g, &g}, std::pair{tc.zero_w, &w}})
        if (l >= 0) std::fill(v->begin() + tc.segments[2 * l], v->begin() + tc.segments[2 * l + 1], 0.0f);
      std::vector<float> mask = random_floats(n, seed + 2);
      for (float& m : mask) m = m < 0.4f ? 0.0f : 1.0f;
      const std::vector<int32_t> segments = tc.segments;
      const double rho = 0.05;
      cases.push_back({strfmt("sam_ascent %s, n %lld%s", tc.name, static_cast<long long>(tc.n), masked ? ", mask" : ""),
                       {"e", "norms"},
                       [=] {
                         std::vector<double> e(n), norms(2 * size_t(s.segments));
                         const auto md = to_double(mask);
                         sam_ascent_ref(s, rho, to_double(w).data(), to_double(g).data(), segments.data(),
                                        masked ? md.data() : nullptr, norms.data(), e.data());
                         return RefOutputs{e, norms};
                       },
                       [=](Context& ctx) {
                         const Tensor tw = on(ctx, w), tg = on(ctx, g), tm = on(ctx, mask), tseg = on(ctx, segments);
                         Tensor norms = doubles_on(ctx, std::vector<double>(2 * size_t(s.segments), NAN));
                         Tensor e = nan_on(ctx, n);
                         ops::sam_ascent(ctx, s, rho, {tw, tg, tseg, masked ? &tm : nullptr, norms, e});
                         return Outputs{host_of(ctx, e), to_float(doubles_of(ctx, norms))};
                       }});
    }
}

// The whole table, built once.
inline const std::vector<OpCase>& op_table() {
  static const std::vector<OpCase> table = [] {
    std::vector<OpCase> cases;
    add_conv2d_cases(cases);
    add_linear_cases(cases);
    add_batchnorm_cases(cases);
    add_batchnorm_act_cases(cases);
    add_cpu_conv2d_algorithm_cases(cases);
    add_pool_cases(cases);
    add_shortcut_cases(cases);
    add_loss_cases(cases);
    add_dropout_cases(cases);
    add_elementwise_cases(cases);
    add_loss_accumulate_cases(cases);
    add_sam_cases(cases);
    return cases;
  }();
  return table;
}

// The cases of one op family ("conv2d", "linear"…), for suites that run a backend on a part.
inline bool op_is(const OpCase& c, const std::string& prefix) {
  return c.name.rfind(prefix, 0) == 0;
}

}  // namespace activeip::test
