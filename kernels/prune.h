// Magnitude pruning and activation statistics on raw pointers. A weight's key orders it by
// magnitude, then by position: key = (IEEE bits of |w|) << 32 | index. The bits of a
// non-negative float are monotone in its value and the index makes every key distinct, so
// "the k smallest weights" is one exact set however many weights tie (zeros included): the
// threshold is the k-th smallest key (0-based) and a weight is kept when key ≥ threshold.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/cuda_stream.h"
#include "kernels/hostdevice.h"

namespace activeip {

ACTIVEIP_HD inline uint64_t magnitude_key(float w, uint32_t index) {
  uint32_t bits = 0;
#ifdef __CUDA_ARCH__
  bits = static_cast<uint32_t>(__float_as_int(w));
#else
  std::memcpy(&bits, &w, sizeof bits);
#endif
  return (static_cast<uint64_t>(bits & 0x7fffffffu) << 32) | index;
}

// A threshold that keeps every weight (k = 0) and one that prunes every weight (k = n).
inline constexpr uint64_t kKeepAll = 0, kPruneAll = ~uint64_t{0};

// keys[i] = magnitude_key(w[i], first + i).
void magnitude_keys_cpu(size_t n, const float* w, uint32_t first, uint64_t* keys);
// The k-th smallest (0-based) of n distinct keys; k < n. keys is left as it was.
uint64_t kth_smallest_key_cpu(size_t n, const uint64_t* keys, size_t k);
// mask[i] = magnitude_key(w[i], first + i) ≥ threshold ? 1 : 0.
void threshold_mask_cpu(size_t n, const float* w, uint32_t first, uint64_t threshold, float* mask);
// sum[c] += Σ_r x[r·C + c] over rows × C activations (NHWC flattened to rows), accumulated in
// double in row order: the mean activation per channel for fine-pruning.
void channel_sum_cpu(size_t rows, int C, const float* x, double* sum);

#ifdef ACTIVEIP_CUDA
void magnitude_keys_cuda(size_t n, const float* w, uint32_t first, uint64_t* keys, cudaStream_t stream);
// Device bytes kth_smallest_key_cuda needs for n keys (the sorted copy + CUB's radix-sort scratch).
size_t kth_smallest_key_workspace_bytes(size_t n);
// As kth_smallest_key_cpu, keys on the device: a CUB radix sort into the workspace, then the
// k-th key is copied to the host (the call waits for the stream).
uint64_t kth_smallest_key_cuda(size_t n, const uint64_t* keys, size_t k, void* workspace, size_t workspace_bytes,
                               cudaStream_t stream);
void threshold_mask_cuda(size_t n, const float* w, uint32_t first, uint64_t threshold, float* mask,
                         cudaStream_t stream);
void channel_sum_cuda(size_t rows, int C, const float* x, double* sum, cudaStream_t stream);
#endif

}  // namespace activeip
