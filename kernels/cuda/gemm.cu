// CUDA SGEMM, row-major C = alpha·op(A)·op(B) + beta·C (contract in kernels/gemm.h). Each
// block of 256 threads owns a 64×64 tile of C and walks K in slices of 16: the slice of op(A)
// (64×16) and of op(B) (16×64) is staged in shared memory, k-major, and each thread
// accumulates a 4×4 micro-tile in registers with FFMA. Operands are read with zero fill
// outside M, N and K, so any size and leading dimension works and nothing is read out of bounds.
#include "kernels/gemm.h"

#include <algorithm>
#include <cstddef>

#include "base/error.h"
#include "kernels/cuda_check.h"

namespace activeip {
namespace {

constexpr int kTile = 64;      // rows (m) and columns (n) of C per block
constexpr int kBK = 16;        // k per shared-memory slice
constexpr int kThreads = 256;  // 16×16 threads, each owning a 4×4 micro-tile of C
constexpr int kThreadsPerRow = 16;
constexpr int kMicro = kTile / kThreadsPerRow;           // 4
constexpr int kLoadsPerThread = kTile * kBK / kThreads;  // 4 elements of each operand per slice
constexpr int kPad = 4;  // keeps the k-contiguous stores below at most 2-way bank conflicted
static_assert(kThreads == kThreadsPerRow * kThreadsPerRow && kTile * kBK % kThreads == 0);

// One operand slice in shared memory: tile[k][o], o being m for A and n for B.
using SmemTile = float[kBK][kTile + kPad];

// Position (o, k) in the slice of the idx-th element a block loads. Consecutive threads take
// consecutive addresses in global memory: along k when the operand is stored with k
// contiguous (A as M×K, B as N×K), along o otherwise (A as K×M, B as K×N).
template <bool kContiguousK>
__device__ inline void slice_coords(int idx, int& o, int& k) {
  if constexpr (kContiguousK) {
    k = idx % kBK, o = idx / kBK;
  } else {
    o = idx % kTile, k = idx / kTile;
  }
}

// Loads this thread's share of the slice o ∈ [o0, o0+64), k ∈ [k0, k0+16) of an operand whose
// element (o, k) lives at X[o·ld + k] (kContiguousK) or X[k·ld + o]; zero past `outer` or K.
template <bool kContiguousK>
__device__ inline void load_slice(const float* X, int ld, int outer, int K, int o0, int k0,
                                  float (&regs)[kLoadsPerThread]) {
#pragma unroll
  for (int i = 0; i < kLoadsPerThread; ++i) {
    int o, k;
    slice_coords<kContiguousK>(static_cast<int>(threadIdx.x) + i * kThreads, o, k);
    const int go = o0 + o, gk = k0 + k;
    regs[i] = 0.0f;
    if (go < outer && gk < K)
      regs[i] = kContiguousK ? X[static_cast<size_t>(go) * ld + gk] : X[static_cast<size_t>(gk) * ld + go];
  }
}

template <bool kContiguousK>
__device__ inline void store_slice(const float (&regs)[kLoadsPerThread], SmemTile& tile) {
#pragma unroll
  for (int i = 0; i < kLoadsPerThread; ++i) {
    int o, k;
    slice_coords<kContiguousK>(static_cast<int>(threadIdx.x) + i * kThreads, o, k);
    tile[k][o] = regs[i];
  }
}

// Thread (ty, tx) owns rows m0 + ty + 16·i and columns n0 + tx + 16·j (i, j < 4): within a warp
// the A reads are two broadcasts and the B reads sixteen consecutive words, so the inner loop
// has no bank conflicts, and the stores to C are coalesced along n.
template <bool kTransA, bool kTransB>
static __global__ void __launch_bounds__(kThreads)
    gemm_smem_tiled(GemmShape s, const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C) {
  __shared__ SmemTile As, Bs;
  constexpr bool kAContiguousK = !kTransA;  // A stored M×K
  constexpr bool kBContiguousK = kTransB;   // B stored N×K
  const int m0 = blockIdx.y * kTile, n0 = blockIdx.x * kTile;
  const int tx = threadIdx.x % kThreadsPerRow, ty = threadIdx.x / kThreadsPerRow;

  float acc[kMicro][kMicro] = {};
  float a_next[kLoadsPerThread], b_next[kLoadsPerThread];
  load_slice<kAContiguousK>(A, s.lda, s.M, s.K, m0, 0, a_next);
  load_slice<kBContiguousK>(B, s.ldb, s.N, s.K, n0, 0, b_next);
  for (int k0 = 0; k0 < s.K; k0 += kBK) {
    store_slice<kAContiguousK>(a_next, As);
    store_slice<kBContiguousK>(b_next, Bs);
    __syncthreads();  // the slice is complete before anyone reads it
    // The next slice travels from global memory into registers while this one is multiplied.
    if (k0 + kBK < s.K) {
      load_slice<kAContiguousK>(A, s.lda, s.M, s.K, m0, k0 + kBK, a_next);
      load_slice<kBContiguousK>(B, s.ldb, s.N, s.K, n0, k0 + kBK, b_next);
    }
#pragma unroll
    for (int k = 0; k < kBK; ++k) {
      float a[kMicro], b[kMicro];
#pragma unroll
      for (int i = 0; i < kMicro; ++i) a[i] = As[k][ty + kThreadsPerRow * i];
#pragma unroll
      for (int j = 0; j < kMicro; ++j) b[j] = Bs[k][tx + kThreadsPerRow * j];
#pragma unroll
      for (int i = 0; i < kMicro; ++i)
#pragma unroll
        for (int j = 0; j < kMicro; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();  // everyone has read the slice before the next iteration overwrites it
  }

  const bool read_c = s.beta != 0.0f;  // beta == 0 overwrites: a NaN in C must not leak through
#pragma unroll
  for (int i = 0; i < kMicro; ++i) {
    const int m = m0 + ty + kThreadsPerRow * i;
    if (m >= s.M) continue;
#pragma unroll
    for (int j = 0; j < kMicro; ++j) {
      const int n = n0 + tx + kThreadsPerRow * j;
      if (n >= s.N) continue;
      float& c = C[static_cast<size_t>(m) * s.ldc + n];
      c = read_c ? s.alpha * acc[i][j] + s.beta * c : s.alpha * acc[i][j];
    }
  }
}

}  // namespace

void gemm_cuda(const GemmShape& s, const float* A, const float* B, float* C, cudaStream_t stream) {
  gemm_check_shape(s);
  const int M = s.M, N = s.N;
  if (M == 0 || N == 0) return;
  const unsigned tiles_m = static_cast<unsigned>((M + kTile - 1) / kTile);
  ENSURE(tiles_m <= 65535, "gemm M=%d exceeds the grid (%d rows at most)", M, 65535 * kTile);
  const dim3 grid(static_cast<unsigned>((N + kTile - 1) / kTile), tiles_m);
  // K == 0 needs no special case: no slice is loaded and the epilogue writes beta·C (or 0).
  if (!s.trans_a && !s.trans_b)
    gemm_smem_tiled<false, false><<<grid, kThreads, 0, stream>>>(s, A, B, C);
  else if (!s.trans_a && s.trans_b)
    gemm_smem_tiled<false, true><<<grid, kThreads, 0, stream>>>(s, A, B, C);
  else if (s.trans_a && !s.trans_b)
    gemm_smem_tiled<true, false><<<grid, kThreads, 0, stream>>>(s, A, B, C);
  else
    gemm_smem_tiled<true, true><<<grid, kThreads, 0, stream>>>(s, A, B, C);
  CUDA_CHECK_LAUNCH();
}

}  // namespace activeip
