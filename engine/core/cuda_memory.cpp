// Device discovery, the caching allocator behind CUDA tensor storage, and explicit
// host/device copies on the context's stream. Block sizes are rounded (512 B below 1 MiB,
// 2 MiB above) so that a steady-state step loop finds every request in the cache.
#include "engine/core/cuda_memory.h"

#ifdef ACTIVEIP_CUDA

#include <algorithm>

namespace activeip::cuda {

namespace {

constexpr size_t kSmallLimit = size_t{1} << 20;  // requests up to 1 MiB
constexpr size_t kSmallRound = 512;
constexpr size_t kLargeRound = size_t{2} << 20;

size_t round_block(size_t bytes) {
  const size_t unit = bytes <= kSmallLimit ? kSmallRound : kLargeRound;
  return (bytes + unit - 1) / unit * unit;
}

// Makes `device` current for the driver calls of one allocator and restores the caller's
// device afterwards, so contexts on different GPUs can share a thread.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace

int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: clear the error so no later check reports it
    return 0;
  }
  return n;
}

CachingAllocator::CachingAllocator(int device) : device_(device) {}

// Blocks still in use are not freed here: tensors must not outlive the Context that owns
// this allocator (their deleters call back into it). A destructor must not throw, so a
// failure to return the cache (after an earlier device fault) is dropped.
CachingAllocator::~CachingAllocator() {
  try {
    release_cached();
  } catch (const Error&) {
  }
}

void* CachingAllocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t rounded = round_block(bytes);
  // Best fit: the smallest cached block that holds the request, but never one more than
  // twice its size, so that small temporaries do not pin the blocks of large activations.
  auto it = free_.lower_bound(rounded);
  void* p = nullptr;
  size_t size = rounded;
  if (it != free_.end() && it->first <= 2 * rounded) {
    size = it->first;
    p = it->second;
    free_.erase(it);
    cached_ -= size;
  } else {
    DeviceGuard guard(device_);
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation && !free_.empty()) {
      cudaGetLastError();  // an out-of-memory error is not sticky; clear it and retry once
      release_cached();
      err = cudaMalloc(&p, size);
    }
    if (err != cudaSuccess) cudaGetLastError();
    ENSURE(err == cudaSuccess, "cannot allocate %zu bytes on cuda:%d (%s); %zu bytes in use, %zu cached", size, device_,
           cudaGetErrorString(err), in_use_, cached_);
    ++driver_allocs_;
  }
  sizes_.emplace(p, size);
  in_use_ += size;
  peak_ = std::max(peak_, in_use_);
  return p;
}

void CachingAllocator::deallocate(void* p, size_t) {
  if (p == nullptr) return;
  const auto it = sizes_.find(p);
  ENSURE(it != sizes_.end(), "deallocate of %p, which this allocator for cuda:%d did not hand out", p, device_);
  const size_t size = it->second;
  sizes_.erase(it);
  in_use_ -= size;
  // Work already queued on the context's stream may still read the block; any later user
  // is queued behind it on the same stream, so the block can be handed out again at once.
  free_.emplace(size, p);
  cached_ += size;
}

void CachingAllocator::release_cached() {
  DeviceGuard guard(device_);
  // cudaFree waits for the device, so blocks freed on the host but still read by queued
  // work are returned only after that work has finished.
  cudaError_t first = cudaSuccess;
  for (const auto& [bytes, p] : free_) {
    const cudaError_t err = cudaFree(p);
    if (first == cudaSuccess) first = err;
  }
  free_.clear();
  cached_ = 0;
  CUDA_CHECK(first);
}

void copy_h2d(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  if (bytes) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream));
}

void copy_d2h(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
}

void copy_d2d(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  if (bytes) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
}

void memset_zero(void* dst, size_t bytes, cudaStream_t stream) {
  if (bytes) CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream));
}

}  // namespace activeip::cuda

#endif  // ACTIVEIP_CUDA
