// VendorHandles (kernels/vendor/vendor.h): lazily created cuBLAS / cuDNN handles bound to the
// owner's stream, the growable workspace, and the per-shape cache of cuDNN algorithm choices.
#include "kernels/vendor/vendor.h"

namespace activeip {

VendorHandles::~VendorHandles() {
  // A destructor must not throw: failures while tearing down are ignored.
  if (cublas_) cublasDestroy(cublas_);
#ifdef ACTIVEIP_CUDNN
  if (cudnn_) cudnnDestroy(cudnn_);
#endif
  if (workspace_) {
    cudaStreamSynchronize(stream_);
    cudaFree(workspace_);
  }
}

cublasHandle_t VendorHandles::cublas() {
  if (!cublas_) {
    cublasHandle_t h = nullptr;
    CUBLAS_CHECK(cublasCreate(&h));
    try {
      CUBLAS_CHECK(cublasSetStream(h, stream_));
      CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    } catch (...) {
      cublasDestroy(h);
      throw;
    }
    cublas_ = h;
  }
  return cublas_;
}

void* VendorHandles::workspace(size_t bytes) {
  if (bytes > workspace_bytes_) {
    if (workspace_) {
      CUDA_CHECK(cudaStreamSynchronize(stream_));
      CUDA_CHECK(cudaFree(workspace_));
      workspace_ = nullptr;
      workspace_bytes_ = 0;
    }
    CUDA_CHECK(cudaMalloc(&workspace_, bytes));
    workspace_bytes_ = bytes;
  }
  return workspace_;
}

#ifdef ACTIVEIP_CUDNN
cudnnHandle_t VendorHandles::cudnn() {
  if (!cudnn_) {
    cudnnHandle_t h = nullptr;
    CUDNN_CHECK(cudnnCreate(&h));
    try {
      CUDNN_CHECK(cudnnSetStream(h, stream_));
    } catch (...) {
      cudnnDestroy(h);
      throw;
    }
    cudnn_ = h;
  }
  return cudnn_;
}

CudnnConvAlgos& VendorHandles::conv_algos(const Conv2dShape& s) {
  return conv_algos_[{s.N, s.H, s.W, s.C, s.K, s.R, s.S, s.stride, s.pad}];
}
#endif

}  // namespace activeip
