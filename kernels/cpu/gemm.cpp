// CPU GEMM, row-major C = alpha·op(A)·op(B) + beta·C (kernels/gemm.h). The fast path splits C
// into tiles that OpenMP threads take whole; per tile and reduction block, op(A) is copied
// (keeping its orientation) and op(B) packed into thread-local buffers, then an MR×NR
// register-blocked micro-kernel (AVX-512, AVX2+FMA or scalar) sweeps the tile. gemm_bf16_cpu
// runs the same tiling on bf16 operands (gemm_blocked.h's bf16 flavour, gemm_bf16.cpp).
#include "kernels/gemm.h"

#include <omp.h>

#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "base/error.h"
#include "kernels/bf16.h"
#include "kernels/cpu/gemm_blocked.h"

namespace activeip {
namespace cpu {

#if defined(__AVX512F__)

// 28 accumulators live in zmm registers across the k loop; A values are broadcast straight
// from memory. Partial tiles store (and, for beta != 0, load) C through lane masks.
template <bool kKMajor>
static void micro_kernel_avx512(int kc, const float* a, long lda, const float* b, float* c, long ldc, int mr, int nr,
                                float alpha, float beta) {
  __m512 acc[kMR][2];
#pragma GCC unroll 16
  for (int i = 0; i < kMR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 16
    for (int i = 0; i < kMR; ++i) {
      const __m512 ai = _mm512_set1_ps(kKMajor ? a[i] : a[i * lda]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += kKMajor ? lda : 1;
    b += kNR;
  }
  const __mmask16 m0 = nr >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << nr) - 1);
  const __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : static_cast<__mmask16>((1u << (nr - 16)) - 1);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
  for (int i = 0; i < kMR; ++i) {
    if (i >= mr) break;
    float* ci = c + i * ldc;
    __m512 v0, v1;
    if (beta != 0.0f) {
      v0 = _mm512_fmadd_ps(va, acc[i][0], _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m0, ci)));
      v1 = _mm512_fmadd_ps(va, acc[i][1], _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16)));
    } else {
      v0 = _mm512_mul_ps(va, acc[i][0]);
      v1 = _mm512_mul_ps(va, acc[i][1]);
    }
    _mm512_mask_storeu_ps(ci, m0, v0);
    _mm512_mask_storeu_ps(ci + 16, m1, v1);
  }
}

#elif defined(__AVX2__) && defined(__FMA__)

// 12 ymm accumulators; partial tiles go through a local tile so that only valid C is touched.
template <bool kKMajor>
static void micro_kernel_avx2(int kc, const float* a, long lda, const float* b, float* c, long ldc, int mr, int nr,
                              float alpha, float beta) {
  __m256 acc[kMR][2];
#pragma GCC unroll 8
  for (int i = 0; i < kMR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 8
    for (int i = 0; i < kMR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(kKMajor ? a + i : a + i * lda);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += kKMajor ? lda : 1;
    b += kNR;
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  const bool full = nr == kNR;
  alignas(32) float tile[kNR];
  for (int i = 0; i < mr; ++i) {
    float* ci = c + i * ldc;
    float* dst = full ? ci : tile;
    if (!full && beta != 0.0f) std::memcpy(tile, ci, sizeof(float) * nr);
    __m256 v0, v1;
    if (beta != 0.0f) {
      v0 = _mm256_fmadd_ps(va, acc[i][0], _mm256_mul_ps(vb, _mm256_loadu_ps(dst)));
      v1 = _mm256_fmadd_ps(va, acc[i][1], _mm256_mul_ps(vb, _mm256_loadu_ps(dst + 8)));
    } else {
      v0 = _mm256_mul_ps(va, acc[i][0]);
      v1 = _mm256_mul_ps(va, acc[i][1]);
    }
    _mm256_storeu_ps(dst, v0);
    _mm256_storeu_ps(dst + 8, v1);
    if (!full) std::memcpy(ci, tile, sizeof(float) * nr);
  }
}

#else

template <bool kKMajor>
static void micro_kernel_scalar(int kc, const float* a, long lda, const float* b, float* c, long ldc, int mr, int nr,
                                float alpha, float beta) {
  float acc[kMR][kNR] = {};
  for (int k = 0; k < kc; ++k) {
    for (int i = 0; i < kMR; ++i) {
      const float ai = kKMajor ? a[i] : a[i * lda];
      for (int j = 0; j < kNR; ++j) acc[i][j] += ai * b[j];
    }
    a += kKMajor ? lda : 1;
    b += kNR;
  }
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nr; ++j) {
      float& cij = c[i * ldc + j];
      cij = beta != 0.0f ? alpha * acc[i][j] + beta * cij : alpha * acc[i][j];
    }
}

#endif

void micro_kernel(int kc, AView a, const float* b, float* c, long ldc, int mr, int nr, float alpha, float beta) {
#if defined(__AVX512F__)
  if (a.k_major)
    micro_kernel_avx512<true>(kc, a.ptr, a.ld, b, c, ldc, mr, nr, alpha, beta);
  else
    micro_kernel_avx512<false>(kc, a.ptr, a.ld, b, c, ldc, mr, nr, alpha, beta);
#elif defined(__AVX2__) && defined(__FMA__)
  if (a.k_major)
    micro_kernel_avx2<true>(kc, a.ptr, a.ld, b, c, ldc, mr, nr, alpha, beta);
  else
    micro_kernel_avx2<false>(kc, a.ptr, a.ld, b, c, ldc, mr, nr, alpha, beta);
#else
  if (a.k_major)
    micro_kernel_scalar<true>(kc, a.ptr, a.ld, b, c, ldc, mr, nr, alpha, beta);
  else
    micro_kernel_scalar<false>(kc, a.ptr, a.ld, b, c, ldc, mr, nr, alpha, beta);
#endif
}

void pad_a_sliver(AView a, int mr, int kc, float* dst) {
  for (int k = 0; k < kc; ++k) {
    float* d = dst + size_t(k) * kMR;
    for (int i = 0; i < mr; ++i) d[i] = a.k_major ? a.ptr[k * a.ld + i] : a.ptr[i * a.ld + k];
    for (int i = mr; i < kMR; ++i) d[i] = 0.0f;
  }
}

AView copy_a_block(AView a, int m, int kc, float* dst) {
  if (a.k_major) {
    const int ld = padded_ld(m);
    for (int k = 0; k < kc; ++k) copy_floats(dst + size_t(k) * ld, a.ptr + k * a.ld, m);
    return {dst, ld, true};
  }
  const int ld = padded_ld(kc);
  for (int i = 0; i < m; ++i) copy_floats(dst + size_t(i) * ld, a.ptr + i * a.ld, kc);
  return {dst, ld, false};
}

#if defined(__AVX512F__)
// Loads a 16×16 block src[i*lds + c] and returns its columns: t[c][i] = src[i*lds + c]. In
// registers: pairs of rows interleave, then 4-float groups, then 128-bit lanes twice. The
// full-mask maskz forms compile to the plain instructions; the plain intrinsics' undefined
// pass-through operand makes GCC 12 warn falsely of uninitialized use.
static inline void transpose_16x16(const float* src, long lds, __m512 t[16]) {
  constexpr __mmask16 all = 0xFFFF;
  __m512 r[16], u[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
  for (int i = 0; i < 16; i += 2) {
    u[i] = _mm512_maskz_unpacklo_ps(all, r[i], r[i + 1]);
    u[i + 1] = _mm512_maskz_unpackhi_ps(all, r[i], r[i + 1]);
  }
  // r[4g + c] now holds, in 128-bit lane L, column 4L + c of rows 4g..4g+3.
  for (int g = 0; g < 16; g += 4) {
    r[g] = _mm512_maskz_shuffle_ps(all, u[g], u[g + 2], 0x44);
    r[g + 1] = _mm512_maskz_shuffle_ps(all, u[g], u[g + 2], 0xEE);
    r[g + 2] = _mm512_maskz_shuffle_ps(all, u[g + 1], u[g + 3], 0x44);
    r[g + 3] = _mm512_maskz_shuffle_ps(all, u[g + 1], u[g + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    u[c] = _mm512_maskz_shuffle_f32x4(all, r[c], r[4 + c], 0x88);
    u[c + 4] = _mm512_maskz_shuffle_f32x4(all, r[c], r[4 + c], 0xDD);
    u[c + 8] = _mm512_maskz_shuffle_f32x4(all, r[8 + c], r[12 + c], 0x88);
    u[c + 12] = _mm512_maskz_shuffle_f32x4(all, r[8 + c], r[12 + c], 0xDD);
  }
  for (int c = 0; c < 4; ++c) {
    t[c] = _mm512_maskz_shuffle_f32x4(all, u[c], u[c + 8], 0x88);
    t[c + 8] = _mm512_maskz_shuffle_f32x4(all, u[c], u[c + 8], 0xDD);
    t[c + 4] = _mm512_maskz_shuffle_f32x4(all, u[c + 4], u[c + 12], 0x88);
    t[c + 12] = _mm512_maskz_shuffle_f32x4(all, u[c + 4], u[c + 12], 0xDD);
  }
}
#endif

void pack_b(const float* B, long ldb, bool trans, int p0, int kc, int j0, int n, float* dst) {
  for (int j = 0; j < n; j += kNR) {
    const int nr = std::min(kNR, n - j);
    float* d = dst + size_t(j / kNR) * kc * kNR;
    if (trans) {  // 16 k at a time: one cache line of each B row in, 2 KB of sliver out (L1)
      for (int k0 = 0; k0 < kc; k0 += 16) {
        const int kn = std::min(16, kc - k0);
        int t = 0;
#if defined(__AVX512F__)
        for (; kn == 16 && t + 16 <= nr; t += 16) {
          __m512 cols[16];
          transpose_16x16(B + long(j0 + j + t) * ldb + p0 + k0, ldb, cols);
          for (int k = 0; k < 16; ++k) _mm512_storeu_ps(d + (k0 + k) * kNR + t, cols[k]);
        }
#endif
        for (; t < nr; ++t) {
          const float* src = B + long(j0 + j + t) * ldb + p0 + k0;
          for (int k = 0; k < kn; ++k) d[(k0 + k) * kNR + t] = src[k];
        }
      }
      if (nr < kNR)
        for (int k = 0; k < kc; ++k) zero_floats(d + k * kNR + nr, kNR - nr);
    } else {
      for (int k = 0; k < kc; ++k) {
        copy_floats(d + k * kNR, B + long(p0 + k) * ldb + (j0 + j), nr);
        if (nr < kNR) zero_floats(d + k * kNR + nr, kNR - nr);
      }
    }
  }
}

void add_transposed(const float* src, long lds, int rows, int cols, float* dst, long ldd) {
  for (int r0 = 0; r0 < rows; r0 += 16)
    for (int c0 = 0; c0 < cols; c0 += 16) {
      const int rn = std::min(16, rows - r0), cn = std::min(16, cols - c0);
#if defined(__AVX512F__)
      if (rn == 16 && cn == 16) {
        __m512 t[16];
        transpose_16x16(src + r0 * lds + c0, lds, t);
        for (int c = 0; c < 16; ++c) {
          float* d = dst + (c0 + c) * ldd + r0;
          _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), t[c]));
        }
        continue;
      }
#endif
      for (int c = c0; c < c0 + cn; ++c)
        for (int r = r0; r < r0 + rn; ++r) dst[c * ldd + r] += src[r * lds + c];
    }
}

size_t prepacked_b_size(int K, int N) {
  return size_t(K) * round_up(N, kNR);
}

void prepack_b(const float* B, long ldb, bool trans, int K, int N, float* dst) {
  const int kb = k_block(K), blocks = (K + kb - 1) / kb;
#pragma omp parallel for if (!omp_in_parallel() && double(K) * N > 1e5)
  for (int blk = 0; blk < blocks; ++blk) {
    const int p0 = blk * kb, kc = std::min(kb, K - p0);
    pack_b(B, ldb, trans, p0, kc, 0, N, dst + size_t(p0) * round_up(N, kNR));
  }
}

}  // namespace cpu

void gemm_check_shape(const GemmShape& s) {
  const int M = s.M, N = s.N, K = s.K;
  ENSURE(M >= 0 && N >= 0 && K >= 0, "gemm M=%d N=%d K=%d", M, N, K);
  ENSURE(s.lda >= std::max(1, s.trans_a ? M : K), "gemm lda %d too small (M=%d K=%d trans_a=%d)", s.lda, M, K,
         int(s.trans_a));
  ENSURE(s.ldb >= std::max(1, s.trans_b ? K : N), "gemm ldb %d too small (K=%d N=%d trans_b=%d)", s.ldb, K, N,
         int(s.trans_b));
  ENSURE(s.ldc >= std::max(1, N), "gemm ldc %d < N=%d", s.ldc, N);
}

namespace {

// The blocked driver for either operand precision (gemm_blocked.h's F32Ops / Bf16Ops).
template <class Ops>
void gemm_blocked(const GemmShape& s, const float* A, const float* B, float* C) {
  gemm_check_shape(s);
  const int M = s.M, N = s.N, K = s.K;
  if (M == 0 || N == 0) return;
  if (K == 0) {  // op(A)·op(B) is empty: C = beta·C, and beta == 0 must not read C.
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) {
        float& c = C[long(i) * s.ldc + j];
        c = s.beta != 0.0f ? s.beta * c : 0.0f;
      }
    return;
  }
  // Tiles of C: columns in parts of at most 8 B slivers (a packed B block of kKC × 256
  // floats stays in L2), rows in parts of at most 32 A slivers (B is repacked per row part,
  // so tall parts repack less), as many as it takes to give every thread a few tiles.
  const bool parallel = !omp_in_parallel() && s.flops() > 2e5;
  const int threads = parallel ? omp_get_max_threads() : 1;
  const int units_m = cpu::units_of(M, Ops::MR), units_n = cpu::units_of(N, Ops::NR);
  const int tiles_n = cpu::units_of(units_n, 8);
  const int tiles_m = cpu::part_count(units_m, std::max(1, 4 * threads / tiles_n), 32);
#pragma omp parallel for schedule(dynamic) if (parallel)
  for (int tile = 0; tile < tiles_m * tiles_n; ++tile) {
    thread_local cpu::Scratch abuf;
    thread_local cpu::BasicScratch<typename Ops::BWord> bbuf;
    // Plain variables, not structured bindings: the lambdas below capture them (clang before
    // 16 does not capture bindings).
    const cpu::Range rm = cpu::part_range(tile / tiles_n, tiles_m, units_m, Ops::MR, M);
    const cpu::Range rn = cpu::part_range(tile % tiles_n, tiles_n, units_n, Ops::NR, N);
    const int i0 = rm.begin, m = rm.size, j0 = rn.begin, n = rn.size;
    float* a_copy = abuf.get(std::max(size_t(m) * cpu::padded_ld(cpu::kKC), size_t(cpu::kKC) * cpu::padded_ld(m)));
    typename Ops::BWord* b_packed = bbuf.get(Ops::packed_b_size(cpu::kKC, n));
    auto get_a = [&](int p0, int kc) {
      return Ops::stage_a(s.trans_a ? cpu::AView{A + long(p0) * s.lda + i0, s.lda, true}
                                    : cpu::AView{A + long(i0) * s.lda + p0, s.lda, false},
                          m, kc, a_copy);
    };
    auto get_b = [&](int p0, int kc) {
      Ops::pack_b(B, s.ldb, s.trans_b, p0, kc, j0, n, b_packed);
      return static_cast<const typename Ops::BWord*>(b_packed);
    };
    Ops::tile(m, n, K, get_a, get_b, s.alpha, s.beta, C + long(i0) * s.ldc + j0, s.ldc);
  }
}

}  // namespace

void gemm_cpu(const GemmShape& s, const float* A, const float* B, float* C) {
  gemm_blocked<cpu::F32Ops>(s, A, B, C);
}

void gemm_bf16_cpu(const GemmShape& s, const float* A, const float* B, float* C) {
  ENSURE(cpu_has_avx512_bf16(), "the bf16 kernels need a CPU with AVX512-BF16 (this one has none)");
  gemm_blocked<cpu::Bf16Ops>(s, A, B, C);
}

void gemm_ref(const GemmShape& s, const double* A, const double* B, double* C) {
  for (int i = 0; i < s.M; ++i)
    for (int j = 0; j < s.N; ++j) {
      double sum = 0;
      for (int k = 0; k < s.K; ++k) {
        const double a = s.trans_a ? A[long(k) * s.lda + i] : A[long(i) * s.lda + k];
        const double b = s.trans_b ? B[long(j) * s.ldb + k] : B[long(k) * s.ldb + j];
        sum += a * b;
      }
      double& c = C[long(i) * s.ldc + j];
      c = s.beta != 0.0 ? s.alpha * sum + s.beta * c : s.alpha * sum;
    }
}

}  // namespace activeip
