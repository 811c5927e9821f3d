// Launch geometry shared by the simple, memory-bound CUDA kernels: 1-D blocks of 256
// threads, a grid sized for the work items but capped, and grid-stride loops indexed in
// size_t so that n may exceed 2^31. Included by .cu files only.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace activeip::launch {

inline constexpr unsigned kBlock = 256;

// 8192 blocks of 256 threads are several waves on any current GPU (an H100 keeps about
// 270K threads resident); past that, looping inside a thread is cheaper than more blocks.
inline constexpr size_t kMaxBlocks = 8192;

// Blocks for `items` work items (at least one, so a launch is always well formed).
inline unsigned grid_for(size_t items, unsigned block = kBlock) {
  const size_t blocks = (items + block - 1) / block;
  return static_cast<unsigned>(std::clamp<size_t>(blocks, 1, kMaxBlocks));
}

// First item and stride of a grid-stride loop: for (i = thread_index(); i < n; i += thread_count()).
__device__ inline size_t thread_index() {
  return static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline size_t thread_count() {
  return static_cast<size_t>(gridDim.x) * blockDim.x;
}

// float4 loads and stores need 16-byte alignment; views into flat buffers may lack it.
inline bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

}  // namespace activeip::launch
