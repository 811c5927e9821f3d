// SGD over the flat parameter buffer (one kernel per step) and the learning-rate
// schedules. The schedule is a pure function of the step, so a resumed run needs only
// the step count and the momentum buffer to continue exactly. A pruning mask and a
// per-element trainable flag (layer freezing), each flat over the parameters, go into
// the same kernel.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/nn/network.h"
#include "kernels/sgd.h"

namespace activeip {

class Sgd {
 public:
  Sgd(Network& net, Context& ctx, const SgdParams& params);
  // One step at learning rate lr (the schedule's value for this step).
  void step(Context& ctx, float lr);
  Tensor& momentum() { return momentum_; }
  const SgdParams& params() const { return params_; }

  // A 0/1 pruning mask over the flat parameters (any device; copied to the optimizer's):
  // the weights are multiplied by it at once and after every step, the gradient before,
  // so pruned weights stay exactly zero. Error unless it has num_parameters() elements,
  // each 0 or 1. An undefined tensor removes the mask.
  void set_mask(Context& ctx, const Tensor& mask);
  // A 0/1 flag per parameter element: 0 freezes it (weight and momentum untouched by
  // step()). Same checks as set_mask; an undefined tensor trains everything again.
  void set_trainable(Context& ctx, const Tensor& trainable);
  // Null when not set.
  const Tensor* mask() const { return mask_.defined() && mask_.numel() ? &mask_ : nullptr; }
  const Tensor* trainable() const { return trainable_.defined() && trainable_.numel() ? &trainable_ : nullptr; }

 private:
  Tensor checked_flags(Context& ctx, const Tensor& flags, const char* what) const;

  Network& net_;
  SgdParams params_;
  Tensor momentum_;
  Tensor mask_, trainable_;  // on the device, or empty
};

// Flags over the flat parameters, 1 where `pick(slot name)` is true, else 0 (host, F32).
Tensor parameter_flags(const Network& net, const std::function<bool(const std::string&)>& pick);
// The trainable flags that freeze every parameter whose name starts with one of `frozen`
// ("layer1." freezes that stage; a full name freezes one tensor). Error naming a prefix that
// matches no parameter.
Tensor freeze_by_prefix(const Network& net, const std::vector<std::string>& frozen);

struct ScheduleConfig {
  std::string kind = "cosine";  // constant | cosine | step | onecycle
  double lr = 0.1;              // peak / base learning rate
  int64_t total_steps = 1;
  int64_t warmup_steps = 0;         // linear warm-up from 0 (cosine, step, constant)
  std::vector<int64_t> milestones;  // step schedule: steps at which lr *= gamma
  double gamma = 0.1;
};

// lr at `step` (0-based). cosine: lr·½(1+cos(π·t)) after warm-up, t the fraction of the
// remaining steps; step: lr·gammaᵏ after k milestones; onecycle: as PyTorch's OneCycleLR
// (pct_start 0.3, cosine anneal, div_factor 25, final_div_factor 1e4; its warm-up is the
// first 30% and warmup_steps is ignored).
double learning_rate(const ScheduleConfig& s, int64_t step);
const std::vector<std::string>& schedule_names();

}  // namespace activeip
