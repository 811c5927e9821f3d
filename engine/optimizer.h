// SGD over the flat parameter buffer (one kernel per step) and the learning-rate
// schedules. The schedule is a pure function of the step, so a resumed run needs only
// the step count and the momentum buffer to continue exactly.
#pragma once

#include <string>
#include <vector>

#include "engine/network.h"
#include "kernels/sgd.h"

namespace activeip {

class Sgd {
 public:
  Sgd(Network& net, Context& ctx, const SgdParams& params);
  // One step at learning rate lr (the schedule's value for this step).
  void step(Context& ctx, float lr);
  Tensor& momentum() { return momentum_; }
  const SgdParams& params() const { return params_; }

 private:
  Network& net_;
  SgdParams params_;
  Tensor momentum_;
};

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
