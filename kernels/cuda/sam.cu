// SAM's ascent on the GPU (contract in kernels/sam.h). The sums of squares of segment l are
// split over kSplit blocks (grid kSplit × S): each block reduces its strided share in double
// through shared memory in a fixed tree and writes one partial pair; one thread per segment
// then adds its kSplit partials in block order. Fixed grid, fixed orders, no atomics: the
// same norms on every run. The move e follows over a kSplit × S grid, after e is zeroed
// (elements in no segment stay 0).
#include <cmath>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda_check.h"
#include "kernels/sam.h"

namespace activeip {
namespace {

// Blocks per segment: enough for ResNet-18's 2.4M-element layer4 convolutions to spread over
// the GPU, and few enough that a 64-element bias costs only idle blocks.
constexpr unsigned kSplit = 64;
constexpr unsigned kThreads = launch::kBlock;

}  // namespace

static __global__ void sam_partial_kernel(const float* w, const float* g, const int32_t* segments, double* partial) {
  __shared__ double sw[kThreads], sg[kThreads];
  const int l = static_cast<int>(blockIdx.y);
  const int64_t begin = segments[2 * l], end = segments[2 * l + 1];
  double ww = 0, gg = 0;
  for (int64_t i = begin + static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < end;
       i += static_cast<int64_t>(kSplit) * kThreads) {
    ww += static_cast<double>(w[i]) * w[i];
    gg += static_cast<double>(g[i]) * g[i];
  }
  sw[threadIdx.x] = ww;
  sg[threadIdx.x] = gg;
  __syncthreads();
  for (unsigned half = kThreads / 2; half > 0; half /= 2) {  // the same tree every launch
    if (threadIdx.x < half) {
      sw[threadIdx.x] += sw[threadIdx.x + half];
      sg[threadIdx.x] += sg[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const size_t at = (static_cast<size_t>(l) * kSplit + blockIdx.x) * 2;
    partial[at] = sw[0];
    partial[at + 1] = sg[0];
  }
}

static __global__ void sam_norms_kernel(int S, const double* partial, double* norms) {
  const int l = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (l >= S) return;
  double ww = 0, gg = 0;
  for (unsigned b = 0; b < kSplit; ++b) {
    ww += partial[(static_cast<size_t>(l) * kSplit + b) * 2];
    gg += partial[(static_cast<size_t>(l) * kSplit + b) * 2 + 1];
  }
  norms[2 * l] = ww;
  norms[2 * l + 1] = gg;
}

static __global__ void sam_move_kernel(double rho, const float* g, const int32_t* segments, const float* mask,
                                       const double* norms, float* e) {
  const int l = static_cast<int>(blockIdx.y);
  const double ww = norms[2 * l], gg = norms[2 * l + 1];
  if (ww == 0 || gg == 0) return;  // e stays 0
  const double k = rho * sqrt(ww / gg);
  const int64_t end = segments[2 * l + 1];
  for (int64_t i = segments[2 * l] + static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < end;
       i += static_cast<int64_t>(kSplit) * kThreads) {
    float v = static_cast<float>(__dmul_rn(k, static_cast<double>(g[i])));
    if (mask) v *= mask[i];
    e[i] = v;
  }
}

size_t sam_ascent_workspace_floats(const SamShape& s) {
  // kSplit partial pairs of doubles per segment, two floats per double.
  return static_cast<size_t>(s.segments) * kSplit * 2 * 2;
}

void sam_ascent_cuda(const SamShape& s, double rho, const SamArgs& a, float* workspace, cudaStream_t stream) {
  if (s.n > 0) CUDA_CHECK(cudaMemsetAsync(a.e, 0, static_cast<size_t>(s.n) * sizeof(float), stream));
  if (s.segments == 0) return;
  auto* partial = reinterpret_cast<double*>(workspace);
  const dim3 grid(kSplit, static_cast<unsigned>(s.segments));
  sam_partial_kernel<<<grid, kThreads, 0, stream>>>(a.w, a.g, a.segments, partial);
  CUDA_CHECK_LAUNCH();
  sam_norms_kernel<<<launch::grid_for(static_cast<size_t>(s.segments)), kThreads, 0, stream>>>(s.segments, partial,
                                                                                                 a.norms);
  CUDA_CHECK_LAUNCH();
  sam_move_kernel<<<grid, kThreads, 0, stream>>>(rho, a.g, a.segments, a.mask, a.norms, a.e);
  CUDA_CHECK_LAUNCH();
}

}  // namespace activeip
