// Winograd F(2×2, 3×3) CPU convolution for 3×3 filters, stride 1, pad 1 (kernels/conv2d.h),
// NHWC x/y, KRSC w. The output is cut into 2×2 tiles; tile t reads the 4×4 input patch d_t
// around it, and with the Lavin–Gray matrices Bᵀ, G, Aᵀ
//   y_t[k] = Aᵀ [ Σ_c (G w[k,c] Gᵀ) ⊙ (Bᵀ d_t[c] B) ] A
// so each of the 16 points ξ of the 4×4 transformed domain is one GEMM
//   M_ξ[tiles × K] = V_ξ[tiles × C] · U_ξ[C × K],   V = Bᵀ d B,  U = G w Gᵀ,
// with 16 multiplies per tile and channel pair where the 3×3 filter needs 4·9 = 36: 2.25×
// fewer. The transforms are additions (and the filters' halvings). dgrad of such a convolution is the same
// convolution of dy with the filters rotated by 180° and C and K swapped, so one driver does
// both. A work item is a block of kTiles tiles × a block of ≤ kOutBlock output channels: per
// reduction block of input channels it transforms the tiles' patches (all 16 ξ), runs the
// 16 GEMMs into its M buffer with gemm_blocked.h's micro-kernel, and after the last block
// transforms M back into y. Every output element is summed in an order fixed by the shape,
// so the bits do not depend on the thread count.
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "kernels/conv2d.h"
#include "kernels/cpu/gemm_blocked.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace activeip {

bool conv2d_winograd_supported(const Conv2dShape& s) {
  return s.R == 3 && s.S == 3 && s.stride == 1 && s.pad == 1;
}

namespace {

using cpu::AView;
using cpu::kMR;
using cpu::kNR;

constexpr int kXi = 16;            // points of the transformed 4×4 domain
constexpr int kTiles = 4 * kMR;    // tiles per work item: 4 A slivers
constexpr int kOutBlock = 4 * kNR; // output channels per work item: 4 B slivers
constexpr int kLanes = 16;         // channels transformed together (one AVX-512 vector)

// The convolution one driver call computes: input N×H×W×Cin, output N×H×W×Cout.
struct WinoPass {
  int N, H, W, Cin, Cout;
  int tiles_y() const { return (H + 1) / 2; }
  int tiles_x() const { return (W + 1) / 2; }
  long tiles() const { return long(N) * tiles_y() * tiles_x(); }
};

// u[ξ][k][c] = (G g Gᵀ)_ξ with g[r][s] = w[k, r, s, c] (or w[k, 2−r, 2−s, c] when rotated),
// G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1].
void transform_filters(const Conv2dShape& s, const float* w, bool rotate, float* u) {
  const long plane = long(s.K) * s.C;
#pragma omp parallel for if (!omp_in_parallel() && plane >= 4096)
  for (int k = 0; k < s.K; ++k)
    for (int c = 0; c < s.C; ++c) {
      float g[3][3];
      for (int r = 0; r < 3; ++r)
        for (int t = 0; t < 3; ++t) {
          const int rr = rotate ? 2 - r : r, tt = rotate ? 2 - t : t;
          g[r][t] = w[((long(k) * 3 + rr) * 3 + tt) * s.C + c];
        }
      float h[4][3];  // G g
      for (int t = 0; t < 3; ++t) {
        h[0][t] = g[0][t];
        h[1][t] = 0.5f * (g[0][t] + g[1][t] + g[2][t]);
        h[2][t] = 0.5f * (g[0][t] - g[1][t] + g[2][t]);
        h[3][t] = g[2][t];
      }
      float* out = u + long(k) * s.C + c;
      for (int a = 0; a < 4; ++a) {  // (G g) Gᵀ
        out[(a * 4 + 0) * plane] = h[a][0];
        out[(a * 4 + 1) * plane] = 0.5f * (h[a][0] + h[a][1] + h[a][2]);
        out[(a * 4 + 2) * plane] = 0.5f * (h[a][0] - h[a][1] + h[a][2]);
        out[(a * 4 + 3) * plane] = h[a][2];
      }
    }
}

// Sixteen channels of one pixel: an AVX-512 register where there is one, an array otherwise.
// load and store touch only the first `len` lanes (the rest load as 0).
#if defined(__AVX512F__)
struct Lanes {
  __m512 v;
};
inline __mmask16 lanes_mask(int len) {
  return len >= kLanes ? __mmask16(0xFFFF) : __mmask16((1u << len) - 1);
}
inline Lanes load(const float* p, int len) {
  return {len == kLanes ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(lanes_mask(len), p)};
}
inline void store(float* p, Lanes a, int len) {
  if (len == kLanes)
    _mm512_storeu_ps(p, a.v);
  else
    _mm512_mask_storeu_ps(p, lanes_mask(len), a.v);
}
inline Lanes zero_lanes() {
  return {_mm512_setzero_ps()};
}
inline Lanes operator+(Lanes a, Lanes b) {
  return {_mm512_add_ps(a.v, b.v)};
}
inline Lanes operator-(Lanes a, Lanes b) {
  return {_mm512_sub_ps(a.v, b.v)};
}
#else
struct Lanes {
  float v[kLanes];
};
inline Lanes load(const float* p, int len) {
  Lanes a{};
  for (int l = 0; l < len; ++l) a.v[l] = p[l];
  return a;
}
inline void store(float* p, Lanes a, int len) {
  for (int l = 0; l < len; ++l) p[l] = a.v[l];
}
inline Lanes zero_lanes() {
  return Lanes{};
}
inline Lanes operator+(Lanes a, Lanes b) {
  for (int l = 0; l < kLanes; ++l) a.v[l] += b.v[l];
  return a;
}
inline Lanes operator-(Lanes a, Lanes b) {
  for (int l = 0; l < kLanes; ++l) a.v[l] -= b.v[l];
  return a;
}
#endif

// Tile t's image and position.
struct TileAt {
  int n, ty, tx;
};
inline TileAt tile_at(const WinoPass& p, long t) {
  const int tx_n = p.tiles_x(), ty_n = p.tiles_y();
  return {int(t / (long(tx_n) * ty_n)), int(t / tx_n % ty_n), int(t % tx_n)};
}

// v[(ξ·rows + i)·ld + j] = (Bᵀ d_i B)_ξ for channels c0 + j, j < kc, of the `count` tiles
// from `first`, Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]; rows past `count` are zeroed.
void transform_inputs(const WinoPass& p, const float* x, long first, int count, int c0, int kc, float* v, int ld,
                      int rows) {
  const long xi = long(rows) * ld;  // from one ξ's rows to the next's
  for (int i = 0; i < count; ++i) {
    const TileAt at = tile_at(p, first + i);
    const float* px[4][4];  // the patch's channel runs, null in the padding
    for (int a = 0; a < 4; ++a)
      for (int b = 0; b < 4; ++b) {
        const int h = 2 * at.ty - 1 + a, w = 2 * at.tx - 1 + b;
        px[a][b] = h >= 0 && h < p.H && w >= 0 && w < p.W ? x + ((long(at.n) * p.H + h) * p.W + w) * p.Cin + c0 : nullptr;
      }
    float* vi = v + long(i) * ld;
    for (int j = 0; j < kc; j += kLanes) {
      const int len = std::min(kLanes, kc - j);
      Lanes e[4][4];  // Bᵀ d, column by column
      for (int b = 0; b < 4; ++b) {
        Lanes d[4];
        for (int a = 0; a < 4; ++a) d[a] = px[a][b] ? load(px[a][b] + j, len) : zero_lanes();
        e[0][b] = d[0] - d[2];
        e[1][b] = d[1] + d[2];
        e[2][b] = d[2] - d[1];
        e[3][b] = d[1] - d[3];
      }
      for (int a = 0; a < 4; ++a) {  // (Bᵀ d) B, row by row
        float* o = vi + 4 * a * xi + j;
        store(o, e[a][0] - e[a][2], len);
        store(o + xi, e[a][1] + e[a][2], len);
        store(o + 2 * xi, e[a][2] - e[a][1], len);
        store(o + 3 * xi, e[a][1] - e[a][3], len);
      }
    }
  }
  for (int x_i = 0; x_i < kXi; ++x_i)
    for (int i = count; i < rows; ++i) std::memset(v + x_i * xi + long(i) * ld, 0, sizeof(float) * kc);
}

// y[tile pixels, k0 + j] = (Aᵀ m A) (+ init) for j < kn, Aᵀ = [1 1 1 0; 0 1 −1 −1], m the
// tiles' rows of the 16 M buffers; pixels past the image are not written. init: a bias
// (init_is_bias) or a tensor shaped like y added to it, or null.
void transform_outputs(const WinoPass& p, const float* m, int ldm, long first, int count, int k0, int kn,
                       const float* init, bool init_is_bias, float* y) {
  const long xi = long(kTiles) * ldm;
  for (int i = 0; i < count; ++i) {
    const TileAt at = tile_at(p, first + i);
    const float* mi = m + long(i) * ldm;
    for (int j = 0; j < kn; j += kLanes) {
      const int len = std::min(kLanes, kn - j);
      Lanes s[2][4];  // Aᵀ m, column by column
      for (int b = 0; b < 4; ++b) {
        const float* mb = mi + b * xi + j;
        const Lanes m0 = load(mb, len), m1 = load(mb + 4 * xi, len), m2 = load(mb + 8 * xi, len),
                    m3 = load(mb + 12 * xi, len);
        s[0][b] = m0 + m1 + m2;
        s[1][b] = m1 - m2 - m3;
      }
      for (int a = 0; a < 2 && 2 * at.ty + a < p.H; ++a)
        for (int b = 0; b < 2 && 2 * at.tx + b < p.W; ++b) {
          const long o = ((long(at.n) * p.H + 2 * at.ty + a) * p.W + 2 * at.tx + b) * p.Cout + k0 + j;
          Lanes out = b == 0 ? s[a][0] + s[a][1] + s[a][2] : s[a][1] - s[a][2] - s[a][3];
          if (init) out = out + load(init_is_bias ? init + k0 + j : init + o, len);
          store(y + o, out, len);
        }
    }
  }
}

// The whole pass: y = conv(x, filters) (+ init), the filters already transformed into u
// (laid out [ξ][Cout][Cin] when `u_trans`, else [ξ][Cin][Cout]).
void winograd_pass(const WinoPass& p, const float* x, const float* u, bool u_trans, const float* init,
                   bool init_is_bias, float* y) {
  const long plane = long(p.Cin) * p.Cout;
  thread_local cpu::Scratch upack;
  const size_t packed = cpu::prepacked_b_size(p.Cin, p.Cout);
  float* ub = upack.get(packed * kXi);
  for (int xi = 0; xi < kXi; ++xi)
    cpu::prepack_b(u + xi * plane, u_trans ? p.Cin : p.Cout, u_trans, p.Cin, p.Cout, ub + xi * packed);

  const long tiles = p.tiles();
  const long blocks_t = (tiles + kTiles - 1) / kTiles;
  const int blocks_k = (p.Cout + kOutBlock - 1) / kOutBlock;
  const int kb = cpu::k_block(p.Cin);
  const bool parallel = !omp_in_parallel();
#pragma omp parallel for schedule(dynamic) if (parallel)
  for (long item = 0; item < blocks_t * blocks_k; ++item) {
    thread_local cpu::Scratch vbuf, mbuf;
    const long first = item / blocks_k * kTiles;
    const int count = int(std::min<long>(kTiles, tiles - first));
    const int k0 = int(item % blocks_k) * kOutBlock, kn = std::min(kOutBlock, p.Cout - k0);
    const int ld = cpu::padded_ld(kb), ldm = cpu::padded_ld(kn);
    float* v = vbuf.get(size_t(kXi) * kTiles * ld);
    float* m = mbuf.get(size_t(kXi) * kTiles * ldm);
    for (int c0 = 0; c0 < p.Cin; c0 += kb) {
      const int kc = std::min(kb, p.Cin - c0);
      transform_inputs(p, x, first, count, c0, kc, v, ld, kTiles);
      for (int xi = 0; xi < kXi; ++xi) {
        const float* b = cpu::prepacked_b_block(ub + xi * packed, p.Cout, c0, kc, k0);
        const float* a = v + long(xi) * kTiles * ld;
        float* mx = m + long(xi) * kTiles * ldm;
        for (int i = 0; i < count; i += kMR)
          for (int j = 0; j < kn; j += kNR)
            cpu::micro_kernel(kc, AView{a + long(i) * ld, ld, false}, b + size_t(j / kNR) * kc * kNR, mx + long(i) * ldm + j,
                              ldm, std::min(kMR, count - i), std::min(kNR, kn - j), 1.0f, c0 == 0 ? 0.0f : 1.0f);
      }
    }
    transform_outputs(p, m, ldm, first, count, k0, kn, init, init_is_bias, y);
  }
}

// z = A dY Aᵀ of the `count` 2×2 tiles of dy from `first` (zero past the image), A = [1 0;
// 1 1; 1 −1; 0 −1], as 16 B operands of `count` rows × K packed in kNR-column slivers
// (zero-padded): element (i, k) of ξ at z + ξ·zstride + (k / kNR)·count·kNR + i·kNR + k % kNR.
void transform_grads(const WinoPass& p, const float* dy, long first, int count, float* z, long zstride) {
  const int K = p.Cout, padded = cpu::round_up(K, kNR);
  for (int i = 0; i < count; ++i) {
    const TileAt at = tile_at(p, first + i);
    const float* pd[2][2];
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) {
        const int h = 2 * at.ty + a, w = 2 * at.tx + b;
        pd[a][b] = h < p.H && w < p.W ? dy + ((long(at.n) * p.H + h) * p.W + w) * K : nullptr;
      }
    for (int j = 0; j < padded; j += kLanes) {
      const int len = std::clamp(K - j, 0, kLanes);
      Lanes d[2][2];
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) d[a][b] = pd[a][b] && len > 0 ? load(pd[a][b] + j, len) : zero_lanes();
      Lanes r[4][2];  // A dY
      for (int b = 0; b < 2; ++b) {
        r[0][b] = d[0][b];
        r[1][b] = d[0][b] + d[1][b];
        r[2][b] = d[0][b] - d[1][b];
        r[3][b] = zero_lanes() - d[1][b];
      }
      float* o = z + long(j / kNR) * count * kNR + long(i) * kNR + j % kNR;
      for (int a = 0; a < 4; ++a) {  // (A dY) Aᵀ
        float* oa = o + 4 * a * zstride;
        store(oa, r[a][0], kLanes);
        store(oa + zstride, r[a][0] + r[a][1], kLanes);
        store(oa + 2 * zstride, r[a][0] - r[a][1], kLanes);
        store(oa + 3 * zstride, zero_lanes() - r[a][1], kLanes);
      }
    }
  }
}

void check_winograd(const Conv2dShape& s) {
  ENSURE(conv2d_winograd_supported(s), "Winograd conv2d needs 3x3 filters, stride 1, pad 1 (got %dx%d stride %d pad %d)",
         s.R, s.S, s.stride, s.pad);
  ENSURE(s.N > 0 && s.H > 0 && s.W > 0 && s.C > 0 && s.K > 0, "conv2d shape N=%d H=%d W=%d C=%d K=%d", s.N, s.H, s.W,
         s.C, s.K);
}

}  // namespace

void conv2d_fprop_winograd_cpu(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  check_winograd(s);
  thread_local cpu::Scratch ubuf;
  float* u = ubuf.get(size_t(kXi) * s.K * s.C);
  transform_filters(s, w, false, u);  // [ξ][K][C]: U_ξ (C × K) stored transposed
  winograd_pass({s.N, s.H, s.W, s.C, s.K}, x, u, true, bias, true, y);
}

// dw[k, r, s, c] += (Gᵀ dU[c, k] G)[r, s] with dU_ξ[C × K] = Σ_tiles V_ξᵀ Z_ξ, V the input
// tiles' Bᵀ d B and Z the output gradient tiles' A dY Aᵀ: the 16 GEMMs reduce over the tiles.
// The tiles are cut into chunks of ≤ kChunk and the chunks into `groups` runs fixed by the
// shape; each group sums its chunks in order into its own dU, and the groups' dUs are added
// in group order, so the bits do not depend on the thread count.
void conv2d_wgrad_winograd_cpu(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias) {
  check_winograd(s);
  const WinoPass p{s.N, s.H, s.W, s.C, s.K};
  constexpr int kChunk = 128, kMaxGroups = 4;
  const long tiles = p.tiles(), chunks = (tiles + kChunk - 1) / kChunk;
  const int groups = int(std::min<long>(chunks, kMaxGroups));
  const int ldv = cpu::padded_ld(s.C), ldu = cpu::padded_ld(s.K), padded_k = cpu::round_up(s.K, kNR);
  const long du_size = long(kXi) * s.C * ldu;
  thread_local cpu::Scratch dubuf;
  float* du = dubuf.get(size_t(groups) * du_size);
  const bool parallel = !omp_in_parallel();
#pragma omp parallel for schedule(dynamic) if (parallel)
  for (int g = 0; g < groups; ++g) {
    thread_local cpu::Scratch vbuf, zbuf, edge;
    float* v = vbuf.get(size_t(kXi) * kChunk * ldv);
    float* z = zbuf.get(size_t(kXi) * kChunk * padded_k);
    float* pad = edge.get(size_t(kChunk) * kMR);
    float* dug = du + g * du_size;
    const long c_begin = cpu::part_begin(g, groups, int(chunks)), c_end = cpu::part_begin(g + 1, groups, int(chunks));
    for (long chunk = c_begin; chunk < c_end; ++chunk) {
      const long first = chunk * kChunk;
      const int count = int(std::min<long>(kChunk, tiles - first));
      transform_inputs(p, x, first, count, 0, s.C, v, ldv, kChunk);
      transform_grads(p, dy, first, count, z, long(kChunk) * padded_k);
      const float beta = chunk == c_begin ? 0.0f : 1.0f;
      for (int xi = 0; xi < kXi; ++xi) {
        const float* vx = v + long(xi) * kChunk * ldv;
        const float* zx = z + long(xi) * kChunk * padded_k;
        float* dux = dug + long(xi) * s.C * ldu;
        for (int i = 0; i < s.C; i += kMR) {
          const int mr = std::min(kMR, s.C - i);
          AView a{vx + i, ldv, true};
          if (mr < kMR) {
            cpu::pad_a_sliver(a, mr, count, pad);
            a = {pad, kMR, true};
          }
          for (int j = 0; j < s.K; j += kNR)
            cpu::micro_kernel(count, a, zx + long(j / kNR) * count * kNR, dux + long(i) * ldu + j, ldu, mr,
                              std::min(kNR, s.K - j), 1.0f, beta);
        }
      }
    }
  }

  // dU summed over the groups, then dg = Gᵀ dU G with Gᵀ = [1 ½ ½ 0; 0 ½ −½ 0; 0 ½ ½ 1].
#pragma omp parallel for if (parallel && long(s.K) * s.C >= 4096)
  for (int k = 0; k < s.K; ++k)
    for (int c = 0; c < s.C; ++c) {
      float m[4][4];
      for (int xi = 0; xi < kXi; ++xi) {
        const long at = (long(xi) * s.C + c) * ldu + k;
        float sum = du[at];
        for (int g = 1; g < groups; ++g) sum += du[g * du_size + at];
        m[xi / 4][xi % 4] = sum;
      }
      float t[3][4];  // Gᵀ dU
      for (int b = 0; b < 4; ++b) {
        t[0][b] = m[0][b] + 0.5f * (m[1][b] + m[2][b]);
        t[1][b] = 0.5f * (m[1][b] - m[2][b]);
        t[2][b] = 0.5f * (m[1][b] + m[2][b]) + m[3][b];
      }
      for (int r = 0; r < 3; ++r) {  // (Gᵀ dU) G
        float* out = dw + (long(k) * 9 + r * 3) * s.C + c;
        out[0] += t[r][0] + 0.5f * (t[r][1] + t[r][2]);
        out[s.C] += 0.5f * (t[r][1] - t[r][2]);
        out[2 * s.C] += 0.5f * (t[r][1] + t[r][2]) + t[r][3];
      }
    }
  if (dbias) conv2d_bias_grad_cpu(s, dy, dbias);
}

void conv2d_dgrad_winograd_cpu(const Conv2dShape& s, const float* dy, const float* w, float* dx, const float* dx_add) {
  check_winograd(s);
  thread_local cpu::Scratch ubuf;
  float* u = ubuf.get(size_t(kXi) * s.K * s.C);
  transform_filters(s, w, true, u);  // [ξ][K][C]: the rotated filters' U_ξ, K in and C out
  winograd_pass({s.N, s.H, s.W, s.K, s.C}, dy, u, false, dx_add, false, dx);
}

}  // namespace activeip
