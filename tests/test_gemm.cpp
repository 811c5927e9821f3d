// gemm_cpu against the double triple loop gemm_ref: every transpose combination, awkward
// sizes around the register tile, alpha/beta, leading dimensions beyond the minimum (whose
// padding holds NaN and must be neither read nor written), NaN in C with beta = 0, and
// bit-identical results for 1 and 2 OpenMP threads.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/gemm.h"
#include "tests/test_util.h"

namespace activeip {
namespace {

using test::expect_close;
using test::random_floats;
using test::to_double;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// A rows×cols row-major matrix with leading dimension ld ≥ cols; the padding is NaN.
std::vector<float> padded_matrix(int rows, int cols, int ld, uint64_t seed) {
  std::vector<float> m(size_t(rows) * ld, kNaN);
  const auto v = random_floats(size_t(rows) * cols, seed);
  for (int r = 0; r < rows; ++r) std::memcpy(&m[size_t(r) * ld], &v[size_t(r) * cols], sizeof(float) * cols);
  return m;
}

// Runs gemm_cpu and gemm_ref on the same random inputs and compares the valid part of C;
// padding columns of C must come back untouched (NaN).
void check_gemm(GemmShape s, int pad, uint64_t seed) {
  const int a_rows = s.trans_a ? s.K : s.M, a_cols = s.trans_a ? s.M : s.K;
  const int b_rows = s.trans_b ? s.N : s.K, b_cols = s.trans_b ? s.K : s.N;
  s.lda = a_cols + pad;
  s.ldb = b_cols + pad;
  s.ldc = s.N + pad;
  const auto A = padded_matrix(a_rows, a_cols, s.lda, seed);
  const auto B = padded_matrix(b_rows, b_cols, s.ldb, seed + 1);
  auto C = s.beta != 0.0f ? padded_matrix(s.M, s.N, s.ldc, seed + 2) : test::poisoned(size_t(s.M) * s.ldc);
  auto C_ref = to_double(C);
  gemm_cpu(s, A.data(), B.data(), C.data());
  gemm_ref(s, to_double(A).data(), to_double(B).data(), C_ref.data());

  std::vector<float> got;
  std::vector<double> want;
  bool padding_untouched = true;
  for (int i = 0; i < s.M; ++i)
    for (int j = 0; j < s.ldc; ++j) {
      const size_t at = size_t(i) * s.ldc + j;
      if (j < s.N)
        got.push_back(C[at]), want.push_back(C_ref[at]);
      else
        padding_untouched = padding_untouched && std::isnan(C[at]);
    }
  expect_close(got, want);
  CHECK(padding_untouched);
}

struct Dims {
  int M, N, K;
};

const Dims kDims[] = {{1, 1, 1},    {7, 13, 5},   {13, 7, 65},   {65, 129, 7},   {129, 65, 300},
                      {1, 129, 65}, {129, 1, 65}, {31, 33, 513}, {100, 96, 256}, {200, 70, 1}};

TEST_CASE("gemm_cpu matches gemm_ref for all transposes and awkward sizes") {
  uint64_t seed = 1;
  for (const bool ta : {false, true})
    for (const bool tb : {false, true})
      for (const Dims d : kDims) {
        CAPTURE(ta);
        CAPTURE(tb);
        CAPTURE(d.M);
        CAPTURE(d.N);
        CAPTURE(d.K);
        GemmShape s{.M = d.M, .N = d.N, .K = d.K, .trans_a = ta, .trans_b = tb};
        check_gemm(s, 0, seed++);
        check_gemm(s, 3, seed++);
      }
}

TEST_CASE("gemm_cpu alpha and beta") {
  const struct {
    float alpha, beta;
  } cases[] = {{1.0f, 0.0f}, {0.5f, 0.0f}, {1.0f, 1.0f}, {-1.5f, 0.25f}, {2.0f, -1.0f}};
  uint64_t seed = 100;
  for (const auto ab : cases)
    for (const Dims d : {Dims{65, 129, 300}, Dims{7, 13, 5}, Dims{1, 40, 17}}) {
      CAPTURE(ab.alpha);
      CAPTURE(ab.beta);
      CAPTURE(d.M);
      GemmShape s{.M = d.M, .N = d.N, .K = d.K, .trans_a = (seed & 1) != 0, .trans_b = (seed & 2) != 0};
      s.alpha = ab.alpha;
      s.beta = ab.beta;
      check_gemm(s, 2, seed++);
    }
}

TEST_CASE("gemm_cpu with beta 0 ignores NaN in C") {
  GemmShape s{.M = 37, .N = 45, .K = 300, .lda = 300, .ldb = 45, .ldc = 45};
  const auto A = random_floats(size_t(s.M) * s.K, 7), B = random_floats(size_t(s.K) * s.N, 8);
  auto C = test::poisoned(size_t(s.M) * s.N);
  std::vector<double> C_ref(C.size());
  gemm_cpu(s, A.data(), B.data(), C.data());
  gemm_ref(s, to_double(A).data(), to_double(B).data(), C_ref.data());
  expect_close(C, C_ref);
}

TEST_CASE("gemm_cpu with K = 0 scales C by beta") {
  GemmShape s{.M = 3, .N = 4, .K = 0, .lda = 1, .ldb = 4, .ldc = 4, .beta = 0.5f};
  const float dummy = 1.0f;
  auto C = random_floats(12, 9);
  const auto C0 = C;
  gemm_cpu(s, &dummy, &dummy, C.data());
  for (size_t i = 0; i < C.size(); ++i) CHECK(C[i] == 0.5f * C0[i]);
  s.beta = 0.0f;
  C = test::poisoned(12);
  gemm_cpu(s, &dummy, &dummy, C.data());
  for (const float c : C) CHECK(c == 0.0f);
}

TEST_CASE("gemm_cpu results do not depend on the thread count") {
  const int saved = omp_get_max_threads();
  for (const bool ta : {false, true})
    for (const bool tb : {false, true}) {
      CAPTURE(ta);
      CAPTURE(tb);
      GemmShape s{.M = 301, .N = 203, .K = 700, .trans_a = ta, .trans_b = tb};
      s.lda = ta ? s.M : s.K;
      s.ldb = tb ? s.K : s.N;
      s.ldc = s.N;
      s.beta = 0.5f;
      const auto A = random_floats(size_t(s.M) * s.K, 11), B = random_floats(size_t(s.K) * s.N, 12);
      const auto C0 = random_floats(size_t(s.M) * s.N, 13);
      auto C1 = C0, C2 = C0;
      omp_set_num_threads(1);
      gemm_cpu(s, A.data(), B.data(), C1.data());
      omp_set_num_threads(2);
      gemm_cpu(s, A.data(), B.data(), C2.data());
      CHECK(std::memcmp(C1.data(), C2.data(), sizeof(float) * C1.size()) == 0);
    }
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace activeip
