// Vendor library state for the comparators in kernels/vendor/: a cuBLAS handle and, when
// built with cuDNN (ACTIVEIP_CUDNN), a cuDNN handle, each created on first use and bound to
// one stream; one device workspace that grows to the largest request; and the cuDNN
// algorithms found per convolution shape. One per stream (the Context owns it); like the
// stream, it is not shared between host threads. CUBLAS_CHECK / CUDNN_CHECK throw
// activeip::Error with the library's status string, as CUDA_CHECK does for CUDA.
#pragma once

#ifdef ACTIVEIP_CUDA

#include <cublas_v2.h>

#include <array>
#include <cstddef>
#include <map>
#include <optional>

#include "kernels/conv2d.h"
#include "kernels/cuda_check.h"

#ifdef ACTIVEIP_CUDNN
#include <cudnn.h>
#endif

namespace activeip::detail {
[[noreturn]] inline void throw_cublas(cublasStatus_t status, const char* expr, const char* file, int line) {
  throw_ensure(expr, file, line, strfmt("cuBLAS error %s", cublasGetStatusString(status)));
}
#ifdef ACTIVEIP_CUDNN
[[noreturn]] inline void throw_cudnn(cudnnStatus_t status, const char* expr, const char* file, int line) {
  throw_ensure(expr, file, line, strfmt("cuDNN error %s", cudnnGetErrorString(status)));
}
#endif
}  // namespace activeip::detail

#define CUBLAS_CHECK(expr)                                                           \
  do {                                                                               \
    cublasStatus_t activeip_status_ = (expr);                                        \
    if (activeip_status_ != CUBLAS_STATUS_SUCCESS)                                   \
      ::activeip::detail::throw_cublas(activeip_status_, #expr, __FILE__, __LINE__); \
  } while (0)

#ifdef ACTIVEIP_CUDNN
#define CUDNN_CHECK(expr)                                                           \
  do {                                                                              \
    cudnnStatus_t activeip_status_ = (expr);                                        \
    if (activeip_status_ != CUDNN_STATUS_SUCCESS)                                   \
      ::activeip::detail::throw_cudnn(activeip_status_, #expr, __FILE__, __LINE__); \
  } while (0)
#endif

namespace activeip {

#ifdef ACTIVEIP_CUDNN
// The algorithm (with its math type and workspace size) that cudnnFind*Algorithm chose for
// each pass of one convolution shape; a pass is searched on its first call.
struct CudnnConvAlgos {
  std::optional<cudnnConvolutionFwdAlgoPerf_t> fprop;
  std::optional<cudnnConvolutionBwdDataAlgoPerf_t> dgrad;
  std::optional<cudnnConvolutionBwdFilterAlgoPerf_t> wgrad;
};
#endif

class VendorHandles {
 public:
  // Creates nothing yet: each library is initialised on its first use.
  explicit VendorHandles(cudaStream_t stream) : stream_(stream) {}
  ~VendorHandles();
  VendorHandles(const VendorHandles&) = delete;
  VendorHandles& operator=(const VendorHandles&) = delete;

  cudaStream_t stream() const { return stream_; }

  // cuBLAS with CUBLAS_DEFAULT_MATH: fp32 SGEMM stays fp32 (no TF32), so it compares with
  // our kernels at fp32 tolerance.
  cublasHandle_t cublas();

  // At least `bytes` of device memory, valid until the next call. Growing first waits for
  // the stream, since work queued earlier may still be using the old block.
  void* workspace(size_t bytes);

#ifdef ACTIVEIP_CUDNN
  cudnnHandle_t cudnn();
  // The (initially empty) algorithm choices of this convolution shape, kept for the
  // lifetime of the handles; the reference stays valid as other shapes are added.
  CudnnConvAlgos& conv_algos(const Conv2dShape& s);
#endif

 private:
  cudaStream_t stream_;
  cublasHandle_t cublas_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
#ifdef ACTIVEIP_CUDNN
  cudnnHandle_t cudnn_ = nullptr;
  std::map<std::array<int, 9>, CudnnConvAlgos> conv_algos_;  // N H W C K R S stride pad
#endif
};

}  // namespace activeip

#endif  // ACTIVEIP_CUDA
