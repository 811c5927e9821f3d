// What the benchmark files share and the CLI does not see: timing one repetition at a time,
// filling buffers, relative errors, the L2-defeating rotation and the comparators' reasons.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/core/context.h"
#include "engine/core/tensor.h"

namespace activeip::bench::detail {

// Runs fn(i) for i in [0, warmup) untimed, then for i in [warmup, warmup + reps) each timed on
// its own: CUDA events around each call on ctx's stream (no host gaps are counted), or the
// steady clock on the CPU. Returns the `reps` times in milliseconds.
std::vector<double> time_reps(Context& ctx, int warmup, int reps, const std::function<void(int)>& fn);

// A float tensor of n elements on ctx's device filled with nonzero values in ±[0.1, 1]
// (a fixed pseudo-random pattern; `salt` shifts it so that buffers differ).
Tensor random_tensor(int64_t n, uint64_t salt, Context& ctx);
// The tensor's floats on the host.
std::vector<float> host_floats(const Tensor& t, Context& ctx);

// ‖got − ref‖₂ / ‖ref‖₂, NaN when got holds a NaN.
double rel_l2(const std::vector<float>& got, const std::vector<float>& ref);
double rel_l2(const std::vector<float>& got, const std::vector<double>& ref);

// Bytes of inputs to rotate through: `requested` when positive, else twice the device's L2
// on CUDA and 0 on the CPU.
int64_t rotate_bytes(const Device& device, int64_t requested);
// How many copies of a set of `set_bytes` rotate through `bytes` (1 to 64).
int rotation_sets(int64_t set_bytes, int64_t bytes);

// Why cuDNN cannot be the comparator on `device`, or "" when it can.
std::string cudnn_missing(const Device& device);
// Why cuBLAS cannot, or "".
std::string cublas_missing(const Device& device);

// {"median_ms", "min_ms", "max_ms", "reps", "tflops"} of a timing with `flops` per repetition.
nlohmann::json timing_json(const std::vector<double>& ms, double flops);

}  // namespace activeip::bench::detail
