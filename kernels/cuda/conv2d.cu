// 2-D convolution on the GPU (contract in kernels/conv2d.h), NHWC x/y, KRSC w, as implicit
// GEMMs whose operand tiles are gathered straight from the tensors (no im2col buffer):
//   fprop  y[NPQ×K] = col(x)[NPQ×RSC]·wᵀ (+bias)    dgrad  dx[NHW×C] = col(dy)[NHW×RSK]·w[RSK×C]
//   wgrad  dwᵀ[RSC×K] += col(x)ᵀ·dy, its NPQ reduction split over blocks and joined by atomicAdd
// One fp32 main loop: 128×64 block tiles, k slices of 8 double-buffered in shared memory, 256 threads × 8×4.
#include "kernels/conv2d.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <limits>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda_check.h"

namespace activeip {
namespace {

// Tile sizes. A 128×64 tile over 16×16 threads gives each thread 8×4 accumulators: per k
// step 3 float4 shared loads feed 32 FFMAs, and 256 threads at ≤ 128 registers keep two
// blocks (16 warps) resident per SM to hide the gather latency. BK = 8 keeps a k slice of A
// at 4 elements and of B at 2 elements per thread, small enough to prefetch in registers.
constexpr int kBM = 128, kBN = 64, kBK = 8;
constexpr int kThreads = 256;
// Shared rows are padded by 4 floats: rows stay 16-byte aligned for the float4 reads, and
// consecutive k rows start 4 banks apart, so the transposing stores of the fprop/dgrad
// gathers (a warp writes 16 tile rows × 2 k rows, or 8 × 4) hit 32 distinct banks.
constexpr int kLdA = kBM + 4, kLdB = kBN + 4;
// wgrad: a split reduces at least this many k slices (256 NPQ rows) before its atomics.
constexpr int kMinSplitSlices = 32;

// Conv2dShape with P and Q precomputed, passed to the kernels by value.
struct ConvDims {
  int N, H, W, C, K, R, S, stride, pad, P, Q;
};

ConvDims dims_of(const Conv2dShape& s) {
  return {s.N, s.H, s.W, s.C, s.K, s.R, s.S, s.stride, s.pad, s.P(), s.Q()};
}

// The kernels index rows (n,p,q) and (n,h,w), filter columns and single images in int and
// only whole tensors in size_t, so every such count must fit an int.
void check_shape(const Conv2dShape& s) {
  ENSURE(s.N > 0 && s.H > 0 && s.W > 0 && s.C > 0 && s.K > 0 && s.R > 0 && s.S > 0 && s.stride > 0 && s.pad >= 0 &&
             s.P() > 0 && s.Q() > 0,
         "conv2d shape N=%d H=%d W=%d C=%d K=%d R=%d S=%d stride=%d pad=%d", s.N, s.H, s.W, s.C, s.K, s.R, s.S,
         s.stride, s.pad);
  constexpr double kMax = std::numeric_limits<int>::max();
  ENSURE(double(s.N) * s.P() * s.Q() <= kMax && double(s.N) * s.H * s.W <= kMax && double(s.H) * s.W * s.C <= kMax &&
             double(s.P()) * s.Q() * s.K <= kMax && double(s.K) * s.R * s.S * s.C <= kMax,
         "conv2d N=%d H=%d W=%d C=%d K=%d R=%d S=%d is too large for 32-bit tile indices", s.N, s.H, s.W, s.C, s.K, s.R,
         s.S);
}

__host__ __device__ inline int ceil_div(int n, int d) {
  return (n + d - 1) / d;
}

// Row i (0..7) of a thread's micro-tile: two groups of 4 rows, 64 apart, so that a warp's
// float4 reads of A touch 2 addresses (broadcasts) and its reads of B 16 consecutive float4s.
__device__ __forceinline__ int tile_row(int i) {
  return (i < 4 ? 0 : kBM / 2) + (threadIdx.x / 16) * 4 + i % 4;
}
__device__ __forceinline__ int tile_col() {
  return (threadIdx.x % 16) * 4;
}

// acc[8][4] = A_tile · B_tile over k_tiles slices of kBK. Tiles supplies the operands:
// fetch() loads the next slice from global memory into registers, stash() stores them into
// a shared buffer (A k-major [kBK][kBM], B [kBK][kBN]). The slice after the current one is
// fetched before the FFMAs and stashed after them, so its loads are in flight meanwhile.
template <class Tiles>
__device__ __forceinline__ void gemm_mainloop(Tiles& tiles, int k_tiles, float (&acc)[8][4]) {
  __shared__ __align__(16) float sa[2][kBK][kLdA];
  __shared__ __align__(16) float sb[2][kBK][kLdB];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

  const int row = (threadIdx.x / 16) * 4, col = tile_col();
  tiles.fetch();
  tiles.stash(sa[0], sb[0]);
  __syncthreads();
  for (int t = 0; t < k_tiles; ++t) {
    const int cur = t & 1;
    const bool more = t + 1 < k_tiles;
    if (more) tiles.fetch();
#pragma unroll
    for (int k = 0; k < kBK; ++k) {
      const float4 a0 = *reinterpret_cast<const float4*>(&sa[cur][k][row]);
      const float4 a1 = *reinterpret_cast<const float4*>(&sa[cur][k][kBM / 2 + row]);
      const float4 b4 = *reinterpret_cast<const float4*>(&sb[cur][k][col]);
      const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float b[4] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    // The other buffer was last read in iteration t − 1, which every thread has finished
    // (barrier below); the barrier then publishes the stash before iteration t + 1 reads it.
    if (more) tiles.stash(sa[cur ^ 1], sb[cur ^ 1]);
    __syncthreads();
  }
}

// fprop operands. A = col(x)[NPQ × RSC]: A[(n,p,q), (r,s,c)] = x[n, p·stride−pad+r,
// q·stride−pad+s, c], zero in the padding. B = wᵀ: B[(r,s,c), k] = w[k, (r,s,c)].
// Thread t gathers A tile row t/2, columns (t%2)·4 … +3 of each slice (a thread pair reads
// 8 consecutive channels), and B tile column t/4, rows (t%4)·2 … +1 (4 threads read 8
// consecutive floats of one filter).
struct FpropTiles {
  ConvDims d;
  int rsc;
  const float* img;   // x of row m's image; null when m ≥ NPQ
  int h0, w0;         // input pixel under tap (0, 0) of row m
  int r, s, c;        // tap of the next A column this thread loads; r ≥ R past the end
  int off;            // offset of pixel (h0+r, w0+s) in img, −1 when outside the image or row
  const float* wrow;  // w of output channel k; null when k ≥ K
  int kb;             // next B row this thread loads
  float ra[4], rb[2];

  __device__ FpropTiles(const ConvDims& dims, const float* x, const float* w, int m0, int n0)
      : d(dims), rsc(dims.R * dims.S * dims.C) {
    const int t = threadIdx.x, m = m0 + t / 2, pq = d.P * d.Q;
    img = nullptr, h0 = w0 = 0;
    if (m < d.N * pq) {
      img = x + size_t(m / pq) * d.H * d.W * d.C;
      h0 = m % pq / d.Q * d.stride - d.pad;
      w0 = m % d.Q * d.stride - d.pad;
    }
    const int k0 = (t % 2) * 4;
    c = k0 % d.C, s = k0 / d.C % d.S, r = k0 / d.C / d.S;
    seek();
    const int k = n0 + t / 4;
    wrow = k < d.K ? w + size_t(k) * rsc : nullptr;
    kb = (t % 4) * 2;
  }
  __device__ void seek() {
    const int h = h0 + r, w = w0 + s;
    off = img && r < d.R && h >= 0 && h < d.H && w >= 0 && w < d.W ? (h * d.W + w) * d.C : -1;
  }
  // Moves the tap `by` columns on; the pixel offset changes only when c wraps.
  __device__ void step(int by) {
    c += by;
    if (c < d.C) return;
    do {
      c -= d.C;
      if (++s == d.S) s = 0, ++r;
    } while (c >= d.C);
    seek();
  }
  __device__ void fetch() {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      ra[j] = off >= 0 ? __ldg(img + off + c) : 0.0f;
      step(1);
    }
    step(kBK - 4);
#pragma unroll
    for (int j = 0; j < 2; ++j) rb[j] = wrow && kb + j < rsc ? __ldg(wrow + kb + j) : 0.0f;
    kb += kBK;
  }
  __device__ void stash(float (*sa)[kLdA], float (*sb)[kLdB]) const {
    const int t = threadIdx.x;
#pragma unroll
    for (int j = 0; j < 4; ++j) sa[(t % 2) * 4 + j][t / 2] = ra[j];
#pragma unroll
    for (int j = 0; j < 2; ++j) sb[(t % 4) * 2 + j][t / 4] = rb[j];
  }
};

// dgrad operands. A = col(dy)[NHW × RSK]: A[(n,h,w), (r,s,k)] = dy[n,p,q,k] where
// h = p·stride−pad+r and w = q·stride−pad+s, zero when no such in-range p, q exists.
// B[(r,s,k), c] = w[k,r,s,c]. A is gathered as in fprop (thread t: row t/2, columns
// (t%2)·4 … +3); B row t/32, columns t%32 and t%32+32, coalesced over c.
struct DgradTiles {
  ConvDims d;
  const float* img;  // dy of row m's image; null when m ≥ NHW
  int hp, wp;        // h + pad, w + pad of row m
  int r, s, k;       // tap of the next A column; r ≥ R past the end
  int off;           // offset of dy pixel (p, q) in img, −1 when tap (r, s) meets no output
  const float* w;
  int rs, kb, c0;  // next B row (rs·K + kb) and first B column of this thread
  float ra[4], rb[2];

  __device__ DgradTiles(const ConvDims& dims, const float* dy, const float* w_, int m0, int n0) : d(dims), w(w_) {
    const int t = threadIdx.x, m = m0 + t / 2, hw = d.H * d.W;
    img = nullptr, hp = wp = 0;
    if (m < d.N * hw) {
      img = dy + size_t(m / hw) * d.P * d.Q * d.K;
      hp = m % hw / d.W + d.pad;
      wp = m % d.W + d.pad;
    }
    const int k0 = (t % 2) * 4;
    k = k0 % d.K, s = k0 / d.K % d.S, r = k0 / d.K / d.S;
    seek();
    kb = t / 32 % d.K, rs = t / 32 / d.K, c0 = n0 + t % 32;
  }
  __device__ void seek() {
    const int ph = hp - r, pw = wp - s;
    off = -1;
    if (img && r < d.R && ph >= 0 && pw >= 0 && ph % d.stride == 0 && pw % d.stride == 0) {
      const int p = ph / d.stride, q = pw / d.stride;
      if (p < d.P && q < d.Q) off = (p * d.Q + q) * d.K;
    }
  }
  __device__ void step(int by) {
    k += by;
    if (k < d.K) return;
    do {
      k -= d.K;
      if (++s == d.S) s = 0, ++r;
    } while (k >= d.K);
    seek();
  }
  __device__ void fetch() {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      ra[j] = off >= 0 ? __ldg(img + off + k) : 0.0f;
      step(1);
    }
    step(kBK - 4);
    const int taps = d.R * d.S;
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int c = c0 + 32 * j;
      rb[j] = rs < taps && c < d.C ? __ldg(w + (size_t(kb) * taps + rs) * d.C + c) : 0.0f;
    }
    for (kb += kBK; kb >= d.K; kb -= d.K) ++rs;
  }
  __device__ void stash(float (*sa)[kLdA], float (*sb)[kLdB]) const {
    const int t = threadIdx.x;
#pragma unroll
    for (int j = 0; j < 4; ++j) sa[(t % 2) * 4 + j][t / 2] = ra[j];
#pragma unroll
    for (int j = 0; j < 2; ++j) sb[t / 32][t % 32 + 32 * j] = rb[j];
  }
};

// wgrad operands, for the rows [begin, end) of NPQ that one split reduces.
// A = col(x)ᵀ[RSC × NPQ]: A[(r,s,c), (n,p,q)] = x[n, p·stride−pad+r, q·stride−pad+s, c].
// B = dy[NPQ × K]. Thread t loads, of NPQ row t/32 of each slice, the A columns (filter taps)
// t%32 + 32j, j < 4, and the B columns (output channels) t%32 + 32j, j < 2: a warp reads 32
// consecutive channels of x and of dy. A thread's taps are fixed, so they are decoded once.
struct WgradTiles {
  ConvDims d;
  const float* x;
  const float* dy;
  int tap_r[4], tap_s[4], tap_off[4];  // r, s and (r·W + s)·C + c of each A column
  unsigned tap_ok;                     // bit j: column j lies inside RSC
  int row, end, n, p, q;               // next NPQ row of this thread, as an index and (n,p,q)
  int k0;                              // first B column of this thread
  float ra[4], rb[2];

  __device__ WgradTiles(const ConvDims& dims, const float* x_, const float* dy_, int m0, int n0, int begin, int end_)
      : d(dims), x(x_), dy(dy_), end(end_) {
    const int t = threadIdx.x, rsc = d.R * d.S * d.C;
    tap_ok = 0;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int m = m0 + t % 32 + 32 * j;
      const int c = m % d.C, s = m / d.C % d.S, r = m / d.C / d.S;
      tap_r[j] = r, tap_s[j] = s, tap_off[j] = (r * d.W + s) * d.C + c;
      if (m < rsc) tap_ok |= 1u << j;
    }
    row = begin + t / 32;
    const int pq = d.P * d.Q;
    n = row / pq, p = row % pq / d.Q, q = row % d.Q;
    k0 = n0 + t % 32;
  }
  __device__ void fetch() {
    const bool row_ok = row < end;
    const int h0 = p * d.stride - d.pad, w0 = q * d.stride - d.pad;
    const float* img = x + size_t(n) * d.H * d.W * d.C;
    const int base = (h0 * d.W + w0) * d.C;  // may be negative; base + tap_off is not when inside
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int h = h0 + tap_r[j], w = w0 + tap_s[j];
      const bool ok = row_ok && (tap_ok >> j & 1) && h >= 0 && h < d.H && w >= 0 && w < d.W;
      ra[j] = ok ? __ldg(img + base + tap_off[j]) : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int k = k0 + 32 * j;
      rb[j] = row_ok && k < d.K ? __ldg(dy + size_t(row) * d.K + k) : 0.0f;
    }
    row += kBK;
    for (q += kBK; q >= d.Q; q -= d.Q)
      if (++p == d.P) p = 0, ++n;
  }
  __device__ void stash(float (*sa)[kLdA], float (*sb)[kLdB]) const {
    const int t = threadIdx.x;
#pragma unroll
    for (int j = 0; j < 4; ++j) sa[t / 32][t % 32 + 32 * j] = ra[j];
#pragma unroll
    for (int j = 0; j < 2; ++j) sb[t / 32][t % 32 + 32 * j] = rb[j];
  }
};

// out[m, n] = acc (+ bias[n]) for the tile at (m0, n0) of a row-major rows × cols matrix;
// float4 stores when cols % 4 == 0 and out is 16-byte aligned (`vec`).
__device__ __forceinline__ void store_tile(const float (&acc)[8][4], int m0, int n0, int rows, int cols,
                                           const float* __restrict__ bias, float* __restrict__ out, bool vec) {
  const int n = n0 + tile_col();
  float b[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) b[j] = bias && n + j < cols ? __ldg(bias + n + j) : 0.0f;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int m = m0 + tile_row(i);
    if (m >= rows) continue;
    float* o = out + size_t(m) * cols + n;
    if (vec) {
      if (n < cols)
        *reinterpret_cast<float4*>(o) =
            make_float4(acc[i][0] + b[0], acc[i][1] + b[1], acc[i][2] + b[2], acc[i][3] + b[3]);
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j)
        if (n + j < cols) o[j] = acc[i][j] + b[j];
    }
  }
}

// grid (⌈NPQ/128⌉, ⌈K/64⌉): one 128×64 tile of y per block.
static __global__ void __launch_bounds__(kThreads, 2)
    conv2d_fprop_smem_tiled(ConvDims d, const float* __restrict__ x, const float* __restrict__ w,
                            const float* __restrict__ bias, float* __restrict__ y, bool vec) {
  const int m0 = blockIdx.x * kBM, n0 = blockIdx.y * kBN;
  FpropTiles tiles(d, x, w, m0, n0);
  float acc[8][4];
  gemm_mainloop(tiles, ceil_div(d.R * d.S * d.C, kBK), acc);
  store_tile(acc, m0, n0, d.N * d.P * d.Q, d.K, bias, y, vec);
}

// grid (⌈NHW/128⌉, ⌈C/64⌉): one 128×64 tile of dx per block. Every element of dx belongs to
// exactly one tile and is written once, zero where no output position used it.
static __global__ void __launch_bounds__(kThreads, 2)
    conv2d_dgrad_smem_tiled(ConvDims d, const float* __restrict__ dy, const float* __restrict__ w,
                            float* __restrict__ dx, bool vec) {
  const int m0 = blockIdx.x * kBM, n0 = blockIdx.y * kBN;
  DgradTiles tiles(d, dy, w, m0, n0);
  float acc[8][4];
  gemm_mainloop(tiles, ceil_div(d.K * d.R * d.S, kBK), acc);
  store_tile(acc, m0, n0, d.N * d.H * d.W, d.C, nullptr, dx, vec);
}

// grid (⌈RSC/128⌉, ⌈K/64⌉, splits): block z reduces NPQ rows [z·split_rows, (z+1)·split_rows)
// of one 128×64 tile of dwᵀ and adds it, transposed, into dw. With several splits the adds
// race and are atomic (their order, and so the last bits of dw, vary from run to run);
// with one split each element has a single writer and the plain add is deterministic.
static __global__ void __launch_bounds__(kThreads, 2)
    conv2d_wgrad_smem_tiled_split(ConvDims d, const float* __restrict__ x, const float* __restrict__ dy,
                                  float* __restrict__ dw, int split_rows) {
  const int m0 = blockIdx.x * kBM, n0 = blockIdx.y * kBN;
  const int rows = d.N * d.P * d.Q, rsc = d.R * d.S * d.C;
  const int begin = blockIdx.z * split_rows, end = min(rows, begin + split_rows);
  WgradTiles tiles(d, x, dy, m0, n0, begin, end);
  float acc[8][4];
  gemm_mainloop(tiles, ceil_div(end - begin, kBK), acc);

  const bool atomic = gridDim.z > 1;
  const int k = n0 + tile_col();
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int m = m0 + tile_row(i);
    if (m >= rsc) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if (k + j >= d.K) continue;
      float* o = dw + size_t(k + j) * rsc + m;
      if (atomic)
        atomicAdd(o, acc[i][j]);
      else
        *o += acc[i][j];
    }
  }
}

// dbias[k] += Σ_rows dy[row, k]. Block (32, 8), grid (⌈K/32⌉, splits): a warp reads 32
// consecutive channels of one row; each thread sums every (8·splits)-th row in double, the
// block folds its 8 partial sums in shared memory and adds once per channel (atomically
// when several blocks share a channel, so the last bits vary from run to run then).
constexpr int kBiasRows = 8;
static __global__ void conv2d_bias_grad(int rows, int K, const float* __restrict__ dy, float* __restrict__ dbias) {
  __shared__ double part[kBiasRows][32];
  const int k = blockIdx.x * 32 + threadIdx.x;
  double sum = 0.0;
  if (k < K)
    for (int row = blockIdx.y * kBiasRows + threadIdx.y; row < rows; row += gridDim.y * kBiasRows)
      sum += dy[size_t(row) * K + k];
  part[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();  // all partial sums are in shared memory before row 0 folds them
  if (threadIdx.y != 0 || k >= K) return;
  for (int i = 1; i < kBiasRows; ++i) sum += part[i][threadIdx.x];
  if (gridDim.y > 1)
    atomicAdd(dbias + k, static_cast<float>(sum));
  else
    dbias[k] += static_cast<float>(sum);
}

// The current device's SM count, queried once per device (it never changes) rather than
// on every wgrad launch.
int sm_count() {
  constexpr int kDevices = 64;
  static std::array<std::atomic<int>, kDevices> cache{};
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  if (device < kDevices) {
    const int known = cache[static_cast<size_t>(device)].load(std::memory_order_relaxed);
    if (known > 0) return known;
  }
  int sms = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  if (device < kDevices) cache[static_cast<size_t>(device)].store(sms, std::memory_order_relaxed);
  return sms;
}

}  // namespace

void conv2d_fprop_cuda(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                       cudaStream_t stream) {
  check_shape(s);
  const ConvDims d = dims_of(s);
  const dim3 grid(ceil_div(s.N * d.P * d.Q, kBM), ceil_div(s.K, kBN));
  const bool vec = s.K % 4 == 0 && launch::aligned16(y);
  conv2d_fprop_smem_tiled<<<grid, kThreads, 0, stream>>>(d, x, w, bias, y, vec);
  CUDA_CHECK_LAUNCH();
}

void conv2d_dgrad_cuda(const Conv2dShape& s, const float* dy, const float* w, float* dx, cudaStream_t stream) {
  check_shape(s);
  const ConvDims d = dims_of(s);
  const dim3 grid(ceil_div(s.N * s.H * s.W, kBM), ceil_div(s.C, kBN));
  const bool vec = s.C % 4 == 0 && launch::aligned16(dx);
  conv2d_dgrad_smem_tiled<<<grid, kThreads, 0, stream>>>(d, dy, w, dx, vec);
  CUDA_CHECK_LAUNCH();
}

void conv2d_wgrad_cuda(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias,
                       cudaStream_t stream) {
  check_shape(s);
  const ConvDims d = dims_of(s);
  const int rows = s.N * d.P * d.Q, slices = ceil_div(rows, kBK);
  const dim3 tiles(ceil_div(s.R * s.S * s.C, kBM), ceil_div(s.K, kBN));
  // dw is small and NPQ long: split the reduction until about four blocks per SM exist
  // (two waves at two resident blocks each), each split still kMinSplitSlices deep so the
  // atomics stay a small fraction of the traffic.
  const int want = ceil_div(4 * sm_count(), int(tiles.x * tiles.y));
  const int splits = std::clamp(want, 1, std::clamp(slices / kMinSplitSlices, 1, 65535));
  const int split_slices = ceil_div(slices, splits);
  const dim3 grid(tiles.x, tiles.y, ceil_div(slices, split_slices));  // no split left empty
  conv2d_wgrad_smem_tiled_split<<<grid, kThreads, 0, stream>>>(d, x, dy, dw, split_slices * kBK);
  CUDA_CHECK_LAUNCH();

  if (dbias) {
    // At least 128 rows per thread before a block's atomics; at most 1024 splits, which
    // already keep every SM busy for the largest layers (NPQ = 512·32·32).
    const int bias_splits = std::clamp(rows / (kBiasRows * 128), 1, 1024);
    const dim3 bias_grid(ceil_div(s.K, 32), bias_splits);
    conv2d_bias_grad<<<bias_grid, dim3(32, kBiasRows), 0, stream>>>(rows, s.K, dy, dbias);
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace activeip
