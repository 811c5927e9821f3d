// SGD and learning-rate schedules.
#include "engine/train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "engine/nn/ops.h"
#include "engine/train/mask.h"

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
  ops::sgd_step(ctx, p, net_.params(), net_.grads(), momentum_, mask(), trainable());
}

Tensor Sgd::checked_flags(Context& ctx, const Tensor& flags, const char* what) const {
  ENSURE(flags.dtype() == DType::F32 && flags.numel() == net_.num_parameters(),
         "%s: expected %lld F32 flags (one per parameter of %s), got %lld %s", what,
         static_cast<long long>(net_.num_parameters()), net_.info().name.c_str(), static_cast<long long>(flags.numel()),
         dtype_name(flags.dtype()));
  const Tensor host = flags.to(Device::cpu(), ctx);
  ctx.synchronize();
  const float* f = host.data<float>();
  for (int64_t i = 0; i < host.numel(); ++i)
    ENSURE(f[i] == 0.0f || f[i] == 1.0f, "%s: element %lld is %g; flags must be 0 or 1", what,
           static_cast<long long>(i), static_cast<double>(f[i]));
  return host.reshape({host.numel()}).to(ctx.device(), ctx).clone(ctx);
}

void Sgd::set_mask(Context& ctx, const Tensor& mask) {
  if (!mask.defined() || mask.numel() == 0) {
    mask_ = Tensor();
    return;
  }
  mask_ = checked_flags(ctx, mask, "pruning mask");
  // Zero the pruned weights now: a frozen element is never touched by step(), so the mask
  // must already hold when training starts.
  apply_mask(net_, ctx, mask_);
}

void Sgd::set_trainable(Context& ctx, const Tensor& trainable) {
  trainable_ = trainable.defined() && trainable.numel() ? checked_flags(ctx, trainable, "trainable flags") : Tensor();
}

Tensor parameter_flags(const Network& net, const std::function<bool(const std::string&)>& pick) {
  Tensor flags = Tensor::host({net.num_parameters()});
  float* f = flags.data<float>();
  for (const NamedSlot& s : net.slots()) {
    if (s.slot.kind != SlotKind::Parameter) continue;
    const float v = pick(s.name) ? 1.0f : 0.0f;
    std::fill_n(f + s.offset, shape_numel(s.slot.shape), v);
  }
  return flags;
}

Tensor freeze_by_prefix(const Network& net, const std::vector<std::string>& frozen) {
  for (const std::string& p : frozen) {
    bool any = false;
    for (const NamedSlot& s : net.slots()) any = any || (s.slot.kind == SlotKind::Parameter && s.name.rfind(p, 0) == 0);
    ENSURE(any, "freeze: no parameter of %s starts with '%s'", net.info().name.c_str(), p.c_str());
  }
  return parameter_flags(net, [&](const std::string& name) {
    for (const std::string& p : frozen)
      if (name.rfind(p, 0) == 0) return false;
    return true;
  });
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
