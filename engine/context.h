// Context: everything an op needs besides its tensors — the device, the stream, the
// allocator, the number of CPU threads, and (later) the vendor library handles. There
// are no globals: layers, the trainer and the tests pass a Context explicitly.
#pragma once

#include <cstddef>
#include <memory>

#include "engine/tensor.h"
#include "kernels/cuda_stream.h"

namespace activeip {

// Where tensor storage comes from. The CUDA one caches freed blocks so that the step loop
// never calls cudaMalloc/cudaFree after its first iteration.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p, size_t bytes) = 0;
};

class Context {
 public:
  // threads ≤ 0: OpenMP's default. A CUDA device fails here, with a clear message,
  // when the build has no CUDA or the machine has no such device.
  explicit Context(Device device = Device::cpu(), int threads = 0);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  Device device() const { return device_; }
  bool is_cuda() const { return device_.is_cuda(); }
  int threads() const { return threads_; }
  Allocator& allocator() { return *allocator_; }

  // Waits for the device (no-op on the CPU).
  void synchronize();

#ifdef ACTIVEIP_CUDA
  cudaStream_t stream() const {
    return stream_;
  }
#endif

 private:
  Device device_;
  int threads_ = 0;
  std::unique_ptr<Allocator> allocator_;
#ifdef ACTIVEIP_CUDA
  cudaStream_t stream_ = nullptr;
#endif
};

// True when this build has CUDA and the machine has at least one usable device.
bool cuda_available();

}  // namespace activeip
