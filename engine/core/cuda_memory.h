// CUDA memory plumbing: RAII device buffers, the caching allocator behind Tensor storage
// on CUDA, and explicit host/device copies. Compiled only with ACTIVEIP_CUDA; nothing
// here is visible to a CPU-only build.
#pragma once

#ifdef ACTIVEIP_CUDA

#include <cuda_runtime_api.h>

#include <cstddef>
#include <map>
#include <unordered_map>
#include <utility>

#include "engine/core/context.h"
#include "kernels/cuda_check.h"

namespace activeip::cuda {

// Number of usable devices; 0 (never an exception) when there is no driver or no GPU.
int device_count() noexcept;

// Device memory for n elements of T, freed on destruction; move-only.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) : n_(n) {
    if (n_) CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p_), n_ * sizeof(T)));
  }
  ~DeviceBuffer() {
    if (p_) cudaFree(p_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      if (p_) cudaFree(p_);
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  T* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

// Caches freed blocks by rounded size so that steady-state training allocates nothing
// from the driver. Blocks are tied to one stream (the context's), so reuse needs no
// synchronisation. Sizes round up to 512 bytes up to 1 MiB and to 2 MiB above; a request
// takes the smallest cached block that fits if it is at most twice the rounded size.
// Statistics count rounded block sizes. The destructor returns the cached blocks only:
// tensors must not outlive the Context that owns the allocator, since their deleters
// call back into it.
class CachingAllocator final : public Allocator {
 public:
  explicit CachingAllocator(int device);
  ~CachingAllocator() override;
  void* allocate(size_t bytes) override;
  void deallocate(void* p, size_t bytes) override;
  void release_cached();  // returns cached blocks to the driver
  size_t bytes_in_use() const { return in_use_; }
  size_t bytes_cached() const { return cached_; }
  size_t peak_bytes() const { return peak_; }
  size_t driver_allocations() const { return driver_allocs_; }  // cudaMalloc calls so far

 private:
  int device_;
  std::multimap<size_t, void*> free_;        // rounded size → block
  std::unordered_map<void*, size_t> sizes_;  // live block → rounded size
  size_t in_use_ = 0, cached_ = 0, peak_ = 0, driver_allocs_ = 0;
};

// Copies on `stream`, ordered with the kernels queued there. A pageable host source (all
// Tensor::host storage) may be reused as soon as copy_h2d returns; a pinned one only after
// the stream has reached the copy.
void copy_h2d(void* dst, const void* src, size_t bytes, cudaStream_t stream);
void copy_d2h(void* dst, const void* src, size_t bytes, cudaStream_t stream);  // waits
void copy_d2d(void* dst, const void* src, size_t bytes, cudaStream_t stream);
void memset_zero(void* dst, size_t bytes, cudaStream_t stream);

}  // namespace activeip::cuda

#endif  // ACTIVEIP_CUDA
