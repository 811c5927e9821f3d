// SGD and learning-rate schedules.
#include "engine/optimizer.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "engine/ops.h"

namespace activeip {

Sgd::Sgd(Network& net, Context& ctx, const SgdParams& params) : net_(net), params_(params) {
  ENSURE(net.built(), "optimizer created for an unbuilt network");
  ENSURE(params.momentum >= 0.0f && params.momentum < 1.0f, "momentum %g is outside [0, 1)",
         static_cast<double>(params.momentum));
  ENSURE(params.weight_decay >= 0.0f, "weight decay %g is negative", static_cast<double>(params.weight_decay));
  ENSURE(!params.nesterov || params.momentum > 0.0f, "Nesterov momentum needs a momentum > 0");
  momentum_ = Tensor::empty({net.num_parameters()}, DType::F32, ctx);
  momentum_.zero(ctx);
}

void Sgd::step(Context& ctx, float lr) {
  SgdParams p = params_;
  p.lr = lr;
  ops::sgd_step(ctx, p, net_.params(), net_.grads(), momentum_, nullptr);
}

const std::vector<std::string>& schedule_names() {
  static const std::vector<std::string> names = {"constant", "cosine", "step", "onecycle"};
  return names;
}

double learning_rate(const ScheduleConfig& s, int64_t step) {
  const int64_t total = std::max<int64_t>(s.total_steps, 1);
  const double pi = std::numbers::pi;
  if (s.kind == "onecycle") {
    const double up = std::max(1.0, 0.3 * static_cast<double>(total) - 1.0);
    const double down = std::max(1.0, static_cast<double>(total) - 1.0 - up);
    const double initial = s.lr / 25.0, final_lr = initial / 1e4;
    const double t = static_cast<double>(step);
    auto cos_anneal = [&](double a, double b, double frac) { return b + (a - b) * 0.5 * (1.0 + std::cos(pi * frac)); };
    if (t <= up) return cos_anneal(initial, s.lr, t / up);
    return cos_anneal(s.lr, final_lr, std::min(1.0, (t - up) / down));
  }
  if (step < s.warmup_steps) return s.lr * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  if (s.kind == "constant") return s.lr;
  if (s.kind == "cosine") {
    const double span = static_cast<double>(std::max<int64_t>(total - s.warmup_steps, 1));
    const double t = static_cast<double>(step - s.warmup_steps) / span;
    return s.lr * 0.5 * (1.0 + std::cos(pi * std::min(t, 1.0)));
  }
  if (s.kind == "step") {
    double lr = s.lr;
    for (int64_t m : s.milestones)
      if (step >= m) lr *= s.gamma;
    return lr;
  }
  ENSURE(false, "unknown schedule '%s' (known: constant, cosine, step, onecycle)", s.kind.c_str());
  return 0;
}

}  // namespace activeip
