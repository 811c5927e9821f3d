// GPU suite: gemm_cuda and gemm_cublas against gemm_cpu in all four transpose combinations on
// sizes around the 64×64×16 tiles (1, 7, 10, 100, 513, …), with leading dimensions padded past
// the rows (the padding holds NaN, so a read of it would show); alpha and beta, beta == 0 over
// a NaN C, K == 0 (the linear layer on both paths is in the op table, test_cuda_ops.cpp).
// Outputs are poisoned with NaN.
#ifdef ACTIVEIP_CUDA

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "engine/core/context.h"
#include "engine/core/cuda_memory.h"
#include "kernels/gemm.h"
#include "kernels/vendor/vendor.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace activeip {
namespace {

using test::expect_close;
using test::poisoned;
using test::random_floats;
using test::to_device;
using test::to_host;

// fp32 on both sides, summed in different orders.
constexpr test::Tolerance kTol{.rel = 1e-5};

struct GemmCase {
  const char* name;
  int M, N, K;
};

const GemmCase kGemmCases[] = {
    {"1x1x1", 1, 1, 1},
    {"7x10x13", 7, 10, 13},
    {"100x1x7", 100, 1, 7},
    {"1x100x513", 1, 100, 513},
    {"one tile 64x64x16", 64, 64, 16},
    {"65x63x17 one past and short of the tile", 65, 63, 17},
    {"linear fprop 512x10x512", 512, 10, 512},
    {"linear wgrad 100x512x129", 100, 512, 129},
    {"200x130x300", 200, 130, 300},
};

// A rows×cols matrix stored with leading dimension ld ≥ cols: the values of `dense`
// (rows×cols, packed), and `fill` in the ld − cols padding of each row.
std::vector<float> pad_rows(const std::vector<float>& dense, int rows, int cols, int ld, float fill) {
  std::vector<float> out(static_cast<size_t>(rows) * ld, fill);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) out[static_cast<size_t>(r) * ld + c] = dense[static_cast<size_t>(r) * cols + c];
  return out;
}

// The rows×cols values of a matrix stored with leading dimension ld.
std::vector<float> unpad_rows(const std::vector<float>& stored, int rows, int cols, int ld) {
  std::vector<float> out(static_cast<size_t>(rows) * cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) out[static_cast<size_t>(r) * cols + c] = stored[static_cast<size_t>(r) * ld + c];
  return out;
}

// True when every padding element of `after` is bit-for-bit what it was in `before` (NaN included).
bool padding_untouched(const std::vector<float>& before, const std::vector<float>& after, int rows, int cols, int ld) {
  for (int r = 0; r < rows; ++r)
    for (int c = cols; c < ld; ++c) {
      const size_t i = static_cast<size_t>(r) * ld + c;
      if (!(before[i] == after[i] || (std::isnan(before[i]) && std::isnan(after[i])))) return false;
    }
  return true;
}

enum class Impl { Cuda, Cublas };

// One product through the implementation under test, on ctx's stream.
void run_gemm(Impl impl, VendorHandles& vendor, Context& ctx, const GemmShape& s, const float* A, const float* B,
              float* C) {
  if (impl == Impl::Cuda)
    gemm_cuda(s, A, B, C, ctx.stream());
  else
    gemm_cublas(vendor, s, A, B, C);
}

// op(A)·op(B) on the GPU with every operand padded by `pad` columns (NaN in A's and B's
// padding, C's initial values in C's), against gemm_cpu on packed copies.
void check_gemm(Impl impl, VendorHandles& vendor, Context& ctx, int M, int N, int K, bool trans_a, bool trans_b,
                int pad, float alpha, float beta, uint64_t seed) {
  const int a_rows = trans_a ? K : M, a_cols = trans_a ? M : K;
  const int b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
  const auto a = random_floats(static_cast<size_t>(a_rows) * a_cols, seed);
  const auto b = random_floats(static_cast<size_t>(b_rows) * b_cols, seed + 1);
  // beta == 0: C starts as NaN, which must not reach the result; otherwise random.
  const auto c0 =
      beta == 0.0f ? poisoned(static_cast<size_t>(M) * N) : random_floats(static_cast<size_t>(M) * N, seed + 2);

  std::vector<float> ref = c0;
  const GemmShape packed{.M = M,
                         .N = N,
                         .K = K,
                         .trans_a = trans_a,
                         .trans_b = trans_b,
                         .lda = std::max(1, a_cols),
                         .ldb = std::max(1, b_cols),
                         .ldc = std::max(1, N),
                         .alpha = alpha,
                         .beta = beta};
  gemm_cpu(packed, a.data(), b.data(), ref.data());

  const float nan = std::numeric_limits<float>::quiet_NaN();
  GemmShape s = packed;
  s.lda = std::max(1, a_cols + pad);
  s.ldb = std::max(1, b_cols + pad);
  s.ldc = N + pad;
  const auto a_stored = pad_rows(a, a_rows, a_cols, s.lda, nan);
  const auto b_stored = pad_rows(b, b_rows, b_cols, s.ldb, nan);
  const auto c_stored = pad_rows(c0, M, N, s.ldc, -7.0f);
  const auto d_a = to_device(a_stored, ctx), d_b = to_device(b_stored, ctx);
  auto d_c = to_device(c_stored, ctx);
  run_gemm(impl, vendor, ctx, s, d_a.data(), d_b.data(), d_c.data());
  const auto got = to_host(d_c, ctx);
  expect_close(unpad_rows(got, M, N, s.ldc), ref, kTol);
  CHECK(padding_untouched(c_stored, got, M, N, s.ldc));
}

std::string gemm_case_name(const GemmCase& c, bool trans_a, bool trans_b, int pad) {
  return std::string(c.name) + (trans_a ? " Aᵀ" : " A") + (trans_b ? " Bᵀ" : " B") + (pad ? " padded" : "");
}

void check_gemm_table(Impl impl) {
  Context ctx(Device::cuda());
  VendorHandles vendor(ctx.stream());
  for (const GemmCase& c : kGemmCases)
    for (const bool trans_a : {false, true})
      for (const bool trans_b : {false, true})
        for (const int pad : {0, 3}) SUBCASE(gemm_case_name(c, trans_a, trans_b, pad).c_str()) {
            const uint64_t seed = 1000 + 10 * static_cast<uint64_t>(&c - kGemmCases) + 4 * trans_a + 2 * trans_b;
            check_gemm(impl, vendor, ctx, c.M, c.N, c.K, trans_a, trans_b, pad, 1.0f, 0.0f, seed);
          }
}

void check_gemm_alpha_beta(Impl impl) {
  Context ctx(Device::cuda());
  VendorHandles vendor(ctx.stream());
  for (const bool trans_a : {false, true})
    for (const bool trans_b : {false, true}) {
      const std::string t = std::string(trans_a ? " Aᵀ" : " A") + (trans_b ? " Bᵀ" : " B");
      SUBCASE(("alpha 0.5 beta -1.5" + t).c_str()) {
        check_gemm(impl, vendor, ctx, 70, 33, 45, trans_a, trans_b, 2, 0.5f, -1.5f, 301);
      }
      SUBCASE(("alpha 2 beta 0 over NaN" + t).c_str()) {
        check_gemm(impl, vendor, ctx, 70, 33, 45, trans_a, trans_b, 2, 2.0f, 0.0f, 302);
      }
      SUBCASE(("beta 1 accumulates" + t).c_str()) {
        check_gemm(impl, vendor, ctx, 129, 65, 20, trans_a, trans_b, 0, 1.0f, 1.0f, 303);
      }
    }
  // An empty product: C = beta·C, and beta == 0 writes zeros over NaN.
  SUBCASE("K = 0, beta 0") {
    check_gemm(impl, vendor, ctx, 9, 5, 0, false, false, 1, 1.0f, 0.0f, 304);
  }
  SUBCASE("K = 0, beta 2") {
    check_gemm(impl, vendor, ctx, 9, 5, 0, true, true, 1, 1.0f, 2.0f, 305);
  }
}

}  // namespace

TEST_CASE("gemm_cuda matches gemm_cpu in all four transposes, padded and not") {
  check_gemm_table(Impl::Cuda);
}

TEST_CASE("gemm_cuda: alpha, beta, beta == 0 over NaN, K == 0") {
  check_gemm_alpha_beta(Impl::Cuda);
}

TEST_CASE("gemm_cuda rejects leading dimensions too small and accepts empty products") {
  Context ctx(Device::cuda());
  const GemmShape bad{.M = 4, .N = 4, .K = 8, .lda = 7, .ldb = 4, .ldc = 4};
  CHECK(test::error_of([&] { gemm_cuda(bad, nullptr, nullptr, nullptr, ctx.stream()); }).find("lda") !=
        std::string::npos);
  const GemmShape empty{.M = 0, .N = 4, .K = 8, .lda = 8, .ldb = 4, .ldc = 4};
  CHECK_NOTHROW(gemm_cuda(empty, nullptr, nullptr, nullptr, ctx.stream()));
  CHECK_NOTHROW(ctx.synchronize());
}

TEST_CASE("gemm_cublas matches gemm_cpu in all four transposes, padded and not") {
  check_gemm_table(Impl::Cublas);
}

TEST_CASE("gemm_cublas: alpha, beta, beta == 0 over NaN, K == 0") {
  check_gemm_alpha_beta(Impl::Cublas);
}

TEST_CASE("VendorHandles: one cuBLAS handle on the given stream, a workspace that grows") {
  Context ctx(Device::cuda());
  VendorHandles vendor(ctx.stream());
  cublasHandle_t h = vendor.cublas();
  CHECK(vendor.cublas() == h);
  cudaStream_t bound = nullptr;
  CUBLAS_CHECK(cublasGetStream(h, &bound));
  CHECK(bound == ctx.stream());
  cublasMath_t mode{};
  CUBLAS_CHECK(cublasGetMathMode(h, &mode));
  CHECK(mode == CUBLAS_DEFAULT_MATH);  // fp32 stays fp32: no TF32

  void* small = vendor.workspace(1024);
  CHECK(small != nullptr);
  CHECK(vendor.workspace(512) == small);  // a smaller request reuses the block
  void* large = vendor.workspace(size_t(1) << 20);
  CHECK(large != nullptr);
  CUDA_CHECK(cudaMemsetAsync(large, 0, size_t(1) << 20, ctx.stream()));  // all of it is usable
  CHECK_NOTHROW(ctx.synchronize());
}

}  // namespace activeip

#endif  // ACTIVEIP_CUDA
