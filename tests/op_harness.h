// The op-test harness, after ggml's test-backend-ops: an OpCase runs one op through the op
// boundary (engine/nn/ops.h) on whatever device a Context names — the CPU fast path, the CUDA
// kernels, or the cuDNN / cuBLAS comparators when the context asks for them — with its inputs
// copied there and its outputs poisoned with NaN first, and check_op compares every output
// with the case's float64 reference under the backend precision's tolerance (DESIGN §5). A
// case without a float64 reference (running statistics, argmax, pure data movement) takes the
// CPU op as its reference; the CPU suite skips those, the GPU suite runs them.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
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

// One output of a case. exact: equal to the reference, element by element (data movement, a
// selection, integer arithmetic, an output the op must leave alone); fp32_rel > 0: a bound of its own, justified at the
// case; zero_within > 0: a value that is 0 up to rounding, where a relative error means nothing.
struct Out {
  Out(const char* name_, bool exact_ = false, double fp32_rel_ = 0, double zero_within_ = 0)
      : name(name_), exact(exact_), fp32_rel(fp32_rel_), zero_within(zero_within_) {}
  std::string name;
  bool exact;
  double fp32_rel;
  double zero_within;  // > 0: the output is rounding noise around 0, |element| < zero_within
};

struct OpCase {
  std::string name;                       // "conv2d_fprop N1 28x28 C3 K17 3x3 stride1 pad1, bias"
  std::vector<Out> outputs;               // what run / reference return, in order
  std::function<RefOutputs()> reference;  // float64; null: the CPU op is the reference
  std::function<Outputs(Context&)> run;   // on ctx's device; host copies of the outputs
  Tolerances tol = {};
};

// A host vector as a tensor on ctx's device (shape [n]).
template <class T>
Tensor on(Context& ctx, const std::vector<T>& v) {
  Tensor h = Tensor::host({static_cast<int64_t>(v.size())}, dtype_of<T>());
  std::copy(v.begin(), v.end(), h.data<T>());
  return h.to(ctx.device(), ctx);
}

// As `on`, `offset` floats into its own allocation: offset 1 takes a vectorised kernel off its
// aligned path (the float before it holds NaN, which no output may show).
inline Tensor on_at(Context& ctx, const std::vector<float>& v, size_t offset) {
  std::vector<float> padded(offset, std::numeric_limits<float>::quiet_NaN());
  padded.insert(padded.end(), v.begin(), v.end());
  return on(ctx, padded).slice(static_cast<int64_t>(offset), static_cast<int64_t>(padded.size()));
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

// The reference outputs of `c`: its float64 specification, or the CPU op's outputs.
inline RefOutputs reference_of(const OpCase& c) {
  if (c.reference) return c.reference();
  Context cpu;
  RefOutputs ref;
  for (const std::vector<float>& o : c.run(cpu)) ref.push_back(to_double(o));
  return ref;
}

// Runs `c` on ctx and checks every output against the reference (worst relative error and
// first NaN reported by expect_close); returns the outputs, so that a suite may also compare
// two backends with each other.
inline Outputs check_op(const OpCase& c, Context& ctx, Precision p = Precision::FP32) {
  CAPTURE(c.name);
  const Outputs got = c.run(ctx);
  const RefOutputs ref = reference_of(c);
  REQUIRE(got.size() == c.outputs.size());
  REQUIRE(ref.size() == c.outputs.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const Out& o = c.outputs[i];
    CAPTURE(o.name);
    if (o.exact) {
      const std::vector<float> want = to_float(ref[i]);
      REQUIRE(got[i].size() == want.size());
      size_t first = 0;
      while (first < want.size() && got[i][first] == want[first]) ++first;  // a NaN never passes
      INFO("first differing element " << first << " of " << want.size());
      CHECK(first == want.size());
    } else if (o.zero_within > 0) {
      for (const float g : got[i]) CHECK(std::fabs(g) < o.zero_within);
    } else {
      expect_close(got[i], ref[i], o.fp32_rel > 0 && p == Precision::FP32 ? Tolerance{o.fp32_rel} : c.tol.of(p));
    }
  }
  return got;
}

}  // namespace activeip::test
