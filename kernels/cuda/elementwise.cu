// CUDA elementwise ops over flat float arrays (contracts in kernels/elementwise.h). One
// grid-stride kernel applies a per-element functor f(a, b) → y; when every pointer it
// touches is 16-byte aligned it moves float4s and finishes the n % 4 tail with scalars.
// In-place forms (y aliasing an input) are safe: each element is read before it is
// written, by the same thread.
#include "kernels/elementwise.h"

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda_check.h"

namespace activeip {
namespace {

// Each functor reads its first kInputs arrays (a, then b); unused operands arrive as 0.
struct ReluFwd {
  static constexpr int kInputs = 1;
  // Written as a comparison rather than fmaxf so that a NaN input stays visible downstream.
  __device__ float operator()(float x, float) const { return x < 0.0f ? 0.0f : x; }
};
struct ReluBwd {
  static constexpr int kInputs = 2;
  __device__ float operator()(float y, float dy) const { return y > 0.0f ? dy : 0.0f; }
};
struct Add {
  static constexpr int kInputs = 2;
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct Axpy {
  static constexpr int kInputs = 2;
  float alpha;
  __device__ float operator()(float x, float y) const { return y + alpha * x; }
};
struct Fill {
  static constexpr int kInputs = 0;
  float value;
  __device__ float operator()(float, float) const { return value; }
};
struct Scale {
  static constexpr int kInputs = 1;
  float alpha;
  __device__ float operator()(float y, float) const { return alpha * y; }
};

template <class Op, bool kVec4>
static __global__ void map_kernel(size_t n, const float* a, const float* b, float* y, Op op) {
  const size_t start = launch::thread_index(), stride = launch::thread_count();
  size_t head = 0;  // elements already covered by the float4 loop
  if constexpr (kVec4) {
    const size_t n4 = n / 4;
    for (size_t i = start; i < n4; i += stride) {
      float4 va{}, vb{};
      if constexpr (Op::kInputs >= 1) va = reinterpret_cast<const float4*>(a)[i];
      if constexpr (Op::kInputs >= 2) vb = reinterpret_cast<const float4*>(b)[i];
      reinterpret_cast<float4*>(y)[i] = make_float4(op(va.x, vb.x), op(va.y, vb.y), op(va.z, vb.z), op(va.w, vb.w));
    }
    head = n4 * 4;
  }
  for (size_t i = head + start; i < n; i += stride)
    y[i] = op(Op::kInputs >= 1 ? a[i] : 0.0f, Op::kInputs >= 2 ? b[i] : 0.0f);
}

template <class Op>
void launch_map(size_t n, const float* a, const float* b, float* y, Op op, cudaStream_t stream) {
  if (n == 0) return;
  const bool vec4 =
      launch::aligned16(y) && (Op::kInputs < 1 || launch::aligned16(a)) && (Op::kInputs < 2 || launch::aligned16(b));
  if (vec4)
    map_kernel<Op, true><<<launch::grid_for((n + 3) / 4), launch::kBlock, 0, stream>>>(n, a, b, y, op);
  else
    map_kernel<Op, false><<<launch::grid_for(n), launch::kBlock, 0, stream>>>(n, a, b, y, op);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void relu_fwd_cuda(size_t n, const float* x, float* y, cudaStream_t stream) {
  launch_map(n, x, nullptr, y, ReluFwd{}, stream);
}

void relu_bwd_cuda(size_t n, const float* y, const float* dy, float* dx, cudaStream_t stream) {
  launch_map(n, y, dy, dx, ReluBwd{}, stream);
}

void add_cuda(size_t n, const float* a, const float* b, float* y, cudaStream_t stream) {
  launch_map(n, a, b, y, Add{}, stream);
}

void axpy_cuda(size_t n, float alpha, const float* x, float* y, cudaStream_t stream) {
  launch_map(n, x, y, y, Axpy{alpha}, stream);
}

void fill_cuda(size_t n, float value, float* y, cudaStream_t stream) {
  launch_map(n, nullptr, nullptr, y, Fill{value}, stream);
}

void scale_cuda(size_t n, float alpha, float* y, cudaStream_t stream) {
  launch_map(n, y, nullptr, y, Scale{alpha}, stream);
}

}  // namespace activeip
