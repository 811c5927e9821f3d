// The op-test harness, after ggml's test-backend-ops: an OpCase runs one op through the op
// boundary (engine/nn/ops.h) on whatever device a Context names — the CPU fast path, the CUDA
// kernels, or the cuDNN / cuBLAS comparators when the context asks for them — with its inputs
// copied there and its outputs poisoned with NaN first, and check_op compares every output
// with the case's float64 reference under the backend precision's tolerance (DESIGN §5).
#pragma once

#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

#include "engine/core/context.h"
#include "engine/core/tensor.h"
#include "tests/test_util.h"

namespace activeip::test {

// The arithmetic a backend runs an op in, and the relative-norm error allowed for each.
enum class Precision { FP32, TF32, BF16 };
struct Tolerances {
  double fp32 = 1e-5, tf32 = 5e-4, bf16 = 1e-2;
  Tolerance of(Precision p) const { return {.rel = p == Precision::FP32 ? fp32 : p == Precision::TF32 ? tf32 : bf16}; }
};

using Outputs = std::vector<std::vector<float>>;
using RefOutputs = std::vector<std::vector<double>>;

struct OpCase {
  std::string name;                       // "conv2d_fprop N1 28x28 C3 K17 3x3 stride1 pad1, bias"
  std::vector<std::string> outputs;       // names of what run / reference return, in order
  std::function<RefOutputs()> reference;  // float64
  std::function<Outputs(Context&)> run;   // on ctx's device; host copies of the outputs
  Tolerances tol = {};
  std::vector<bool> untouched = {};  // per output: the op must not write it at all (bit-exact)
};

// A host vector as a tensor on ctx's device (shape [n]).
template <class T>
Tensor on(Context& ctx, const std::vector<T>& v) {
  Tensor h = Tensor::host({static_cast<int64_t>(v.size())}, dtype_of<T>());
  std::copy(v.begin(), v.end(), h.data<T>());
  return h.to(ctx.device(), ctx);
}

// n NaNs on ctx's device: an output the op must overwrite completely.
inline Tensor nan_on(Context& ctx, size_t n) {
  return on(ctx, poisoned(n));
}

// A device tensor back on the host (waits for ctx's stream).
inline std::vector<float> host_of(Context& ctx, const Tensor& t) {
  const Tensor h = t.to(Device::cpu(), ctx);
  ctx.synchronize();
  const float* p = h.data<float>();
  return {p, p + h.numel()};
}

// Runs `c` on ctx and checks every output against the reference; returns the outputs, so a
// suite may also compare two backends with each other.
inline Outputs check_op(const OpCase& c, Context& ctx, Precision p = Precision::FP32) {
  CAPTURE(c.name);
  const Outputs got = c.run(ctx);
  const RefOutputs ref = c.reference();
  REQUIRE(got.size() == c.outputs.size());
  REQUIRE(ref.size() == c.outputs.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(c.outputs[i]);
    if (i < c.untouched.size() && c.untouched[i])
      CHECK(got[i] == to_float(ref[i]));
    else
      expect_close(got[i], ref[i], c.tol.of(p));
  }
  return got;
}

}  // namespace activeip::test
