// The loss wrapper: the kernels compute per-row loss and softmax on the device; the batch
// mean and the top-1 count are reduced on the host from small copies (N and N×C floats).
#include "engine/loss.h"

#include "engine/ops.h"

namespace activeip {

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

  const Tensor loss = loss_.to(Device::cpu(), ctx), probs = probs_.to(Device::cpu(), ctx),
               lab = labels.to(Device::cpu(), ctx);
  LossResult r;
  const float* l = loss.data<float>();
  const float* p = probs.data<float>();
  const int32_t* y = lab.data<int32_t>();
  for (int n = 0; n < s.N; ++n) {
    r.loss += l[n];
    int best = 0;
    for (int c = 1; c < s.C; ++c)
      if (p[int64_t{n} * s.C + c] > p[int64_t{n} * s.C + best]) best = c;
    r.correct += best == y[n];
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

}  // namespace activeip
