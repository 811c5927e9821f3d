// The bf16 building blocks of the blocked CPU GEMM (gemm_blocked.h, namespace bf16): packing
// fp32 operands into rounded bf16 pairs (VCVTNE2PS2BF16: round to nearest even) and the
// 14×32 VDPBF16PS micro-kernel that accumulates their products in fp32. These functions carry
// their own target attribute, so that a build for any x86-64 CPU has them; they run only where
// cpu_has_avx512_bf16() says so, which every public bf16 entry point checks first.
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "kernels/bf16.h"
#include "kernels/cpu/gemm_blocked.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ACTIVEIP_BF16_X86 1
#include <immintrin.h>
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#endif

namespace activeip {

bool cpu_has_avx512_bf16() {
#ifdef ACTIVEIP_BF16_X86
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

namespace cpu::bf16 {

namespace {

#ifdef ACTIVEIP_BF16_X86

// lo and hi (x < n) rounded to bf16 and paired: dst[x] = bf16(lo[x]) | bf16(hi[x]) << 16; a
// null hi pairs with zero (an odd reduction's padding).
BF16_TARGET void pair_words(const float* lo, const float* hi, int n, uint32_t* dst) {
  // cvtne2ps puts lo's 16 values in the low half and hi's in the high half; the permutation
  // interleaves them (lo0, hi0, lo1, hi1, …).
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                              6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  for (int x = 0; x < n; x += 16) {
    const __mmask16 m = n - x >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - x)) - 1);
    const __m512 l = _mm512_maskz_loadu_ps(m, lo + x);
    const __m512 h = hi ? _mm512_maskz_loadu_ps(m, hi + x) : _mm512_setzero_ps();
    const __m512i v = (__m512i)_mm512_cvtne2ps_pbh(h, l);
    _mm512_mask_storeu_epi32(dst + x, m, _mm512_permutexvar_epi16(interleave, v));
  }
}

// src[0, kc) rounded to bf16, consecutive pairs in one word each (k_pairs(kc) words; an odd
// kc ends with a zero): bf16 values in order are already the pair layout.
BF16_TARGET void row_words(const float* src, int kc, uint32_t* dst) {
  for (int k = 0; k < kc; k += 32) {
    const int left = kc - k;
    const __mmask16 m0 = left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1);
    const __mmask16 m1 = left >= 32 ? 0xFFFF : left <= 16 ? 0 : static_cast<__mmask16>((1u << (left - 16)) - 1);
    const __m512 l = _mm512_maskz_loadu_ps(m0, src + k), h = _mm512_maskz_loadu_ps(m1, src + k + 16);
    const int words = std::min(16, (left + 1) / 2);
    _mm512_mask_storeu_epi32(dst + k / 2, static_cast<__mmask16>((1u << words) - 1),
                             (__m512i)_mm512_cvtne2ps_pbh(h, l));
  }
}

// 28 fp32 accumulators across the k pairs; each step broadcasts one A word (a row's pair)
// against two B vectors of 16 columns' pairs. Stores as the fp32 AVX-512 kernel does.
template <bool kKMajor>
BF16_TARGET void micro_kernel_avx512(int pairs, const uint32_t* a, long lda, const uint32_t* b, float* c, long ldc,
                                     int mr, int nr, float alpha, float beta) {
  __m512 acc[kMR][2];
#pragma GCC unroll 16
  for (int i = 0; i < kMR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int kp = 0; kp < pairs; ++kp) {
    const __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16);
#pragma GCC unroll 16
    for (int i = 0; i < kMR; ++i) {
      const __m512bh ai = (__m512bh)_mm512_set1_epi32(static_cast<int>(kKMajor ? a[i] : a[i * lda]));
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
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

#else

[[noreturn]] void no_bf16() {
  ENSURE(false, "the bf16 kernels need an x86-64 CPU with AVX512-BF16");
}
void pair_words(const float*, const float*, int, uint32_t*) {
  no_bf16();
}
void row_words(const float*, int, uint32_t*) {
  no_bf16();
}

#endif

}  // namespace

void micro_kernel(int kc, PackedA a, const uint32_t* b, float* c, long ldc, int mr, int nr, float alpha, float beta) {
#ifdef ACTIVEIP_BF16_X86
  if (a.k_major)
    micro_kernel_avx512<true>(k_pairs(kc), a.ptr, a.ld, b, c, ldc, mr, nr, alpha, beta);
  else
    micro_kernel_avx512<false>(k_pairs(kc), a.ptr, a.ld, b, c, ldc, mr, nr, alpha, beta);
#else
  (void)kc, (void)a, (void)b, (void)c, (void)ldc, (void)mr, (void)nr, (void)alpha, (void)beta;
  no_bf16();
#endif
}

// Leading dimensions as padded_ld gives them (an odd number of cache lines, so that a
// sliver's rows do not share L1 sets), in words.
size_t packed_a_size(int m, int kc) {
  const int rows = round_up(m, kMR);
  return std::max(size_t(rows) * padded_ld(k_pairs(kc)), size_t(k_pairs(kc)) * padded_ld(rows));
}

PackedA pack_a(AView a, int m, int kc, uint32_t* dst) {
  const int rows = round_up(m, kMR), pairs = k_pairs(kc);
  if (a.k_major) {  // rows k and k+1 of the view pair up over i
    const int ld = padded_ld(rows);
    for (int kp = 0; kp < pairs; ++kp) {
      const float* lo = a.ptr + long(2 * kp) * a.ld;
      uint32_t* d = dst + size_t(kp) * ld;
      pair_words(lo, 2 * kp + 1 < kc ? lo + a.ld : nullptr, m, d);
      std::fill(d + m, d + rows, 0u);
    }
    return {dst, ld, true};
  }
  const int ld = padded_ld(pairs);
  for (int i = 0; i < m; ++i) row_words(a.ptr + long(i) * a.ld, kc, dst + size_t(i) * ld);
  std::fill(dst + size_t(m) * ld, dst + size_t(rows) * ld, 0u);
  return {dst, ld, false};
}

void pack_b(const float* B, long ldb, bool trans, int p0, int kc, int j0, int n, uint32_t* dst) {
  const int pairs = k_pairs(kc);
  thread_local BasicScratch<uint32_t> column;
  uint32_t* col = trans ? column.get(size_t(pairs)) : nullptr;
  for (int j = 0; j < n; j += kNR) {
    const int nr = std::min(kNR, n - j);
    uint32_t* d = dst + size_t(j / kNR) * pairs * kNR;
    if (trans) {  // column t of op(B) is row j0+j+t of B: its pairs, then spread over the k pairs
      for (int t = 0; t < nr; ++t) {
        row_words(B + long(j0 + j + t) * ldb + p0, kc, col);
        for (int kp = 0; kp < pairs; ++kp) d[kp * kNR + t] = col[kp];
      }
      if (nr < kNR)
        for (int kp = 0; kp < pairs; ++kp) std::fill(d + kp * kNR + nr, d + (kp + 1) * kNR, 0u);
    } else {  // rows k and k+1 of B pair up over the sliver's columns
      for (int kp = 0; kp < pairs; ++kp) {
        const float* lo = B + long(p0 + 2 * kp) * ldb + (j0 + j);
        pair_words(lo, 2 * kp + 1 < kc ? lo + ldb : nullptr, nr, d + kp * kNR);
        std::fill(d + kp * kNR + nr, d + (kp + 1) * kNR, 0u);
      }
    }
  }
}

size_t prepacked_b_size(int K, int N) {
  return size_t(k_pairs(K)) * round_up(N, kNR);
}

void prepack_b(const float* B, long ldb, bool trans, int K, int N, uint32_t* dst) {
  const int kb = k_block(K), blocks = (K + kb - 1) / kb;
#pragma omp parallel for if (!omp_in_parallel() && double(K) * N > 1e5)
  for (int blk = 0; blk < blocks; ++blk) {
    const int p0 = blk * kb, kc = std::min(kb, K - p0);
    pack_b(B, ldb, trans, p0, kc, 0, N, dst + size_t(p0 / 2) * round_up(N, kNR));
  }
}

}  // namespace cpu::bf16

}  // namespace activeip
