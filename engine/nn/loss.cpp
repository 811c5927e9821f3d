// The loss wrapper: the kernels compute per-row loss and softmax on the device; the batch
// mean and the top-1 count are reduced on the host from small copies (N and N×C floats).
#include "engine/nn/loss.h"

#include <cmath>

#include "engine/nn/ops.h"
#include "kernels/loss.h"

namespace activeip {

namespace {

// Index of the largest of C floats (the first on ties).
int argmax(const float* v, int C) {
  int best = 0;
  for (int c = 1; c < C; ++c)
    if (v[c] > v[best]) best = c;
  return best;
}

void check_rows(Context& ctx, const Tensor& t, const Shape& shape, const char* what) {
  ENSURE(t.dtype() == DType::F32 && t.shape() == shape, "soft-target loss: %s is %s, expected F32 %s", what,
         shape_str(t.shape()).c_str(), shape_str(shape).c_str());
  ENSURE(t.device() == ctx.device(), "soft-target loss: %s is on %s but the context is on %s", what,
         t.device().str().c_str(), ctx.device().str().c_str());
}

// A host view of t: t itself on the CPU, else a copy into `staging`, which is reused, so
// that reading the loss allocates nothing after the first batch.
const Tensor& on_host(Context& ctx, const Tensor& t, Tensor& staging) {
  if (!t.device().is_cuda()) return t;
  ensure_host_tensor(staging, t.shape(), t.dtype()).copy_from(t, ctx);
  return staging;
}

}  // namespace

SoftmaxCrossEntropy::SoftmaxCrossEntropy(float smoothing) : smoothing_(smoothing) {
  ENSURE(smoothing >= 0.0f && smoothing < 1.0f, "label smoothing %g is outside [0, 1)", static_cast<double>(smoothing));
}

LossResult SoftmaxCrossEntropy::forward(Context& ctx, const Tensor& logits, const Tensor& labels) {
  ENSURE(logits.rank() == 2 && labels.numel() == logits.dim(0), "loss: logits %s and labels %s disagree",
         shape_str(logits.shape()).c_str(), shape_str(labels.shape()).c_str());
  const XentShape s{static_cast<int>(logits.dim(0)), static_cast<int>(logits.dim(1))};
  labels_ = labels;
  ensure_tensor(probs_, logits.shape(), DType::F32, ctx);
  ensure_tensor(loss_, {s.N}, DType::F32, ctx);
  ops::softmax_xent_fwd(ctx, s, smoothing_, logits, labels, probs_, loss_);

  const Tensor& loss = on_host(ctx, loss_, host_loss_);
  const Tensor& probs = on_host(ctx, probs_, host_probs_);
  const Tensor& lab = on_host(ctx, labels, host_labels_);
  LossResult r;
  const float* l = loss.data<float>();
  const float* p = probs.data<float>();
  const int32_t* y = lab.data<int32_t>();
  for (int n = 0; n < s.N; ++n) {
    r.loss += l[n];
    r.correct += argmax(p + int64_t{n} * s.C, s.C) == y[n];
  }
  r.loss /= s.N;
  return r;
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

LossResult SoftTargetCrossEntropy::forward(Context& ctx, const Tensor& logits, const Tensor& targets) {
  ENSURE(logits.rank() == 2, "soft-target loss: logits %s are not N×C", shape_str(logits.shape()).c_str());
  check_rows(ctx, logits, logits.shape(), "logits");
  check_rows(ctx, targets, logits.shape(), "targets");
  const XentShape s{static_cast<int>(logits.dim(0)), static_cast<int>(logits.dim(1))};
  targets_ = targets;
  ensure_tensor(probs_, logits.shape(), DType::F32, ctx);
  ensure_tensor(loss_, {s.N}, DType::F32, ctx);
  ops::soft_xent_fwd(ctx, s, temperature_, logits, targets, probs_, loss_);

  const Tensor& loss = on_host(ctx, loss_, host_loss_);
  const Tensor& probs = on_host(ctx, probs_, host_probs_);
  const Tensor& q = on_host(ctx, targets, host_targets_);  // each copy waits for the device
  LossResult r;
  for (int n = 0; n < s.N; ++n) {
    r.loss += loss.data<float>()[n];
    const size_t row = static_cast<size_t>(n) * s.C;
    r.correct += argmax(probs.data<float>() + row, s.C) == argmax(q.data<float>() + row, s.C);
  }
  r.loss /= s.N;
  return r;
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
