// The step strategies and the loss they train on. SAM moves the weights by a host-computed
// e (the per-tensor norms are a small reduction over the flat buffers), takes the gradient
// there and puts weights, running statistics and counters back as the first pass left them.
#include "engine/train/step.h"

#include <cmath>

#include "engine/nn/ops.h"
#include "engine/train/trainer.h"

namespace activeip {

void StepLoss::set_targets(TargetProvider* provider) {
  provider_ = provider;
  if (provider) soft_loss_ = SoftTargetCrossEntropy(provider->temperature());
}

void StepLoss::prepare(Context& ctx, const Tensor& x, const Tensor& labels) {
  labels_ = labels;
  if (provider_) provider_->targets(ctx, x, soft_targets_);
}

LossResult StepLoss::forward(Context& ctx, const Tensor& logits) {
  return provider_ ? soft_loss_.forward(ctx, logits, soft_targets_) : labels_loss_.forward(ctx, logits, labels_);
}

Tensor StepLoss::backward(Context& ctx) {
  return provider_ ? soft_loss_.backward(ctx) : labels_loss_.backward(ctx);
}

LossResult PlainStep::gradient(Context& ctx, Network& net, StepLoss& loss, const Tensor& x, const BatchRows&) {
  net.zero_grad(ctx);
  const LossResult r = loss.forward(ctx, net.forward(ctx, x));
  net.backward(ctx, loss.backward(ctx));
  return r;
}

SamStep::SamStep(Context& ctx, const Network& net, double rho, bool extra_only) : rho_(rho), extra_only_(extra_only) {
  const Shape p{net.num_parameters()};
  w_host_ = Tensor::host(p);
  g_host_ = Tensor::host(p);
  e_host_ = Tensor::host(p);
  e_ = Tensor::empty(p, DType::F32, ctx);
  if (extra_only) grads_ = Tensor::empty(p, DType::F32, ctx);
  net.snapshot(ctx, at_w_);  // sizes the scratch
}

void SamStep::set_mask(Context& ctx, const Tensor* mask) {
  mask_host_ = mask ? mask->to(Device::cpu(), ctx) : Tensor();
}

const Tensor& SamStep::rows_of(Context& ctx, const Tensor& d, const BatchRows& rows, bool clean) {
  ensure_tensor(dlogits_, d.shape(), DType::F32, ctx).copy_from(d, ctx);
  // Zero each run of consecutive rows on the other side, one fill per run.
  const int n = rows.size();
  for (int begin = 0; begin < n;) {
    const bool is_clean = rows.role[static_cast<size_t>(begin)] == kCleanRow;
    int end = begin + 1;
    while (end < n && (rows.role[static_cast<size_t>(end)] == kCleanRow) == is_clean) ++end;
    if (is_clean != clean) {
      Tensor run = dlogits_.slice(begin, end);
      ops::fill(ctx, 0.0f, run);
    }
    begin = end;
  }
  return dlogits_;
}

LossResult SamStep::gradient(Context& ctx, Network& net, StepLoss& loss, const Tensor& x, const BatchRows& rows) {
  net.zero_grad(ctx);
  const LossResult r = loss.forward(ctx, net.forward(ctx, x));
  const Tensor dlogits = loss.backward(ctx);

  // The ascent: the gradient at w of the whole batch, or of the rows that are not clean.
  net.backward(ctx, extra_only_ ? rows_of(ctx, dlogits, rows, false) : dlogits);
  w_host_.copy_from(net.params(), ctx);
  g_host_.copy_from(net.grads(), ctx);
  sam_perturbation(net, w_host_, g_host_, rho_, e_host_);
  if (mask_host_.defined() && mask_host_.numel() > 0) {  // pruned weights stay at zero in the second pass too
    float* e = e_host_.data<float>();
    const float* m = mask_host_.data<float>();
    for (int64_t i = 0; i < e_host_.numel(); ++i) e[i] *= m[i];
  }
  e_.copy_from(e_host_, ctx);
  if (extra_only_) {  // the clean rows' own gradient is taken at w, from the same forward pass
    net.zero_grad(ctx);
    net.backward(ctx, rows_of(ctx, dlogits, rows, true));
    grads_.copy_from(net.grads(), ctx);
  }

  // The second pass at w + e; then back to w and to the running statistics of the first pass.
  net.snapshot(ctx, at_w_);

  ops::axpy(ctx, 1.0f, e_, net.params());
  net.zero_grad(ctx);
  loss.forward(ctx, net.forward(ctx, x));
  const Tensor moved = loss.backward(ctx);
  net.backward(ctx, extra_only_ ? rows_of(ctx, moved, rows, false) : moved);
  if (extra_only_) ops::axpy(ctx, 1.0f, grads_, net.grads());

  net.restore(ctx, at_w_);
  return r;
}

std::unique_ptr<StepStrategy> make_step_strategy(const TrainConfig& config, Context& ctx, const Network& net) {
  if (config.sam_rho > 0) return std::make_unique<SamStep>(ctx, net, config.sam_rho, config.sam_ascent == "extra");
  return std::make_unique<PlainStep>();
}

void sam_perturbation(const Network& net, const Tensor& w, const Tensor& g, double rho, Tensor& e) {
  const int64_t n = net.num_parameters();
  ENSURE(!w.device().is_cuda() && !g.device().is_cuda() && !e.device().is_cuda() && w.numel() == n && g.numel() == n &&
             e.numel() == n,
         "sam_perturbation: w, g and e must be host tensors of %lld floats", static_cast<long long>(n));
  const float* pw = w.data<float>();
  const float* pg = g.data<float>();
  float* pe = e.data<float>();
  std::fill(pe, pe + n, 0.0f);
  for (const NamedSlot& s : net.slots()) {
    if (s.slot.kind != SlotKind::Parameter) continue;
    const int64_t end = s.offset + shape_numel(s.slot.shape);
    double ww = 0, gg = 0;
    for (int64_t i = s.offset; i < end; ++i) {
      ww += static_cast<double>(pw[i]) * pw[i];
      gg += static_cast<double>(pg[i]) * pg[i];
    }
    if (ww == 0 || gg == 0) continue;
    const double k = rho * std::sqrt(ww / gg);
    for (int64_t i = s.offset; i < end; ++i) pe[i] = static_cast<float>(k * pg[i]);
  }
}

}  // namespace activeip
