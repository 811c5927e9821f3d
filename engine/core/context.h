// Context: everything an op needs besides its tensors — the device, the stream, the
// allocator, the number of CPU threads, which implementation runs convolutions and GEMMs,
// in which precision, and the vendor library handles. There are no globals: layers, the
// trainer and the tests pass a Context explicitly.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "engine/core/tensor.h"
#include "kernels/cuda_stream.h"

namespace activeip {

class VendorHandles;

// Who runs the convolutions and the linear layers' GEMMs on CUDA: the engine's own kernels
// (the default) or the vendor libraries, as comparators (--conv-impl / --gemm-impl).
enum class ConvImpl { Custom, Cudnn };
enum class GemmImpl { Custom, Cublas };
// Parse "custom" / "cudnn" and "custom" / "cublas"; anything else throws Error naming it.
ConvImpl parse_conv_impl(std::string_view name);
GemmImpl parse_gemm_impl(std::string_view name);
std::string impl_name(ConvImpl impl);
std::string impl_name(GemmImpl impl);

// The arithmetic of the convolutions' and linear layers' products (--precision): fp32, or
// bf16 operands with fp32 accumulation (kernels/bf16.h's rounding plan); everything else runs
// in fp32 either way. Parse "fp32" / "bf16"; anything else throws Error naming it.
enum class Precision { F32, BF16 };
Precision parse_precision(std::string_view name);
std::string precision_name(Precision p);
// Why `device` cannot run `p`, or "" when it can: bf16 needs a CPU with AVX512-BF16 (whether
// this one has it is `cpu_bf16`, so that the answer for a CPU without it can be tested on
// any machine) and has no CUDA kernels yet.
std::string precision_unsupported(const Device& device, Precision p, bool cpu_bf16);

// Where tensor storage comes from. The CUDA one caches freed blocks so that the step loop
// never calls cudaMalloc/cudaFree after its first iteration.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p, size_t bytes) = 0;
};

class Profile;

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
  // How often this context has made the host wait: synchronize() calls (counted on the CPU
  // too, where they cost nothing) and copies from the device into host memory.
  int64_t host_syncs() const { return host_syncs_; }
  void note_host_sync() { ++host_syncs_; }

  // Where ProfileScopes on this context record their time (engine/core/profile.h); null,
  // the default: nothing is timed. Borrowed.
  void set_profile(Profile* profile) { profile_ = profile; }
  Profile* profile() const { return profile_; }

  // Scratch for one op at a time (batch norm's cross-block partial sums), F32 on this
  // context's device, grown to the largest request and then reused, so the step loop
  // allocates none: the ops of a context run in order on its stream, so no two hold it at
  // once. Valid until the next call.
  Tensor workspace(int64_t floats);

  // The vendor implementations need a CUDA device, and cuDNN a build that found it;
  // otherwise this throws with the reason and the context keeps the custom kernels.
  void use(ConvImpl conv, GemmImpl gemm);
  ConvImpl conv_impl() const { return conv_impl_; }
  GemmImpl gemm_impl() const { return gemm_impl_; }

  // Throws Error with precision_unsupported's reason when this device cannot run `p`; the
  // context then keeps its precision. The ops read it in their dispatch (engine/nn/ops.cpp).
  void set_precision(Precision p);
  Precision precision() const { return precision_; }

#ifdef ACTIVEIP_CUDA
  cudaStream_t stream() const {
    return stream_;
  }
  // cuBLAS / cuDNN handles and workspace on this context's stream, made on first use.
  VendorHandles& vendor();
#endif

 private:
  Device device_;
  int threads_ = 0;
  ConvImpl conv_impl_ = ConvImpl::Custom;
  GemmImpl gemm_impl_ = GemmImpl::Custom;
  Precision precision_ = Precision::F32;
  int64_t host_syncs_ = 0;
  Profile* profile_ = nullptr;
  std::unique_ptr<Allocator> allocator_;
  Tensor workspace_;  // from allocator_, released before it
#ifdef ACTIVEIP_CUDA
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<VendorHandles> vendor_;
#endif
};

// True when this build has CUDA and the machine has at least one usable device.
bool cuda_available();

// The CPU threads a Context made with `threads` runs: `threads` when positive, else OpenMP's
// default. Needs no Context, so that a command can report the count before it makes one.
int cpu_threads(int threads);

// Where work runs, for logs: "cpu, 1 thread", "cuda:0, 16 CPU threads" — the threads a
// Context made with `threads` runs.
std::string describe_device(const Device& device, int threads);

}  // namespace activeip
