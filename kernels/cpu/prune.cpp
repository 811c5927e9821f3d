// Magnitude pruning and activation statistics on the CPU (contract in kernels/prune.h): the
// reference the CUDA versions are tested against. The k-th key is found with nth_element on
// a copy (keys are distinct, so the result does not depend on the algorithm).
#include <algorithm>
#include <vector>

#include "kernels/prune.h"

namespace activeip {

void magnitude_keys_cpu(size_t n, const float* w, uint32_t first, uint64_t* keys) {
  for (size_t i = 0; i < n; ++i) keys[i] = magnitude_key(w[i], first + static_cast<uint32_t>(i));
}

uint64_t kth_smallest_key_cpu(size_t n, const uint64_t* keys, size_t k) {
  std::vector<uint64_t> copy(keys, keys + n);
  std::nth_element(copy.begin(), copy.begin() + static_cast<std::ptrdiff_t>(k), copy.end());
  return copy[k];
}

void threshold_mask_cpu(size_t n, const float* w, uint32_t first, uint64_t threshold, float* mask) {
  for (size_t i = 0; i < n; ++i)
    mask[i] = magnitude_key(w[i], first + static_cast<uint32_t>(i)) >= threshold ? 1.0f : 0.0f;
}

void channel_sum_cpu(size_t rows, int C, const float* x, double* sum) {
  for (size_t r = 0; r < rows; ++r)
    for (int c = 0; c < C; ++c) sum[c] += static_cast<double>(x[r * static_cast<size_t>(C) + static_cast<size_t>(c)]);
}

}  // namespace activeip
