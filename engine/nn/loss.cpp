// The loss wrapper: the kernels compute per-row loss and softmax on the device, and
// loss_accumulate adds the batch's loss sum and top-1 hits into a 2-double accumulator there;
// only read() brings those 16 bytes to the host.
#include "engine/nn/loss.h"

#include <cmath>

#include "engine/nn/ops.h"
#include "kernels/loss.h"

namespace activeip {

namespace {

void check_rows(Context& ctx, const Tensor& t, const Shape& shape, const char* what) {
  ENSURE(t.dtype() == DType::F32 && t.shape() == shape, "soft-target loss: %s is %s, expected F32 %s", what,
         shape_str(t.shape()).c_str(), shape_str(shape).c_str());
  ENSURE(t.device() == ctx.device(), "soft-target loss: %s is on %s but the context is on %s", what,
         t.device().str().c_str(), ctx.device().str().c_str());
}

constexpr int64_t kAccBytes = 2 * sizeof(double);

}  // namespace

void LossTally::add(Context& ctx, const Tensor& loss, const Tensor& probs, const Tensor* labels,
                    const Tensor* targets) {
  if (!acc_.defined() || acc_.numel() == 0 || acc_.device() != ctx.device()) {
    acc_ = Tensor::empty({kAccBytes}, DType::U8, ctx);
    acc_.zero(ctx);
    rows_ = 0;
  }
  const XentShape s{static_cast<int>(probs.dim(0)), static_cast<int>(probs.dim(1))};
  ops::loss_accumulate(ctx, s, loss, probs, labels, targets, acc_);
  rows_ += s.N;
}

LossResult LossTally::read(Context& ctx) {
  LossResult r;
  r.rows = rows_;
  if (!acc_.defined() || acc_.numel() == 0) return r;  // nothing tallied yet
  const double* acc = nullptr;
  if (acc_.device().is_cuda()) {
    ensure_host_tensor(host_, {kAccBytes}, DType::U8).copy_from(acc_, ctx);  // waits
    acc = reinterpret_cast<const double*>(host_.data<uint8_t>());
  } else {
    ctx.synchronize();
    acc = reinterpret_cast<const double*>(acc_.data<uint8_t>());
  }
  r.loss = rows_ ? acc[0] / static_cast<double>(rows_) : 0;
  r.correct = static_cast<int64_t>(acc[1]);
  return r;
}

void LossTally::reset(Context& ctx) {
  if (acc_.defined() && acc_.numel() > 0) acc_.zero(ctx);
  rows_ = 0;
}

SoftmaxCrossEntropy::SoftmaxCrossEntropy(float smoothing) : smoothing_(smoothing) {
  ENSURE(smoothing >= 0.0f && smoothing < 1.0f, "label smoothing %g is outside [0, 1)", static_cast<double>(smoothing));
}

void SoftmaxCrossEntropy::forward(Context& ctx, const Tensor& logits, const Tensor& labels, bool tally) {
  ENSURE(logits.rank() == 2 && labels.numel() == logits.dim(0), "loss: logits %s and labels %s disagree",
         shape_str(logits.shape()).c_str(), shape_str(labels.shape()).c_str());
  const XentShape s{static_cast<int>(logits.dim(0)), static_cast<int>(logits.dim(1))};
  labels_ = labels;
  ensure_tensor(probs_, logits.shape(), DType::F32, ctx);
  ensure_tensor(loss_, {s.N}, DType::F32, ctx);
  ops::softmax_xent_fwd(ctx, s, smoothing_, logits, labels, probs_, loss_);
  if (tally) tally_.add(ctx, loss_, probs_, &labels, nullptr);
}

Tensor SoftmaxCrossEntropy::backward(Context& ctx) {
  const XentShape s{static_cast<int>(probs_.dim(0)), static_cast<int>(probs_.dim(1))};
  ensure_tensor(dlogits_, probs_.shape(), DType::F32, ctx);
  ops::softmax_xent_bwd(ctx, s, smoothing_, probs_, labels_, 1.0f / static_cast<float>(s.N), dlogits_);
  return dlogits_;
}

SoftTargetCrossEntropy::SoftTargetCrossEntropy(float temperature) : temperature_(temperature) {
  ENSURE(std::isfinite(temperature) && temperature > 0, "temperature must be positive, got %g",
         static_cast<double>(temperature));
}

void SoftTargetCrossEntropy::forward(Context& ctx, const Tensor& logits, const Tensor& targets, bool tally) {
  ENSURE(logits.rank() == 2, "soft-target loss: logits %s are not N×C", shape_str(logits.shape()).c_str());
  check_rows(ctx, logits, logits.shape(), "logits");
  check_rows(ctx, targets, logits.shape(), "targets");
  const XentShape s{static_cast<int>(logits.dim(0)), static_cast<int>(logits.dim(1))};
  targets_ = targets;
  ensure_tensor(probs_, logits.shape(), DType::F32, ctx);
  ensure_tensor(loss_, {s.N}, DType::F32, ctx);
  ops::soft_xent_fwd(ctx, s, temperature_, logits, targets, probs_, loss_);
  if (tally) tally_.add(ctx, loss_, probs_, nullptr, &targets);
}

Tensor SoftTargetCrossEntropy::backward(Context& ctx) {
  ENSURE(probs_.defined(), "soft-target loss: backward before forward");
  const XentShape s{static_cast<int>(probs_.dim(0)), static_cast<int>(probs_.dim(1))};
  ensure_tensor(dlogits_, probs_.shape(), DType::F32, ctx);
  const float scale = 1.0f / static_cast<float>(s.N);
  ops::soft_xent_bwd(ctx, s, temperature_, probs_, targets_, scale, dlogits_);
  return dlogits_;
}

void softmax_temperature(Context& ctx, float temperature, const Tensor& logits, Tensor& probs) {
  ENSURE(std::isfinite(temperature) && temperature > 0, "temperature must be positive, got %g",
         static_cast<double>(temperature));
  ENSURE(logits.rank() == 2, "softmax: logits %s are not N×C", shape_str(logits.shape()).c_str());
  check_rows(ctx, logits, logits.shape(), "logits");
  const XentShape s{static_cast<int>(logits.dim(0)), static_cast<int>(logits.dim(1))};
  ensure_tensor(probs, logits.shape(), DType::F32, ctx);
  ops::softmax_temperature_fwd(ctx, s, temperature, logits, probs);
}

}  // namespace activeip
