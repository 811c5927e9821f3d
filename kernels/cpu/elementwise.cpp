// Elementwise ops on the CPU over flat float arrays: ReLU forward/backward, residual add,
// axpy, fill and scale. Each element is independent, so a static OpenMP split gives the
// same bits for any thread count; small arrays stay on one thread.
#include "kernels/elementwise.h"

namespace activeip {

namespace {
// Below this many elements a parallel region costs more than the loop.
constexpr size_t kParallelMin = size_t{1} << 15;
}  // namespace

void relu_fwd_cpu(size_t n, const float* x, float* y) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (size_t i = 0; i < n; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];  // a NaN passes through, as in PyTorch
}

void relu_bwd_cpu(size_t n, const float* y, const float* dy, float* dx) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (size_t i = 0; i < n; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void add_cpu(size_t n, const float* a, const float* b, float* y) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (size_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

void axpy_cpu(size_t n, float alpha, const float* x, float* y) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (size_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void fill_cpu(size_t n, float value, float* y) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (size_t i = 0; i < n; ++i) y[i] = value;
}

void scale_cpu(size_t n, float alpha, float* y) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (size_t i = 0; i < n; ++i) y[i] *= alpha;
}

}  // namespace activeip
