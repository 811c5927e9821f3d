// Fully connected layer on the CPU, PyTorch layout (x N×IN, W OUT×IN, y N×OUT), on top of
// gemm_cpu: fprop y = x·Wᵀ (+ b, written into y first and kept by beta = 1), dgrad
// dx = dy·W, wgrad dW += dyᵀ·x (beta = 1 accumulates), db += Σ_n dy in double; the bf16
// functions run the same products through gemm_bf16_cpu.
// The *_ref functions are the plain double-precision specification.
#include "kernels/linear.h"

#include <algorithm>
#include <cstddef>
#include <vector>

#include "kernels/gemm.h"

namespace activeip {

namespace {

using Gemm = void (*)(const GemmShape&, const float*, const float*, float*);

void fwd(Gemm gemm, const LinearShape& s, const float* x, const float* w, const float* b, float* y) {
  if (b)
    for (int n = 0; n < s.N; ++n) std::copy(b, b + s.OUT, y + static_cast<size_t>(n) * s.OUT);
  GemmShape g = linear_fprop_gemm(s);
  g.beta = b ? 1.0f : 0.0f;
  gemm(g, x, w, y);
}

void bwd(Gemm gemm, const LinearShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
         float* db) {
  gemm(linear_dgrad_gemm(s), dy, w, dx);
  gemm(linear_wgrad_gemm(s), dy, x, dw);
  if (db) {
    std::vector<double> sum(s.OUT, 0.0);
    for (int n = 0; n < s.N; ++n)
      for (int o = 0; o < s.OUT; ++o) sum[o] += dy[static_cast<size_t>(n) * s.OUT + o];
    for (int o = 0; o < s.OUT; ++o) db[o] += static_cast<float>(sum[o]);
  }
}

}  // namespace

void linear_fwd_cpu(const LinearShape& s, const float* x, const float* w, const float* b, float* y) {
  fwd(gemm_cpu, s, x, w, b, y);
}

void linear_bwd_cpu(const LinearShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                    float* db) {
  bwd(gemm_cpu, s, x, w, dy, dx, dw, db);
}

void linear_fwd_bf16_cpu(const LinearShape& s, const float* x, const float* w, const float* b, float* y) {
  fwd(gemm_bf16_cpu, s, x, w, b, y);
}

void linear_bwd_bf16_cpu(const LinearShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                         float* db) {
  bwd(gemm_bf16_cpu, s, x, w, dy, dx, dw, db);
}

void linear_fwd_ref(const LinearShape& s, const double* x, const double* w, const double* b, double* y) {
  for (int n = 0; n < s.N; ++n)
    for (int o = 0; o < s.OUT; ++o) {
      double sum = b ? b[o] : 0.0;
      for (int i = 0; i < s.IN; ++i) sum += x[static_cast<size_t>(n) * s.IN + i] * w[static_cast<size_t>(o) * s.IN + i];
      y[static_cast<size_t>(n) * s.OUT + o] = sum;
    }
}

void linear_bwd_ref(const LinearShape& s, const double* x, const double* w, const double* dy, double* dx, double* dw,
                    double* db) {
  for (int n = 0; n < s.N; ++n)
    for (int i = 0; i < s.IN; ++i) {
      double sum = 0;
      for (int o = 0; o < s.OUT; ++o)
        sum += dy[static_cast<size_t>(n) * s.OUT + o] * w[static_cast<size_t>(o) * s.IN + i];
      dx[static_cast<size_t>(n) * s.IN + i] = sum;
    }
  for (int o = 0; o < s.OUT; ++o)
    for (int i = 0; i < s.IN; ++i) {
      double sum = 0;
      for (int n = 0; n < s.N; ++n)
        sum += dy[static_cast<size_t>(n) * s.OUT + o] * x[static_cast<size_t>(n) * s.IN + i];
      dw[static_cast<size_t>(o) * s.IN + i] += sum;
    }
  if (db)
    for (int o = 0; o < s.OUT; ++o) {
      double sum = 0;
      for (int n = 0; n < s.N; ++n) sum += dy[static_cast<size_t>(n) * s.OUT + o];
      db[o] += sum;
    }
}

}  // namespace activeip
