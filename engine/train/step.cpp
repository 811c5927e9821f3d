// The step strategies and the loss they train on. SAM moves the weights by e from
// ops::sam_ascent (per-tensor norms and the move, on the device), takes the gradient there
// and puts weights, running statistics and counters back as the first pass left them.
#include "engine/train/step.h"

#include <algorithm>
#include <climits>
#include <set>
#include <string>

#include "engine/core/profile.h"
#include "engine/core/random.h"
#include "engine/nn/ops.h"
#include "engine/train/mask.h"
#include "engine/train/trainer.h"

namespace activeip {

void StepLoss::set_targets(TargetProvider* provider) {
  provider_ = provider;
  if (provider) soft_loss_ = SoftTargetCrossEntropy(provider->temperature());
}

void StepLoss::prepare(Context& ctx, const Tensor& x, const Tensor& labels) {
  ProfileScope scope(ctx, "loss targets", "step");
  labels_ = labels;
  if (provider_) provider_->targets(ctx, x, soft_targets_);
}

void StepLoss::set_spread(float weight, const Tensor& rows) {
  spread_weight_ = weight;
  spread_rows_ = rows;
}

void StepLoss::forward(Context& ctx, const Tensor& logits, bool tally) {
  ProfileScope scope(ctx, "loss", "forward");
  logits_ = logits;
  if (provider_)
    soft_loss_.forward(ctx, logits, soft_targets_, tally);
  else
    labels_loss_.forward(ctx, logits, labels_, tally);
}

LossResult StepLoss::read(Context& ctx) {
  return provider_ ? soft_loss_.read(ctx) : labels_loss_.read(ctx);
}

void StepLoss::reset(Context& ctx) {
  soft_loss_.reset(ctx);
  labels_loss_.reset(ctx);
}

Tensor StepLoss::backward(Context& ctx) {
  ProfileScope scope(ctx, "loss", "backward");
  Tensor d = provider_ ? soft_loss_.backward(ctx) : labels_loss_.backward(ctx);
  if (spread_weight_ > 0) {
    const XentShape s{static_cast<int>(logits_.dim(0)), static_cast<int>(logits_.dim(1))};
    ops::logit_spread_bwd(ctx, s, spread_weight_, logits_, spread_rows_, d);
  }
  if (scale_ != 1.0f) ops::scale(ctx, scale_, d);
  return d;
}

void PlainStep::gradient(Context& ctx, Network& net, StepLoss& loss, const Tensor& x, const BatchRows&) {
  {
    ProfileScope scope(ctx, "zero grad", "step");
    net.zero_grad(ctx);
  }
  loss.forward(ctx, net.forward(ctx, x));
  net.backward(ctx, loss.backward(ctx));
}

Tensor parameter_segments(const Network& net) {
  // The modules with running statistics: the batch norms (torchvision's names, "bn1.").
  std::set<std::string> norms;
  const std::string stat = "running_mean";
  for (const NamedSlot& s : net.slots())
    if (s.slot.kind == SlotKind::Buffer && s.name.size() > stat.size() &&
        s.name.compare(s.name.size() - stat.size(), stat.size(), stat) == 0)
      norms.insert(s.name.substr(0, s.name.size() - stat.size()));
  std::vector<int32_t> pairs;
  for (const NamedSlot& s : net.slots()) {
    if (s.slot.kind != SlotKind::Parameter || norms.count(s.name.substr(0, s.name.rfind('.') + 1))) continue;
    const int64_t end = s.offset + shape_numel(s.slot.shape);
    ENSURE(end <= INT32_MAX, "%s ends at element %lld of the parameters; SAM indexes them in 32 bits", s.name.c_str(),
           static_cast<long long>(end));
    pairs.push_back(static_cast<int32_t>(s.offset));
    pairs.push_back(static_cast<int32_t>(end));
  }
  Tensor t = Tensor::host({static_cast<int64_t>(pairs.size())}, DType::I32);
  std::copy(pairs.begin(), pairs.end(), t.data<int32_t>());
  return t;
}

SamStep::SamStep(Context& ctx, const Network& net, double rho, bool extra_only) : rho_(rho), extra_only_(extra_only) {
  const Shape p{net.num_parameters()};
  const Tensor segments = parameter_segments(net);
  shape_ = {net.num_parameters(), static_cast<int>(segments.numel() / 2)};
  segments_ = segments.to(ctx.device(), ctx);
  norms_ = Tensor::empty({2 * int64_t{shape_.segments} * 8}, DType::U8, ctx);
  e_ = Tensor::empty(p, DType::F32, ctx);
  if (extra_only) grads_ = Tensor::empty(p, DType::F32, ctx);
  net.snapshot(ctx, at_w_);  // sizes the scratch
}

void SamStep::set_mask(Context&, const Tensor* mask) {
  mask_ = mask && mask->numel() > 0 ? mask : nullptr;
}

const Tensor& rows_of(Context& ctx, const Tensor& d, const BatchRows& rows, bool clean, Tensor& out) {
  ensure_tensor(out, d.shape(), DType::F32, ctx).copy_from(d, ctx);
  // Zero each run of consecutive rows on the other side, one fill per run.
  const int n = rows.size();
  for (int begin = 0; begin < n;) {
    const bool is_clean = rows.role[static_cast<size_t>(begin)] == kCleanRow;
    int end = begin + 1;
    while (end < n && (rows.role[static_cast<size_t>(end)] == kCleanRow) == is_clean) ++end;
    if (is_clean != clean) {
      Tensor run = out.slice(begin, end);
      ops::fill(ctx, 0.0f, run);
    }
    begin = end;
  }
  return out;
}

void SamStep::gradient(Context& ctx, Network& net, StepLoss& loss, const Tensor& x, const BatchRows& rows) {
  net.zero_grad(ctx);
  loss.forward(ctx, net.forward(ctx, x));
  const Tensor dlogits = loss.backward(ctx);

  // The ascent: the gradient at w of the whole batch, or of the rows that are not clean; the
  // mask keeps pruned weights at zero in the second pass too.
  net.backward(ctx, extra_only_ ? rows_of(ctx, dlogits, rows, false, dlogits_) : dlogits);
  ops::sam_ascent(ctx, shape_, rho_, {net.params(), net.grads(), segments_, mask_, norms_, e_});
  if (extra_only_) {  // the clean rows' own gradient is taken at w, from the same forward pass
    net.zero_grad(ctx);
    net.backward(ctx, rows_of(ctx, dlogits, rows, true, dlogits_));
    grads_.copy_from(net.grads(), ctx);
  }

  // The second pass at w + e; then back to w and to the running statistics of the first pass.
  net.snapshot(ctx, at_w_);

  ops::axpy(ctx, 1.0f, e_, net.params());
  net.zero_grad(ctx);
  loss.forward(ctx, net.forward(ctx, x), false);
  const Tensor moved = loss.backward(ctx);
  net.backward(ctx, extra_only_ ? rows_of(ctx, moved, rows, false, dlogits_) : moved);
  if (extra_only_) ops::axpy(ctx, 1.0f, grads_, net.grads());

  net.restore(ctx, at_w_);
}

SimulatedAttackStep::SimulatedAttackStep(std::unique_ptr<StepStrategy> inner, const TrainConfig& config, Context& ctx,
                                         const Network& net)
    : inner_(std::move(inner)),
      every_(config.attack_every),
      steps_(config.attack_steps),
      weight_(config.attack_weight),
      seed_(config.seed) {
  grads_ = Tensor::empty({net.num_parameters()}, DType::F32, ctx);
  net.snapshot(ctx, at_w_);  // sizes the scratch
}

void SimulatedAttackStep::begin_step(uint64_t step) {
  step_ = step;
  inner_->begin_step(step);
}

void SimulatedAttackStep::set_mask(Context& ctx, const Tensor* mask) {
  mask_ = mask && mask->numel() > 0 ? mask : nullptr;
  inner_->set_mask(ctx, mask);
}

void SimulatedAttackStep::gradient(Context& ctx, Network& net, StepLoss& loss, const Tensor& x, const BatchRows& rows) {
  inner_->gradient(ctx, net, loss, x, rows);
  const int clean = rows.clean_prefix();
  if (step_ % static_cast<uint64_t>(every_) != 0 || clean == 0 || clean == rows.size()) return;
  ProfileScope scope(ctx, "simulated attack", "step");
  Rng draw(mix_seed(seed_, step_, 0xa77ac4));
  const double lr = draw.uniform(kSimulatedAttackLr[0], kSimulatedAttackLr[1]);
  const double filters = draw.uniform() < kSimulatedAttackPruneShare
                             ? draw.uniform(kSimulatedAttackFilters[0], kSimulatedAttackFilters[1])
                             : 0.0;
  grads_.copy_from(net.grads(), ctx);
  net.snapshot(ctx, at_w_);

  // The attack: SGD on the clean rows, all weights, under the drawn filter mask (and the
  // optimizer's pruning mask) held at zero.
  Tensor labels = Tensor::host({clean}, DType::I32);
  std::copy(rows.label.begin(), rows.label.begin() + clean, labels.data<int32_t>());
  labels_ = labels.to(ctx.device(), ctx);
  const Tensor x_clean = x.slice(0, clean);
  // One mask for both (one pass over the weights per step): the drawn filters', times the
  // optimizer's.
  Tensor held;
  if (filters > 0) {
    held = filter_mask(net, ctx, filters);
    if (mask_) {
      const Tensor m = mask_->to(Device::cpu(), ctx);
      ctx.synchronize();
      for (int64_t i = 0; i < held.numel(); ++i) held.data<float>()[i] *= m.data<float>()[i];
    }
  } else if (mask_) {
    held = *mask_;
  }
  const auto hold = [&] {
    if (held.defined()) apply_mask(net, ctx, held);
  };
  hold();
  for (int k = 0; k < steps_; ++k) {
    net.zero_grad(ctx);
    attack_loss_.forward(ctx, net.forward(ctx, pass_, x_clean), labels_, false);
    net.backward(ctx, pass_, attack_loss_.backward(ctx));
    ops::axpy(ctx, static_cast<float>(-lr), net.grads(), net.params());
    hold();
  }

  // The protection's loss at the attacked weights: the rows that are not clean.
  net.zero_grad(ctx);
  loss.forward(ctx, net.forward(ctx, pass_, x), false);
  net.backward(ctx, pass_, rows_of(ctx, loss.backward(ctx), rows, false, dlogits_));
  ops::axpy(ctx, static_cast<float>(weight_), net.grads(), grads_);
  net.grads().copy_from(grads_, ctx);
  net.restore(ctx, at_w_);
}

std::unique_ptr<StepStrategy> make_step_strategy(const TrainConfig& config, Context& ctx, const Network& net) {
  std::unique_ptr<StepStrategy> s;
  if (config.sam_rho > 0)
    s = std::make_unique<SamStep>(ctx, net, config.sam_rho, config.sam_ascent == "extra");
  else
    s = std::make_unique<PlainStep>();
  if (config.attack_every > 0) s = std::make_unique<SimulatedAttackStep>(std::move(s), config, ctx, net);
  return s;
}

}  // namespace activeip
