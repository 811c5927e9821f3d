// Context construction: the CPU allocator, or on CUDA the device, a stream and the
// caching allocator. Asking for CUDA in a CPU-only build, or for a device the machine
// does not have, fails here with a message that says which.
#include "engine/core/context.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>

#include "kernels/bf16.h"

#ifdef ACTIVEIP_CUDA
#include "engine/core/cuda_memory.h"
#include "kernels/vendor/vendor.h"
#endif

namespace activeip {

namespace {
class HostAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    ENSURE(p != nullptr, "out of host memory allocating %zu bytes", bytes);
    return p;
  }
  void deallocate(void* p, size_t) override { std::free(p); }
};
}  // namespace

ConvImpl parse_conv_impl(std::string_view name) {
  if (name == "custom") return ConvImpl::Custom;
  if (name == "cudnn") return ConvImpl::Cudnn;
  ENSURE(false, "unknown convolution implementation '%.*s' (custom or cudnn)", static_cast<int>(name.size()),
         name.data());
}

GemmImpl parse_gemm_impl(std::string_view name) {
  if (name == "custom") return GemmImpl::Custom;
  if (name == "cublas") return GemmImpl::Cublas;
  ENSURE(false, "unknown GEMM implementation '%.*s' (custom or cublas)", static_cast<int>(name.size()), name.data());
}

std::string impl_name(ConvImpl impl) {
  return impl == ConvImpl::Cudnn ? "cudnn" : "custom";
}

std::string impl_name(GemmImpl impl) {
  return impl == GemmImpl::Cublas ? "cublas" : "custom";
}

Precision parse_precision(std::string_view name) {
  if (name == "fp32") return Precision::F32;
  if (name == "bf16") return Precision::BF16;
  ENSURE(false, "unknown precision '%.*s' (fp32 or bf16)", static_cast<int>(name.size()), name.data());
}

std::string precision_name(Precision p) {
  return p == Precision::BF16 ? "bf16" : "fp32";
}

std::string precision_unsupported(const Device& device, Precision p, bool cpu_bf16) {
  if (p != Precision::BF16) return "";
  if (device.is_cuda()) return "--precision bf16 is not built for CUDA yet";
  if (!cpu_bf16) return "--precision bf16 needs a CPU with AVX512-BF16 (this one has none)";
  return "";
}

bool cuda_available() {
#ifdef ACTIVEIP_CUDA
  return cuda::device_count() > 0;
#else
  return false;
#endif
}

int cpu_threads(int threads) {
  return threads > 0 ? threads : omp_get_max_threads();
}

std::string describe_device(const Device& device, int threads) {
  const int n = cpu_threads(threads);
  return strfmt("%s, %d %sthread%s", device.str().c_str(), n, device.is_cuda() ? "CPU " : "", n == 1 ? "" : "s");
}

Context::Context(Device device, int threads) : device_(device), threads_(threads) {
  if (threads_ > 0) omp_set_num_threads(threads_);
  threads_ = omp_get_max_threads();
  if (!device_.is_cuda()) {
    allocator_ = std::make_unique<HostAllocator>();
    return;
  }
#ifdef ACTIVEIP_CUDA
  const int count = cuda::device_count();
  ENSURE(count > 0, "device %s requested but no CUDA device is usable on this machine", device_.str().c_str());
  ENSURE(device_.index < count, "device %s requested but this machine has %d CUDA device(s)", device_.str().c_str(),
         count);
  CUDA_CHECK(cudaSetDevice(device_.index));
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  allocator_ = std::make_unique<cuda::CachingAllocator>(device_.index);
#else
  ENSURE(false, "device %s requested but activeip was built without CUDA", device_.str().c_str());
#endif
}

Context::~Context() {
  workspace_ = Tensor();
#ifdef ACTIVEIP_CUDA
  if (stream_) cudaStreamSynchronize(stream_);
  vendor_.reset();
  allocator_.reset();
  if (stream_) cudaStreamDestroy(stream_);
#endif
}

void Context::synchronize() {
  ++host_syncs_;
#ifdef ACTIVEIP_CUDA
  if (stream_) CUDA_CHECK(cudaStreamSynchronize(stream_));
#endif
}

Tensor Context::workspace(int64_t floats) {
  return ensure_tensor(workspace_, {std::max<int64_t>(floats, 1)}, DType::F32, *this);
}

void Context::use(ConvImpl conv, GemmImpl gemm) {
  if (conv == ConvImpl::Cudnn || gemm == GemmImpl::Cublas)
    ENSURE(is_cuda(),
           "--conv-impl %s / --gemm-impl %s: the vendor implementations run on CUDA only (use --device cuda)",
           impl_name(conv).c_str(), impl_name(gemm).c_str());
#ifndef ACTIVEIP_CUDNN
  ENSURE(conv != ConvImpl::Cudnn, "--conv-impl cudnn: activeip was built without cuDNN");
#endif
  conv_impl_ = conv;
  gemm_impl_ = gemm;
}

void Context::set_precision(Precision p) {
  const std::string why = precision_unsupported(device_, p, cpu_has_avx512_bf16());
  if (!why.empty()) throw Error(why);  // the reason alone: it is the user's message
  precision_ = p;
}

#ifdef ACTIVEIP_CUDA
VendorHandles& Context::vendor() {
  ENSURE(is_cuda(), "vendor libraries need a CUDA context");
  if (!vendor_) vendor_ = std::make_unique<VendorHandles>(stream_);
  return *vendor_;
}
#endif

}  // namespace activeip
