// Dispatch of the tensor-level ops to kernels/ by device. Shapes and dtypes are checked
// here, once, so that kernels can trust their arguments.
#include "engine/nn/ops.h"

#include <algorithm>

#include "kernels/elementwise.h"

#ifdef ACTIVEIP_CUDA
#include "kernels/vendor/vendor.h"
#endif

namespace activeip::ops {

namespace {

void on_device(Context& ctx, const Tensor& t, const char* op, const char* what) {
  ENSURE(t.device() == ctx.device(), "%s: %s is on %s but the context is on %s", op, what, t.device().str().c_str(),
         ctx.device().str().c_str());
}

void has_numel(const Tensor& t, int64_t n, const char* op, const char* what) {
  ENSURE(t.numel() == n, "%s: %s has %lld elements (shape %s), expected %lld", op, what,
         static_cast<long long>(t.numel()), shape_str(t.shape()).c_str(), static_cast<long long>(n));
}

#ifdef ACTIVEIP_CUDA
// Device scratch for kernels that combine partial results across blocks; it comes from
// the context's caching allocator, so the step loop does not call cudaMalloc.
Tensor scratch(Context& ctx, size_t floats) {
  return Tensor::empty({static_cast<int64_t>(std::max<size_t>(floats, 1))}, DType::F32, ctx);
}

bool cudnn(const Context& ctx) {
  return ctx.conv_impl() == ConvImpl::Cudnn;
}
bool cublas(const Context& ctx) {
  return ctx.gemm_impl() == GemmImpl::Cublas;
}
#endif

}  // namespace

void conv2d_fprop(Context& ctx, const Conv2dShape& s, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  const char* op = "conv2d_fprop";
  has_numel(x, static_cast<int64_t>(s.x_size()), op, "x");
  has_numel(w, static_cast<int64_t>(s.w_size()), op, "w");
  has_numel(y, static_cast<int64_t>(s.y_size()), op, "y");
  if (bias) has_numel(*bias, s.K, op, "bias");
  on_device(ctx, x, op, "x");
  on_device(ctx, w, op, "w");
  on_device(ctx, y, op, "y");
  const float* b = bias ? bias->data<float>() : nullptr;
#ifdef ACTIVEIP_CUDA
#ifdef ACTIVEIP_CUDNN
  if (ctx.is_cuda() && cudnn(ctx))
    return conv2d_fprop_cudnn(ctx.vendor(), s, x.data<float>(), w.data<float>(), b, y.data<float>());
#endif
  if (ctx.is_cuda()) return conv2d_fprop_cuda(s, x.data<float>(), w.data<float>(), b, y.data<float>(), ctx.stream());
#endif
  conv2d_fprop_cpu(s, x.data<float>(), w.data<float>(), b, y.data<float>());
}

void conv2d_dgrad(Context& ctx, const Conv2dShape& s, const Tensor& dy, const Tensor& w, Tensor& dx) {
  const char* op = "conv2d_dgrad";
  has_numel(dy, static_cast<int64_t>(s.y_size()), op, "dy");
  has_numel(dx, static_cast<int64_t>(s.x_size()), op, "dx");
  has_numel(w, static_cast<int64_t>(s.w_size()), op, "w");
  on_device(ctx, dy, op, "dy");
  on_device(ctx, w, op, "w");
  on_device(ctx, dx, op, "dx");
#ifdef ACTIVEIP_CUDA
#ifdef ACTIVEIP_CUDNN
  if (ctx.is_cuda() && cudnn(ctx))
    return conv2d_dgrad_cudnn(ctx.vendor(), s, dy.data<float>(), w.data<float>(), dx.data<float>());
#endif
  if (ctx.is_cuda()) return conv2d_dgrad_cuda(s, dy.data<float>(), w.data<float>(), dx.data<float>(), ctx.stream());
#endif
  conv2d_dgrad_cpu(s, dy.data<float>(), w.data<float>(), dx.data<float>());
}

void conv2d_wgrad(Context& ctx, const Conv2dShape& s, const Tensor& x, const Tensor& dy, Tensor& dw, Tensor* dbias) {
  const char* op = "conv2d_wgrad";
  has_numel(dw, static_cast<int64_t>(s.w_size()), op, "dw");
  has_numel(dy, static_cast<int64_t>(s.y_size()), op, "dy");
  has_numel(x, static_cast<int64_t>(s.x_size()), op, "x");
  if (dbias) has_numel(*dbias, s.K, op, "dbias");
  on_device(ctx, x, op, "x");
  on_device(ctx, dy, op, "dy");
  on_device(ctx, dw, op, "dw");
  float* db = dbias ? dbias->data<float>() : nullptr;
#ifdef ACTIVEIP_CUDA
#ifdef ACTIVEIP_CUDNN
  if (ctx.is_cuda() && cudnn(ctx))
    return conv2d_wgrad_cudnn(ctx.vendor(), s, x.data<float>(), dy.data<float>(), dw.data<float>(), db);
#endif
  if (ctx.is_cuda()) return conv2d_wgrad_cuda(s, x.data<float>(), dy.data<float>(), dw.data<float>(), db, ctx.stream());
#endif
  conv2d_wgrad_cpu(s, x.data<float>(), dy.data<float>(), dw.data<float>(), db);
}

void batchnorm_fwd(Context& ctx, const BatchNormShape& s, const BatchNormParams& p, bool training,
                   const BatchNormFwdArgs& a, Device device) {
  ENSURE(device == ctx.device(), "batchnorm_fwd: tensors on %s, context on %s", device.str().c_str(),
         ctx.device().str().c_str());
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda()) {
    if (!training) return batchnorm_fwd_eval_cuda(s, p, a, ctx.stream());
    Tensor work = scratch(ctx, batchnorm_workspace_floats(s));
    return batchnorm_fwd_train_cuda(s, p, a, work.data<float>(), ctx.stream());
  }
#endif
  if (training)
    batchnorm_fwd_train_cpu(s, p, a);
  else
    batchnorm_fwd_eval_cpu(s, p, a);
}

void batchnorm_bwd(Context& ctx, const BatchNormShape& s, const BatchNormBwdArgs& a, Device device) {
  ENSURE(device == ctx.device(), "batchnorm_bwd: tensors on %s, context on %s", device.str().c_str(),
         ctx.device().str().c_str());
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda()) {
    Tensor work = scratch(ctx, batchnorm_workspace_floats(s));
    return batchnorm_bwd_cuda(s, a, work.data<float>(), ctx.stream());
  }
#endif
  batchnorm_bwd_cpu(s, a);
}

void relu_fwd(Context& ctx, const Tensor& x, Tensor& y) {
  has_numel(y, x.numel(), "relu_fwd", "y");
  on_device(ctx, x, "relu_fwd", "x");
  const size_t n = static_cast<size_t>(x.numel());
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda()) return relu_fwd_cuda(n, x.data<float>(), y.data<float>(), ctx.stream());
#endif
  relu_fwd_cpu(n, x.data<float>(), y.data<float>());
}

void relu_bwd(Context& ctx, const Tensor& y, const Tensor& dy, Tensor& dx) {
  has_numel(dy, y.numel(), "relu_bwd", "dy");
  has_numel(dx, y.numel(), "relu_bwd", "dx");
  on_device(ctx, y, "relu_bwd", "y");
  const size_t n = static_cast<size_t>(y.numel());
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda()) return relu_bwd_cuda(n, y.data<float>(), dy.data<float>(), dx.data<float>(), ctx.stream());
#endif
  relu_bwd_cpu(n, y.data<float>(), dy.data<float>(), dx.data<float>());
}

void add(Context& ctx, const Tensor& a, const Tensor& b, Tensor& y) {
  has_numel(b, a.numel(), "add", "b");
  has_numel(y, a.numel(), "add", "y");
  on_device(ctx, a, "add", "a");
  on_device(ctx, b, "add", "b");
  const size_t n = static_cast<size_t>(a.numel());
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda()) return add_cuda(n, a.data<float>(), b.data<float>(), y.data<float>(), ctx.stream());
#endif
  add_cpu(n, a.data<float>(), b.data<float>(), y.data<float>());
}

void axpy(Context& ctx, float alpha, const Tensor& x, Tensor& y) {
  has_numel(y, x.numel(), "axpy", "y");
  on_device(ctx, x, "axpy", "x");
  const size_t n = static_cast<size_t>(x.numel());
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda()) return axpy_cuda(n, alpha, x.data<float>(), y.data<float>(), ctx.stream());
#endif
  axpy_cpu(n, alpha, x.data<float>(), y.data<float>());
}

void fill(Context& ctx, float value, Tensor& y) {
  on_device(ctx, y, "fill", "y");
  const size_t n = static_cast<size_t>(y.numel());
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda()) return fill_cuda(n, value, y.data<float>(), ctx.stream());
#endif
  fill_cpu(n, value, y.data<float>());
}

void maxpool2d_fwd(Context& ctx, const Pool2dShape& s, const Tensor& x, Tensor& y, Tensor& argmax) {
  has_numel(x, int64_t{s.N} * s.H * s.W * s.C, "maxpool2d_fwd", "x");
  has_numel(y, int64_t{s.N} * s.P() * s.Q() * s.C, "maxpool2d_fwd", "y");
  has_numel(argmax, y.numel(), "maxpool2d_fwd", "argmax");
  on_device(ctx, x, "maxpool2d_fwd", "x");
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda())
    return maxpool2d_fwd_cuda(s, x.data<float>(), y.data<float>(), argmax.data<int32_t>(), ctx.stream());
#endif
  maxpool2d_fwd_cpu(s, x.data<float>(), y.data<float>(), argmax.data<int32_t>());
}

void maxpool2d_bwd(Context& ctx, const Pool2dShape& s, const Tensor& dy, const Tensor& argmax, Tensor& dx) {
  has_numel(dx, int64_t{s.N} * s.H * s.W * s.C, "maxpool2d_bwd", "dx");
  on_device(ctx, dy, "maxpool2d_bwd", "dy");
  has_numel(dy, int64_t{s.N} * s.P() * s.Q() * s.C, "maxpool2d_bwd", "dy");
  has_numel(argmax, dy.numel(), "maxpool2d_bwd", "argmax");
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda())
    return maxpool2d_bwd_cuda(s, dy.data<float>(), argmax.data<int32_t>(), dx.data<float>(), ctx.stream());
#endif
  maxpool2d_bwd_cpu(s, dy.data<float>(), argmax.data<int32_t>(), dx.data<float>());
}

void global_avgpool_fwd(Context& ctx, const GlobalPoolShape& s, const Tensor& x, Tensor& y) {
  has_numel(x, int64_t{s.N} * s.HW * s.C, "global_avgpool_fwd", "x");
  has_numel(y, int64_t{s.N} * s.C, "global_avgpool_fwd", "y");
  on_device(ctx, x, "global_avgpool_fwd", "x");
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda()) return global_avgpool_fwd_cuda(s, x.data<float>(), y.data<float>(), ctx.stream());
#endif
  global_avgpool_fwd_cpu(s, x.data<float>(), y.data<float>());
}

void global_avgpool_bwd(Context& ctx, const GlobalPoolShape& s, const Tensor& dy, Tensor& dx) {
  has_numel(dx, int64_t{s.N} * s.HW * s.C, "global_avgpool_bwd", "dx");
  on_device(ctx, dy, "global_avgpool_bwd", "dy");
  has_numel(dy, int64_t{s.N} * s.C, "global_avgpool_bwd", "dy");
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda()) return global_avgpool_bwd_cuda(s, dy.data<float>(), dx.data<float>(), ctx.stream());
#endif
  global_avgpool_bwd_cpu(s, dy.data<float>(), dx.data<float>());
}

void pad_shortcut_fwd(Context& ctx, const PadShortcutShape& s, const Tensor& x, Tensor& y) {
  has_numel(x, int64_t{s.N} * s.H * s.W * s.C, "pad_shortcut_fwd", "x");
  has_numel(y, int64_t{s.N} * s.P() * s.Q() * s.K(), "pad_shortcut_fwd", "y");
  on_device(ctx, x, "pad_shortcut_fwd", "x");
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda()) return pad_shortcut_fwd_cuda(s, x.data<float>(), y.data<float>(), ctx.stream());
#endif
  pad_shortcut_fwd_cpu(s, x.data<float>(), y.data<float>());
}

void pad_shortcut_bwd(Context& ctx, const PadShortcutShape& s, const Tensor& dy, Tensor& dx) {
  has_numel(dy, int64_t{s.N} * s.P() * s.Q() * s.K(), "pad_shortcut_bwd", "dy");
  has_numel(dx, int64_t{s.N} * s.H * s.W * s.C, "pad_shortcut_bwd", "dx");
  on_device(ctx, dy, "pad_shortcut_bwd", "dy");
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda()) return pad_shortcut_bwd_cuda(s, dy.data<float>(), dx.data<float>(), ctx.stream());
#endif
  pad_shortcut_bwd_cpu(s, dy.data<float>(), dx.data<float>());
}

void linear_fwd(Context& ctx, const LinearShape& s, const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) {
  has_numel(x, int64_t{s.N} * s.IN, "linear_fwd", "x");
  has_numel(w, int64_t{s.OUT} * s.IN, "linear_fwd", "w");
  has_numel(y, int64_t{s.N} * s.OUT, "linear_fwd", "y");
  if (b) has_numel(*b, s.OUT, "linear_fwd", "b");
  on_device(ctx, x, "linear_fwd", "x");
  on_device(ctx, w, "linear_fwd", "w");
  const float* bias = b ? b->data<float>() : nullptr;
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda() && cublas(ctx))
    return linear_fwd_cublas(ctx.vendor(), s, x.data<float>(), w.data<float>(), bias, y.data<float>());
  if (ctx.is_cuda()) return linear_fwd_cuda(s, x.data<float>(), w.data<float>(), bias, y.data<float>(), ctx.stream());
#endif
  linear_fwd_cpu(s, x.data<float>(), w.data<float>(), bias, y.data<float>());
}

void linear_bwd(Context& ctx, const LinearShape& s, const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dx,
                Tensor& dw, Tensor* db) {
  has_numel(dy, int64_t{s.N} * s.OUT, "linear_bwd", "dy");
  has_numel(dx, int64_t{s.N} * s.IN, "linear_bwd", "dx");
  has_numel(x, int64_t{s.N} * s.IN, "linear_bwd", "x");
  has_numel(w, int64_t{s.OUT} * s.IN, "linear_bwd", "w");
  has_numel(dw, int64_t{s.OUT} * s.IN, "linear_bwd", "dw");
  if (db) has_numel(*db, s.OUT, "linear_bwd", "db");
  on_device(ctx, dy, "linear_bwd", "dy");
  on_device(ctx, x, "linear_bwd", "x");
  float* dbias = db ? db->data<float>() : nullptr;
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda() && cublas(ctx))
    return linear_bwd_cublas(ctx.vendor(), s, x.data<float>(), w.data<float>(), dy.data<float>(), dx.data<float>(),
                             dw.data<float>(), dbias);
  if (ctx.is_cuda())
    return linear_bwd_cuda(s, x.data<float>(), w.data<float>(), dy.data<float>(), dx.data<float>(), dw.data<float>(),
                           dbias, ctx.stream());
#endif
  linear_bwd_cpu(s, x.data<float>(), w.data<float>(), dy.data<float>(), dx.data<float>(), dw.data<float>(), dbias);
}

void dropout_fwd(Context& ctx, const DropoutParams& d, const Tensor& x, Tensor& y, Tensor& mask) {
  ENSURE(d.p >= 0.0f && d.p < 1.0f, "dropout probability %g is outside [0, 1)", static_cast<double>(d.p));
  has_numel(y, x.numel(), "dropout_fwd", "y");
  has_numel(mask, x.numel(), "dropout_fwd", "mask");
  on_device(ctx, x, "dropout_fwd", "x");
  const size_t n = static_cast<size_t>(x.numel());
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda()) return dropout_fwd_cuda(n, d, x.data<float>(), y.data<float>(), mask.data<float>(), ctx.stream());
#endif
  dropout_fwd_cpu(n, d, x.data<float>(), y.data<float>(), mask.data<float>());
}

void dropout_bwd(Context& ctx, const Tensor& dy, const Tensor& mask, Tensor& dx) {
  has_numel(mask, dy.numel(), "dropout_bwd", "mask");
  has_numel(dx, dy.numel(), "dropout_bwd", "dx");
  on_device(ctx, dy, "dropout_bwd", "dy");
  const size_t n = static_cast<size_t>(dy.numel());
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda()) return dropout_bwd_cuda(n, dy.data<float>(), mask.data<float>(), dx.data<float>(), ctx.stream());
#endif
  dropout_bwd_cpu(n, dy.data<float>(), mask.data<float>(), dx.data<float>());
}

void softmax_xent_fwd(Context& ctx, const XentShape& s, float smoothing, const Tensor& logits, const Tensor& labels,
                      Tensor& probs, Tensor& loss) {
  has_numel(logits, int64_t{s.N} * s.C, "softmax_xent_fwd", "logits");
  has_numel(labels, s.N, "softmax_xent_fwd", "labels");
  has_numel(probs, int64_t{s.N} * s.C, "softmax_xent_fwd", "probs");
  has_numel(loss, s.N, "softmax_xent_fwd", "loss");
  on_device(ctx, logits, "softmax_xent_fwd", "logits");
  on_device(ctx, labels, "softmax_xent_fwd", "labels");
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda())
    return softmax_xent_fwd_cuda(s, smoothing, logits.data<float>(), labels.data<int32_t>(), probs.data<float>(),
                                 loss.data<float>(), ctx.stream());
#endif
  softmax_xent_fwd_cpu(s, smoothing, logits.data<float>(), labels.data<int32_t>(), probs.data<float>(),
                       loss.data<float>());
}

void softmax_xent_bwd(Context& ctx, const XentShape& s, float smoothing, const Tensor& probs, const Tensor& labels,
                      float scale, Tensor& dlogits) {
  has_numel(dlogits, int64_t{s.N} * s.C, "softmax_xent_bwd", "dlogits");
  has_numel(probs, int64_t{s.N} * s.C, "softmax_xent_bwd", "probs");
  has_numel(labels, s.N, "softmax_xent_bwd", "labels");
  on_device(ctx, probs, "softmax_xent_bwd", "probs");
  on_device(ctx, labels, "softmax_xent_bwd", "labels");
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda())
    return softmax_xent_bwd_cuda(s, smoothing, probs.data<float>(), labels.data<int32_t>(), scale,
                                 dlogits.data<float>(), ctx.stream());
#endif
  softmax_xent_bwd_cpu(s, smoothing, probs.data<float>(), labels.data<int32_t>(), scale, dlogits.data<float>());
}

void soft_xent_fwd(Context& ctx, const XentShape& s, float temperature, const Tensor& logits, const Tensor& targets,
                   Tensor& probs, Tensor& loss) {
  const char* op = "soft_xent_fwd";
  has_numel(logits, int64_t{s.N} * s.C, op, "logits");
  has_numel(targets, int64_t{s.N} * s.C, op, "targets");
  has_numel(probs, int64_t{s.N} * s.C, op, "probs");
  has_numel(loss, s.N, op, "loss");
  on_device(ctx, logits, op, "logits");
  on_device(ctx, targets, op, "targets");
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda())
    return soft_xent_fwd_cuda(s, temperature, logits.data<float>(), targets.data<float>(), probs.data<float>(),
                              loss.data<float>(), ctx.stream());
#endif
  soft_xent_fwd_cpu(s, temperature, logits.data<float>(), targets.data<float>(), probs.data<float>(),
                    loss.data<float>());
}

void soft_xent_bwd(Context& ctx, const XentShape& s, float temperature, const Tensor& probs, const Tensor& targets,
                   float scale, Tensor& dlogits) {
  const char* op = "soft_xent_bwd";
  has_numel(probs, int64_t{s.N} * s.C, op, "probs");
  has_numel(targets, int64_t{s.N} * s.C, op, "targets");
  has_numel(dlogits, int64_t{s.N} * s.C, op, "dlogits");
  on_device(ctx, probs, op, "probs");
  on_device(ctx, targets, op, "targets");
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda())
    return soft_xent_bwd_cuda(s, temperature, probs.data<float>(), targets.data<float>(), scale, dlogits.data<float>(),
                              ctx.stream());
#endif
  soft_xent_bwd_cpu(s, temperature, probs.data<float>(), targets.data<float>(), scale, dlogits.data<float>());
}

void softmax_temperature_fwd(Context& ctx, const XentShape& s, float temperature, const Tensor& logits, Tensor& probs) {
  const char* op = "softmax_temperature_fwd";
  has_numel(logits, int64_t{s.N} * s.C, op, "logits");
  has_numel(probs, int64_t{s.N} * s.C, op, "probs");
  on_device(ctx, logits, op, "logits");
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda())
    return softmax_temperature_fwd_cuda(s, temperature, logits.data<float>(), probs.data<float>(), ctx.stream());
#endif
  softmax_temperature_fwd_cpu(s, temperature, logits.data<float>(), probs.data<float>());
}

void sgd_step(Context& ctx, const SgdParams& p, Tensor& w, const Tensor& g, Tensor& v, const Tensor* mask,
              const Tensor* trainable) {
  has_numel(g, w.numel(), "sgd_step", "grad");
  has_numel(v, w.numel(), "sgd_step", "momentum");
  if (mask) has_numel(*mask, w.numel(), "sgd_step", "mask");
  if (trainable) has_numel(*trainable, w.numel(), "sgd_step", "trainable");
  on_device(ctx, w, "sgd_step", "params");
  if (mask) on_device(ctx, *mask, "sgd_step", "mask");
  if (trainable) on_device(ctx, *trainable, "sgd_step", "trainable");
  SgdArgs a{w.data<float>(), g.data<float>(), v.data<float>(), mask ? mask->data<float>() : nullptr, nullptr};
  a.trainable = trainable ? trainable->data<float>() : nullptr;
  const size_t n = static_cast<size_t>(w.numel());
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda()) return sgd_step_cuda(n, p, a, ctx.stream());
#endif
  sgd_step_cpu(n, p, a);
}

void augment([[maybe_unused]] Context& ctx, const AugmentShape& s, const AugmentArgs& a) {
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda()) return augment_cuda(s, a, ctx.stream());
#endif
  augment_cpu(s, a);
}

void stamp(Context& ctx, const StampShape& s, const Tensor& bank, const Tensor& patch, const Tensor& origin,
           Tensor& x) {
  const char* op = "stamp";
  ENSURE(s.size >= 1 && s.size <= s.H && s.size <= s.W, "%s: a %d-pixel patch does not fit a %dx%d image", op, s.size,
         s.H, s.W);
  has_numel(bank, int64_t{s.patches} * s.size * s.size * s.C, op, "bank");
  has_numel(patch, s.N, op, "patch");
  has_numel(origin, int64_t{2} * s.N, op, "origin");
  has_numel(x, int64_t{s.N} * s.H * s.W * s.C, op, "x");
  on_device(ctx, bank, op, "bank");
  on_device(ctx, patch, op, "patch");
  on_device(ctx, origin, op, "origin");
  on_device(ctx, x, op, "x");
  const StampArgs a{bank.data<float>(), patch.data<int32_t>(), origin.data<int32_t>(), x.data<float>()};
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda()) return stamp_cuda(s, a, ctx.stream());
#endif
  // The indices and origins are checked here on the host; on CUDA they were checked by
  // whoever filled them (the fingerprint module validates every origin it renders).
  for (int n = 0; n < s.N; ++n) {
    const int p = a.patch[n], top = a.origin[2 * n], left = a.origin[2 * n + 1];
    if (p < 0) continue;
    ENSURE(p < s.patches, "%s: sample %d asks for patch %d of %d", op, n, p, s.patches);
    ENSURE(top >= 0 && left >= 0 && top + s.size <= s.H && left + s.size <= s.W,
           "%s: sample %d's patch at (%d, %d) leaves the %dx%d image", op, n, top, left, s.H, s.W);
  }
  stamp_cpu(s, a);
}

}  // namespace activeip::ops
