// The rounding plan of --precision bf16, which the CPU path (AVX512-BF16) and the CUDA
// tensor-core kernels follow alike, so that the CPU is the GPU's reference:
//   - a convolution or linear pass (fprop, dgrad, wgrad) rounds its two GEMM operands to
//     bf16 (x and w; dy and w; x and dy) with round_to_bf16 below, multiplies them exactly
//     (a product of two bf16 fits in fp32) and accumulates in fp32, and writes fp32; only the
//     summation order may differ between devices;
//   - biases and their gradients are sums, not products: fp32 (double sums), as in fp32 runs;
//   - everything else stays fp32: master weights, activations, batch-norm statistics, the
//     loss, the optimizer and its state.
#pragma once

#include <cstdint>
#include <cstring>

namespace activeip {

// fp32 → bf16 bits, as VCVTNE2PS2BF16 (_mm512_cvtne2ps_pbh) rounds: to nearest, ties to even;
// a NaN stays a (quiet) NaN; denormal inputs become zero of the same sign.
inline uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7F800000u) == 0) return static_cast<uint16_t>((u >> 16) & 0x8000u);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

inline float bf16_to_float(uint16_t b) {
  const uint32_t u = uint32_t{b} << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// The value an operand takes in a bf16 pass.
inline float round_to_bf16(float f) {
  return bf16_to_float(bf16_bits(f));
}

// Whether this CPU (and its OS) runs AVX512-BF16; the bf16 CPU kernels need it.
bool cpu_has_avx512_bf16();

}  // namespace activeip
