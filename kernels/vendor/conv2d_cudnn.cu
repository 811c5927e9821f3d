// cuDNN comparators for conv2d (contract in kernels/conv2d.h): NHWC activations
// (CUDNN_TENSOR_NHWC), K×R×S×C weights (cuDNN's NHWC filter format), cross-correlation.
// fprop overwrites y and adds the bias with cudnnAddTensor; dgrad overwrites dx (beta 0);
// wgrad and cudnnConvolutionBackwardBias add into dw and dbias (beta 1). The convolution
// runs with CUDNN_FMA_MATH, so no TF32, and its algorithm per pass and shape is the fastest
// that cudnnFind*Algorithm reports, found on first use and cached in VendorHandles.
#include "kernels/conv2d.h"
#include "kernels/vendor/vendor.h"

namespace activeip {
namespace {

// Algorithms needing more workspace than this are passed over (FFT variants can ask for
// gigabytes), so that a comparator run does not crowd out the activations.
constexpr size_t kMaxWorkspaceBytes = size_t(1) << 30;

class TensorDesc {
 public:
  TensorDesc() { CUDNN_CHECK(cudnnCreateTensorDescriptor(&d_)); }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d_); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  operator cudnnTensorDescriptor_t() const { return d_; }

 private:
  cudnnTensorDescriptor_t d_ = nullptr;
};

class FilterDesc {
 public:
  FilterDesc() { CUDNN_CHECK(cudnnCreateFilterDescriptor(&d_)); }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d_); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
  operator cudnnFilterDescriptor_t() const { return d_; }

 private:
  cudnnFilterDescriptor_t d_ = nullptr;
};

class ConvDesc {
 public:
  ConvDesc() { CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d_)); }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d_); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
  operator cudnnConvolutionDescriptor_t() const { return d_; }

 private:
  cudnnConvolutionDescriptor_t d_ = nullptr;
};

// The descriptors of one call. They are cheap host objects, made per call; only the
// algorithm search, which runs kernels, is cached.
struct ConvDescriptors {
  TensorDesc x, y, bias;
  FilterDesc w;
  ConvDesc conv;

  explicit ConvDescriptors(const Conv2dShape& s) {
    ENSURE(s.N > 0 && s.H > 0 && s.W > 0 && s.C > 0 && s.K > 0 && s.R > 0 && s.S > 0 && s.stride > 0 && s.pad >= 0 &&
               s.P() > 0 && s.Q() > 0,
           "conv2d cuDNN: bad shape N=%d H=%d W=%d C=%d K=%d R=%d S=%d stride=%d pad=%d", s.N, s.H, s.W, s.C, s.K, s.R,
           s.S, s.stride, s.pad);
    // Dimensions are given in NCHW order; the format says how they are laid out.
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, s.N, s.C, s.H, s.W));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, s.N, s.K, s.P(), s.Q()));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(bias, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, s.K, 1, 1));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, s.K, s.C, s.R, s.S));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, s.pad, s.pad, s.stride, s.stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                                CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH));
    int n = 0, k = 0, p = 0, q = 0;
    CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv, x, w, &n, &k, &p, &q));
    ENSURE(n == s.N && k == s.K && p == s.P() && q == s.Q(), "cuDNN output %d×%d×%d×%d ≠ N=%d K=%d P=%d Q=%d", n, k, p,
           q, s.N, s.K, s.P(), s.Q());
  }
};

// The first (fastest) result that ran, uses no tensor-core math and fits the workspace cap.
template <class Perf>
Perf pick(const Perf* results, int count, const char* pass, const Conv2dShape& s) {
  for (int i = 0; i < count; ++i) {
    const Perf& r = results[i];
    if (r.status != CUDNN_STATUS_SUCCESS || r.memory > kMaxWorkspaceBytes) continue;
    if (r.mathType == CUDNN_TENSOR_OP_MATH || r.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
    return r;
  }
  ENSURE(false, "cuDNN has no fp32 %s algorithm for N=%d H=%d W=%d C=%d K=%d R=%d S=%d stride=%d pad=%d", pass, s.N,
         s.H, s.W, s.C, s.K, s.R, s.S, s.stride, s.pad);
  return {};  // not reached
}

cudnnConvolutionFwdAlgoPerf_t fprop_algo(VendorHandles& h, const Conv2dShape& s, const ConvDescriptors& d) {
  CudnnConvAlgos& algos = h.conv_algos(s);
  if (!algos.fprop) {
    cudnnConvolutionFwdAlgoPerf_t results[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int count = 0;
    CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(h.cudnn(), d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                     &count, results));
    algos.fprop = pick(results, count, "fprop", s);
  }
  return *algos.fprop;
}

cudnnConvolutionBwdDataAlgoPerf_t dgrad_algo(VendorHandles& h, const Conv2dShape& s, const ConvDescriptors& d) {
  CudnnConvAlgos& algos = h.conv_algos(s);
  if (!algos.dgrad) {
    cudnnConvolutionBwdDataAlgoPerf_t results[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int count = 0;
    CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(h.cudnn(), d.w, d.y, d.conv, d.x,
                                                          CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, results));
    algos.dgrad = pick(results, count, "dgrad", s);
  }
  return *algos.dgrad;
}

cudnnConvolutionBwdFilterAlgoPerf_t wgrad_algo(VendorHandles& h, const Conv2dShape& s, const ConvDescriptors& d) {
  CudnnConvAlgos& algos = h.conv_algos(s);
  if (!algos.wgrad) {
    cudnnConvolutionBwdFilterAlgoPerf_t results[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int count = 0;
    CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(h.cudnn(), d.x, d.y, d.conv, d.w,
                                                            CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, results));
    algos.wgrad = pick(results, count, "wgrad", s);
  }
  return *algos.wgrad;
}

}  // namespace

void conv2d_fprop_cudnn(VendorHandles& h, const Conv2dShape& s, const float* x, const float* w, const float* bias,
                        float* y) {
  const ConvDescriptors d(s);
  const cudnnConvolutionFwdAlgoPerf_t algo = fprop_algo(h, s, d);
  void* workspace = h.workspace(algo.memory);
  const float one = 1.0f, zero = 0.0f;
  CUDNN_CHECK(cudnnConvolutionForward(h.cudnn(), &one, d.x, x, d.w, w, d.conv, algo.algo, workspace, algo.memory, &zero,
                                      d.y, y));
  if (bias) CUDNN_CHECK(cudnnAddTensor(h.cudnn(), &one, d.bias, bias, &one, d.y, y));
}

void conv2d_dgrad_cudnn(VendorHandles& h, const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  const ConvDescriptors d(s);
  const cudnnConvolutionBwdDataAlgoPerf_t algo = dgrad_algo(h, s, d);
  void* workspace = h.workspace(algo.memory);
  const float one = 1.0f, zero = 0.0f;
  CUDNN_CHECK(cudnnConvolutionBackwardData(h.cudnn(), &one, d.w, w, d.y, dy, d.conv, algo.algo, workspace, algo.memory,
                                           &zero, d.x, dx));
}

void conv2d_wgrad_cudnn(VendorHandles& h, const Conv2dShape& s, const float* x, const float* dy, float* dw,
                        float* dbias) {
  const ConvDescriptors d(s);
  const cudnnConvolutionBwdFilterAlgoPerf_t algo = wgrad_algo(h, s, d);
  void* workspace = h.workspace(algo.memory);
  const float one = 1.0f;
  CUDNN_CHECK(cudnnConvolutionBackwardFilter(h.cudnn(), &one, d.x, x, d.y, dy, d.conv, algo.algo, workspace,
                                             algo.memory, &one, d.w, dw));
  if (dbias) CUDNN_CHECK(cudnnConvolutionBackwardBias(h.cudnn(), &one, d.y, dy, &one, d.bias, dbias));
}

}  // namespace activeip
