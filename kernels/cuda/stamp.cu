// Patch stamping on the GPU (contract in kernels/stamp.h): one thread per patch element
// of every sample, N × size × size × C items in a grid-stride loop; samples without a
// stamp exit at once. A patch is at most 8×8×3 elements, so the bank stays in L1/L2. One
// kernel for both element types (normalised floats, uint8 pixels).
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda_check.h"
#include "kernels/stamp.h"

namespace activeip {

template <typename T>
static __global__ void stamp_kernel(StampShape s, StampArgsOf<T> a) {
  const size_t per_sample = static_cast<size_t>(s.size) * s.size * s.C;
  const size_t total = per_sample * s.N;
  for (size_t i = launch::thread_index(); i < total; i += launch::thread_count()) {
    const int n = static_cast<int>(i / per_sample);
    const int p = a.patch[n];
    if (p < 0) continue;
    const size_t e = i % per_sample;  // (row, col, channel) inside the patch
    const int c = static_cast<int>(e % s.C);
    const int j = static_cast<int>(e / s.C % s.size);
    const int r = static_cast<int>(e / s.C / s.size);
    const int top = a.origin[2 * n], left = a.origin[2 * n + 1];
    a.x[((static_cast<size_t>(n) * s.H + top + r) * s.W + left + j) * s.C + c] = a.bank[p * per_sample + e];
  }
}

template <typename T>
static void launch_stamp(const StampShape& s, const StampArgsOf<T>& a, cudaStream_t stream) {
  const size_t total = static_cast<size_t>(s.size) * s.size * s.C * s.N;
  if (total == 0) return;
  stamp_kernel<T><<<launch::grid_for(total), launch::kBlock, 0, stream>>>(s, a);
  CUDA_CHECK_LAUNCH();
}

void stamp_cuda(const StampShape& s, const StampArgs& a, cudaStream_t stream) {
  launch_stamp(s, a, stream);
}

void stamp_cuda(const StampShape& s, const StampArgsU8& a, cudaStream_t stream) {
  launch_stamp(s, a, stream);
}

}  // namespace activeip
