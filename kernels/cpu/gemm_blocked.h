// Building blocks of the blocked CPU GEMM, shared by gemm.cpp and conv2d.cpp: the register
// tile, the packed-B layout, the micro-kernel and a serial driver for one C tile, on fp32
// operands and on bf16 ones (fp32 accumulation). Callers supply op(A) blocks as strided fp32
// views and op(B) blocks already packed, so conv2d can feed im2col gathers straight into
// them. Private to kernels/cpu.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace activeip::cpu {

// Register tile MR×NR of the micro-kernel. AVX-512: 14×32 keeps 28 zmm accumulators, two
// B vectors and one broadcast A value in the 32 registers. AVX2: 6×16 uses 12 of 16 ymm.
#if defined(__AVX512F__)
inline constexpr int kMR = 14, kNR = 32;
#elif defined(__AVX2__) && defined(__FMA__)
inline constexpr int kMR = 6, kNR = 16;
#else
inline constexpr int kMR = 4, kNR = 8;
#endif

// The reduction is summed in blocks of at most kKC, each in registers and then folded into
// C. The blocks depend on the reduction length alone (equal blocks, so none is a short
// leftover), which fixes the summation order of every element of C; tile sizes and thread
// counts only decide which thread computes it. 256 keeps an A sliver (14×256 floats) in L1
// while B slivers stream from L2.
inline constexpr int kKC = 256;

inline int round_up(int v, int m) {
  return (v + m - 1) / m * m;
}

// Length of the reduction blocks for a reduction of length K (the last may be shorter).
inline int k_block(int K) {
  const int blocks = std::max(1, (K + kKC - 1) / kKC);
  return round_up((K + blocks - 1) / blocks, 8);
}

// Work splitting for the OpenMP loops: `units` (register-tile rows or columns) are cut into
// part_count() near-equal parts, part p covering [part_begin(p), part_begin(p+1)). The count
// is a multiple of `threads` where possible and keeps parts within max_per units.
inline int part_count(int units, int threads, int max_per) {
  const int count = round_up(std::max(threads, (units + max_per - 1) / max_per), threads);
  return std::max(1, std::min(count, units));
}
inline int part_begin(int p, int count, int units) {
  return int(long(p) * units / count);
}
inline int units_of(int n, int unit) {
  return (n + unit - 1) / unit;
}

// Rows or columns [begin, begin+size) of part p, in units of `unit` rows, clipped to `limit`.
struct Range {
  int begin, size;
};
inline Range part_range(int p, int count, int units, int unit, int limit) {
  const int b = part_begin(p, count, units) * unit;
  return {b, std::min(part_begin(p + 1, count, units) * unit, limit) - b};
}

// One block of op(A), rows × kc: element (i, k) is ptr[k*ld + i] when k_major, else ptr[i*ld + k].
struct AView {
  const float* ptr;
  long ld;
  bool k_major;
};

// A packed B block of kc rows × n columns: slivers of kNR columns, sliver t at t*kc*kNR,
// laid out [k][kNR] and zero-padded beyond column n.
inline size_t packed_b_size(int kc, int n) {
  return size_t(kc) * round_up(n, kNR);
}

// Packs rows [p0, p0+kc) × columns [j0, j0+n) of op(B) (B row-major, ldb; trans: B stored N×K).
void pack_b(const float* B, long ldb, bool trans, int p0, int kc, int j0, int n, float* dst);

// dst[c*ldd + r] += src[r*lds + c] for r < rows, c < cols (16×16 blocks, in registers).
void add_transposed(const float* src, long lds, int rows, int cols, float* dst, long ldd);

// A whole op(B) (K×N) packed block by block (blocks of k_block(K) rows): the block of rows
// [p0, p0+kc) starts at p0*round_up(N, kNR), so a tile's block is found with prepacked_b_block.
size_t prepacked_b_size(int K, int N);
void prepack_b(const float* B, long ldb, bool trans, int K, int N, float* dst);
inline const float* prepacked_b_block(const float* packed, int N, int p0, int kc, int j0) {
  return packed + size_t(p0) * round_up(N, kNR) + size_t(j0 / kNR) * kc * kNR;
}

// c[i, j] = alpha * Σ_k a(i, k)·b[k][j] + beta * c[i, j] for i < mr, j < nr; beta == 0 does
// not read c. `a` must hold kMR readable rows (callers pad short slivers), `b` one sliver.
void micro_kernel(int kc, AView a, const float* b, float* c, long ldc, int mr, int nr, float alpha, float beta);

// A growable 64-byte-aligned scratch buffer of T, kept per thread (thread_local at the use
// site) so that no allocation happens per tile once it has reached its working size.
template <class T>
class BasicScratch {
 public:
  T* get(size_t n) {
    if (n > cap_) {
      const size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
      p_.reset(static_cast<T*>(std::aligned_alloc(64, bytes)));
      if (!p_) throw std::bad_alloc();
      cap_ = n;
    }
    return p_.get();
  }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> p_;
  size_t cap_ = 0;
};
using Scratch = BasicScratch<float>;

// Packing and im2col copy short runs (a sliver, one to a few C-channel runs), for which an
// inline copy beats a call to memcpy/memset.
inline void copy_floats(float* dst, const float* src, int n) {
#if defined(__AVX512F__)
  int i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_loadu_ps(src + i));
  const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1);
  _mm512_mask_storeu_ps(dst + i, tail, _mm512_maskz_loadu_ps(tail, src + i));
#else
  std::memcpy(dst, src, sizeof(float) * n);
#endif
}

inline void zero_floats(float* dst, int n) {
#if defined(__AVX512F__)
  int i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_setzero_ps());
  _mm512_mask_storeu_ps(dst + i, static_cast<__mmask16>((1u << (n - i)) - 1), _mm512_setzero_ps());
#else
  std::memset(dst, 0, sizeof(float) * n);
#endif
}

// Leading dimension for a copied A block whose rows hold n floats: an odd number of 64-byte
// lines, so that the kMR rows of a sliver (or the kc rows of a k-major sliver) land in
// different L1 sets; power-of-two strides would map them all to one set and evict each other.
inline int padded_ld(int n) {
  return round_up(n, 32) + 16;
}

// Copies an m×kc block of op(A) into dst (padded_ld leading dimension, same orientation) and
// returns the view of the copy. dst holds m*padded_ld(kc) (row-major) or kc*padded_ld(m) floats.
AView copy_a_block(AView a, int m, int kc, float* dst);

// Copies rows [0, mr) of an A view into a zero-padded kMR-row k-major sliver.
void pad_a_sliver(AView a, int mr, int kc, float* dst);

// Serially computes the m×n tile C = alpha·op(A)·op(B) + beta·C over a reduction of length K.
// get_a(p0, kc) -> AView of the tile's rows, columns [p0, p0+kc); get_b(p0, kc) -> packed B
// block of the tile's columns. Block p0 = 0 applies beta, later blocks accumulate.
template <class GetA, class GetB>
void gemm_tile(int m, int n, int K, GetA&& get_a, GetB&& get_b, float alpha, float beta, float* c, long ldc) {
  thread_local Scratch edge;
  const int kb = k_block(K);
  for (int p0 = 0; p0 < K; p0 += kb) {
    const int kc = std::min(kb, K - p0);
    const AView a = get_a(p0, kc);
    const float* b = get_b(p0, kc);
    const float beta_p = p0 == 0 ? beta : 1.0f;
    for (int i = 0; i < m; i += kMR) {
      const int mr = std::min(kMR, m - i);
      AView ai{a.ptr + (a.k_major ? i : i * a.ld), a.ld, a.k_major};
      if (mr < kMR) {
        float* pad = edge.get(size_t(kc) * kMR);
        pad_a_sliver(ai, mr, kc, pad);
        ai = {pad, kMR, true};
      }
      for (int j = 0; j < n; j += kNR)
        micro_kernel(kc, ai, b + size_t(j / kNR) * kc * kNR, c + i * ldc + j, ldc, mr, std::min(kNR, n - j), alpha,
                     beta_p);
    }
  }
}

// The bf16 flavour (kernels/bf16.h's rounding plan; gemm_bf16.cpp, AVX512-BF16 only). VDPBF16PS
// multiplies pairs of bf16 and adds both products into one fp32 lane, so every packed
// operand holds pairs of consecutive k in one 32-bit word, the even k in the low half;
// an odd kc is padded with a zero k. The register tile is the fp32 AVX-512 one (14×32).
namespace bf16 {

inline constexpr int kMR = 14, kNR = 32;

inline int k_pairs(int kc) {
  return (kc + 1) / 2;
}

// A packed B block of kc rows × n columns: slivers of kNR columns, sliver t at
// t*k_pairs(kc)*kNR words, laid out [k pair][kNR] (one word: columns j's pair), zero-padded
// beyond column n.
inline size_t packed_b_size(int kc, int n) {
  return size_t(k_pairs(kc)) * round_up(n, kNR);
}
void pack_b(const float* B, long ldb, bool trans, int p0, int kc, int j0, int n, uint32_t* dst);

// A whole op(B) packed block by block, as prepack_b above: the block of rows [p0, p0+kc)
// (p0 even) starts at (p0/2)*round_up(N, kNR) words.
size_t prepacked_b_size(int K, int N);
void prepack_b(const float* B, long ldb, bool trans, int K, int N, uint32_t* dst);
inline const uint32_t* prepacked_b_block(const uint32_t* packed, int N, int p0, int kc, int j0) {
  return packed + size_t(p0 / 2) * round_up(N, kNR) + size_t(j0 / kNR) * k_pairs(kc) * kNR;
}

// An m×kc block of op(A) in bf16 pairs, in the orientation of the AView it was packed from:
// word (i, k pair) is ptr[i*ld + kp], or ptr[kp*ld + i] when k_major. Rows from m up to a
// whole number of kMR are zero, so the micro-kernel reads whole slivers.
struct PackedA {
  const uint32_t* ptr;
  long ld;
  bool k_major;
};
size_t packed_a_size(int m, int kc);
PackedA pack_a(AView a, int m, int kc, uint32_t* dst);

// c[i, j] = alpha * Σ_k a(i, k)·b(k, j) + beta * c[i, j] for i < mr, j < nr over kc (padded to
// whole pairs) in fp32; beta == 0 does not read c. `a` is the sliver's first row.
void micro_kernel(int kc, PackedA a, const uint32_t* b, float* c, long ldc, int mr, int nr, float alpha, float beta);

// gemm_tile above, on bf16 operands: each A block is packed (rounded) once per tile.
template <class GetA, class GetB>
void gemm_tile(int m, int n, int K, GetA&& get_a, GetB&& get_b, float alpha, float beta, float* c, long ldc) {
  thread_local BasicScratch<uint32_t> apack;
  const int kb = k_block(K);
  for (int p0 = 0; p0 < K; p0 += kb) {
    const int kc = std::min(kb, K - p0);
    const PackedA a = pack_a(get_a(p0, kc), m, kc, apack.get(packed_a_size(m, kc)));
    const uint32_t* b = get_b(p0, kc);
    const float beta_p = p0 == 0 ? beta : 1.0f;
    const size_t sliver = size_t(k_pairs(kc)) * kNR;
    for (int i = 0; i < m; i += kMR) {
      const PackedA ai{a.ptr + (a.k_major ? i : i * a.ld), a.ld, a.k_major};
      for (int j = 0; j < n; j += kNR)
        micro_kernel(kc, ai, b + size_t(j / kNR) * sliver, c + i * ldc + j, ldc, std::min(kMR, m - i),
                     std::min(kNR, n - j), alpha, beta_p);
    }
  }
}

}  // namespace bf16

// The operand precisions that the blocked drivers (gemm.cpp, conv2d.cpp) are written over:
// each names its register tile, its packed-B element, how an A block is staged for the
// tile (fp32 copies it to a padded leading dimension; bf16 packs it in the tile anyway) and
// the functions that pack B and sweep a tile.
struct F32Ops {
  using BWord = float;
  static constexpr int MR = kMR, NR = kNR;
  static AView stage_a(AView a, int m, int kc, float* dst) { return copy_a_block(a, m, kc, dst); }
  static size_t packed_b_size(int kc, int n) { return cpu::packed_b_size(kc, n); }
  static void pack_b(const float* B, long ldb, bool trans, int p0, int kc, int j0, int n, float* dst) {
    cpu::pack_b(B, ldb, trans, p0, kc, j0, n, dst);
  }
  static size_t prepacked_b_size(int K, int N) { return cpu::prepacked_b_size(K, N); }
  static void prepack_b(const float* B, long ldb, bool trans, int K, int N, float* dst) {
    cpu::prepack_b(B, ldb, trans, K, N, dst);
  }
  static const float* prepacked_b_block(const float* packed, int N, int p0, int kc, int j0) {
    return cpu::prepacked_b_block(packed, N, p0, kc, j0);
  }
  template <class GetA, class GetB>
  static void tile(int m, int n, int K, GetA&& get_a, GetB&& get_b, float alpha, float beta, float* c, long ldc) {
    gemm_tile(m, n, K, get_a, get_b, alpha, beta, c, ldc);
  }
};

struct Bf16Ops {
  using BWord = uint32_t;
  static constexpr int MR = bf16::kMR, NR = bf16::kNR;
  static AView stage_a(AView a, int, int, float*) { return a; }
  static size_t packed_b_size(int kc, int n) { return bf16::packed_b_size(kc, n); }
  static void pack_b(const float* B, long ldb, bool trans, int p0, int kc, int j0, int n, uint32_t* dst) {
    bf16::pack_b(B, ldb, trans, p0, kc, j0, n, dst);
  }
  static size_t prepacked_b_size(int K, int N) { return bf16::prepacked_b_size(K, N); }
  static void prepack_b(const float* B, long ldb, bool trans, int K, int N, uint32_t* dst) {
    bf16::prepack_b(B, ldb, trans, K, N, dst);
  }
  static const uint32_t* prepacked_b_block(const uint32_t* packed, int N, int p0, int kc, int j0) {
    return bf16::prepacked_b_block(packed, N, p0, kc, j0);
  }
  template <class GetA, class GetB>
  static void tile(int m, int n, int K, GetA&& get_a, GetB&& get_b, float alpha, float beta, float* c, long ldc) {
    bf16::gemm_tile(m, n, K, get_a, get_b, alpha, beta, c, ldc);
  }
};

}  // namespace activeip::cpu
