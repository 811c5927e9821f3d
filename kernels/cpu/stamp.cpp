// Patch stamping on the CPU (contract in kernels/stamp.h): a copy of size×C elements per
// patch row. This is also the reference the CUDA kernel is tested against — the op is a
// pure copy, so both must agree bit for bit.
#include "kernels/stamp.h"

#include <cstddef>
#include <cstring>

namespace activeip {

namespace {

template <typename T>
void stamp_rows(const StampShape& s, const StampArgsOf<T>& a) {
  const size_t row = static_cast<size_t>(s.size) * s.C;
  for (int n = 0; n < s.N; ++n) {
    const int p = a.patch[n];
    if (p < 0) continue;
    const T* src = a.bank + static_cast<size_t>(p) * s.size * row;
    const int top = a.origin[2 * n], left = a.origin[2 * n + 1];
    for (int i = 0; i < s.size; ++i) {
      T* dst = a.x + ((static_cast<size_t>(n) * s.H + top + i) * s.W + left) * s.C;
      std::memcpy(dst, src + i * row, row * sizeof(T));
    }
  }
}

}  // namespace

void stamp_cpu(const StampShape& s, const StampArgs& a) {
  stamp_rows(s, a);
}

void stamp_cpu(const StampShape& s, const StampArgsU8& a) {
  stamp_rows(s, a);
}

}  // namespace activeip
