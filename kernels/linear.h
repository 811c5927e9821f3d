// Fully connected layer, PyTorch layout: y = x·Wᵀ + b with x N×IN, W OUT×IN, b OUT, y N×OUT.
// Backward overwrites dx (N×IN) and ADDS into dw (OUT×IN) and db (OUT, when not null).
#pragma once

#include "kernels/cuda_stream.h"

namespace activeip {

struct LinearShape {
  int N = 0, IN = 0, OUT = 0;
  double flops() const { return 2.0 * N * IN * OUT; }
};

void linear_fwd_cpu(const LinearShape& s, const float* x, const float* w, const float* b, float* y);
void linear_bwd_cpu(const LinearShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                    float* db);

// Specification in double.
void linear_fwd_ref(const LinearShape& s, const double* x, const double* w, const double* b, double* y);
void linear_bwd_ref(const LinearShape& s, const double* x, const double* w, const double* dy, double* dx, double* dw,
                    double* db);

}  // namespace activeip
