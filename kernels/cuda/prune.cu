// Magnitude pruning and activation statistics on the GPU (contract in kernels/prune.h): keys
// and masks are grid-stride elementwise kernels; the threshold is a CUB radix sort of the
// 64-bit keys (distinct, so the k-th is exact) in a caller's workspace; the channel sums give
// each thread one channel and walk the rows in order, so the double sums match the CPU's
// order exactly and stay deterministic (no atomics).
#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda_check.h"
#include "kernels/prune.h"

namespace activeip {

namespace {

// The sorted copy starts the workspace, CUB's scratch follows at a 256-byte boundary.
size_t sorted_bytes(size_t n) {
  return (n * sizeof(uint64_t) + 255) / 256 * 256;
}

size_t cub_scratch_bytes(size_t n) {
  size_t bytes = 0;
  CUDA_CHECK(cub::DeviceRadixSort::SortKeys(nullptr, bytes, static_cast<const uint64_t*>(nullptr),
                                            static_cast<uint64_t*>(nullptr), n));
  return bytes;
}

}  // namespace

static __global__ void magnitude_keys_kernel(size_t n, const float* w, uint32_t first, uint64_t* keys) {
  for (size_t i = launch::thread_index(); i < n; i += launch::thread_count())
    keys[i] = magnitude_key(w[i], first + static_cast<uint32_t>(i));
}

static __global__ void threshold_mask_kernel(size_t n, const float* w, uint32_t first, uint64_t threshold,
                                             float* mask) {
  for (size_t i = launch::thread_index(); i < n; i += launch::thread_count())
    mask[i] = magnitude_key(w[i], first + static_cast<uint32_t>(i)) >= threshold ? 1.0f : 0.0f;
}

// Consecutive threads read consecutive channels of a row: coalesced loads.
static __global__ void channel_sum_kernel(size_t rows, int C, const float* x, double* sum) {
  const int c = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (c >= C) return;
  double s = sum[c];
  for (size_t r = 0; r < rows; ++r) s += static_cast<double>(x[r * static_cast<size_t>(C) + static_cast<size_t>(c)]);
  sum[c] = s;
}

void magnitude_keys_cuda(size_t n, const float* w, uint32_t first, uint64_t* keys, cudaStream_t stream) {
  if (n == 0) return;
  magnitude_keys_kernel<<<launch::grid_for(n), launch::kBlock, 0, stream>>>(n, w, first, keys);
  CUDA_CHECK_LAUNCH();
}

size_t kth_smallest_key_workspace_bytes(size_t n) {
  return sorted_bytes(n) + cub_scratch_bytes(n);
}

uint64_t kth_smallest_key_cuda(size_t n, const uint64_t* keys, size_t k, void* workspace, size_t workspace_bytes,
                               cudaStream_t stream) {
  ENSURE(k < n, "kth_smallest_key: k = %zu of %zu keys", k, n);
  size_t scratch = cub_scratch_bytes(n);
  ENSURE(workspace_bytes >= sorted_bytes(n) + scratch, "kth_smallest_key: workspace of %zu bytes, need %zu",
         workspace_bytes, sorted_bytes(n) + scratch);
  auto* sorted = static_cast<uint64_t*>(workspace);
  void* temp = static_cast<char*>(workspace) + sorted_bytes(n);
  // Keys use 63 bits (the sign bit of |w| is always clear).
  CUDA_CHECK(cub::DeviceRadixSort::SortKeys(temp, scratch, keys, sorted, n, 0, 63, stream));
  uint64_t out = 0;
  CUDA_CHECK(cudaMemcpyAsync(&out, sorted + k, sizeof out, cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  return out;
}

void threshold_mask_cuda(size_t n, const float* w, uint32_t first, uint64_t threshold, float* mask,
                         cudaStream_t stream) {
  if (n == 0) return;
  threshold_mask_kernel<<<launch::grid_for(n), launch::kBlock, 0, stream>>>(n, w, first, threshold, mask);
  CUDA_CHECK_LAUNCH();
}

void channel_sum_cuda(size_t rows, int C, const float* x, double* sum, cudaStream_t stream) {
  if (C <= 0 || rows == 0) return;
  const unsigned block = 128;
  channel_sum_kernel<<<(static_cast<unsigned>(C) + block - 1) / block, block, 0, stream>>>(rows, C, x, sum);
  CUDA_CHECK_LAUNCH();
}

}  // namespace activeip
