// Forward and backward of every layer, through the device-dispatching ops. Shapes are
// validated here (the layer boundary) and nowhere below.
#include "engine/nn/layers.h"

#include <cstring>

#include "engine/core/profile.h"
#include "engine/nn/ops.h"

namespace activeip {

namespace {

void expect_rank(const Shape& in, int rank, const char* layer) {
  ENSURE(static_cast<int>(in.size()) == rank, "%s expects a rank-%d input, got %s", layer, rank, shape_str(in).c_str());
}

int as_int(int64_t v) {
  return static_cast<int>(v);
}

// The numbers of a layer's buffers in its pass: its output, its input gradient, and what
// some layers keep besides.
enum Buf : int { kY, kDx, kSaveMean, kSaveInvstd, kArgmax = 2, kMask = 2, kDsum = 2 };

// The common plan: an output of `out` rows in the forward arena, an input gradient of the
// input's shape in the backward arena.
Shape plan_out_dx(int id, const Shape& in, const Shape& out, PassPlan& plan) {
  plan.rows(id, kY, Phase::Forward, out);
  plan.rows(id, kDx, Phase::Backward, in);
  return out;
}

// A child's forward or backward, timed under its type when the context profiles; a container
// is not timed itself, its children are.
Tensor forward_of(Layer& layer, Context& ctx, Pass& pass, const Tensor& x) {
  if (!ctx.profile() || !layer.children().empty()) return layer.forward(ctx, pass, x);
  ProfileScope scope(ctx, layer.type(), "forward");
  return layer.forward(ctx, pass, x);
}

Tensor backward_of(Layer& layer, Context& ctx, Pass& pass, const Tensor& dy) {
  if (!ctx.profile() || !layer.children().empty()) return layer.backward(ctx, pass, dy);
  ProfileScope scope(ctx, layer.type(), "backward");
  return layer.backward(ctx, pass, dy);
}

}  // namespace

void Layer::set_training(bool training) {
  training_ = training;
  for (auto& [name, child] : children()) child->set_training(training);
}

// ---------------------------------------------------------------- Conv2d

Conv2d::Conv2d(int in_channels_, int out_channels_, int kernel_, int stride_, int pad_, bool bias_)
    : in_channels(in_channels_),
      out_channels(out_channels_),
      kernel(kernel_),
      stride(stride_),
      pad(pad_),
      has_bias(bias_) {
  ENSURE(in_channels > 0 && out_channels > 0 && kernel > 0 && stride > 0 && pad >= 0,
         "bad Conv2d(%d, %d, kernel %d, stride %d, pad %d)", in_channels, out_channels, kernel, stride, pad);
}

std::vector<ParamSlot> Conv2d::slots() {
  const int64_t fan_in = int64_t{in_channels} * kernel * kernel, fan_out = int64_t{out_channels} * kernel * kernel;
  std::vector<ParamSlot> s;
  s.push_back({"weight",
               {out_channels, kernel, kernel, in_channels},
               SlotKind::Parameter,
               SlotLayout::KRSC,
               Init::KaimingNormalFanOut,
               fan_in,
               fan_out,
               &weight,
               &weight_grad});
  if (has_bias)
    s.push_back({"bias",
                 {out_channels},
                 SlotKind::Parameter,
                 SlotLayout::Plain,
                 Init::Zeros,
                 fan_in,
                 fan_out,
                 &bias,
                 &bias_grad});
  return s;
}

Conv2dShape Conv2d::shape_for(const Shape& in) const {
  expect_rank(in, 4, "Conv2d");
  ENSURE(in[3] == in_channels, "Conv2d expects %d input channels, got input %s", in_channels, shape_str(in).c_str());
  Conv2dShape s{as_int(in[0]), as_int(in[1]), as_int(in[2]), in_channels, out_channels, kernel, kernel, stride, pad};
  ENSURE(s.P() > 0 && s.Q() > 0, "Conv2d kernel %d stride %d pad %d does not fit input %s", kernel, stride, pad,
         shape_str(in).c_str());
  return s;
}

Shape Conv2d::output_shape(const Shape& in) const {
  const Conv2dShape s = shape_for(in);
  return {s.N, s.P(), s.Q(), s.K};
}

Shape Conv2d::plan(const Shape& in, PassPlan& plan) const {
  return plan_out_dx(id(), in, output_shape(in), plan);
}

Tensor Conv2d::forward(Context& ctx, Pass& pass, const Tensor& x) {
  const Conv2dShape s = shape_for(x.shape());
  pass.kept(id()) = x;
  Tensor& y = pass.buffer(id(), kY, s.N);
  ops::conv2d_fprop(ctx, s, x, weight, has_bias ? &bias : nullptr, y);
  return y;
}

Tensor Conv2d::backward(Context& ctx, Pass& pass, const Tensor& dy) {
  const Tensor& x = pass.kept(id());
  const Conv2dShape s = shape_for(x.shape());
  ops::conv2d_wgrad(ctx, s, x, dy, weight_grad, has_bias ? &bias_grad : nullptr);
  Tensor& dx = pass.buffer(id(), kDx, s.N);
  ops::conv2d_dgrad(ctx, s, dy, weight, dx);
  return dx;
}

Tensor Conv2d::backward_add(Context& ctx, Pass& pass, const Tensor& dy, const Tensor& dx_add) {
  const Tensor& x = pass.kept(id());
  const Conv2dShape s = shape_for(x.shape());
  ops::conv2d_wgrad(ctx, s, x, dy, weight_grad, has_bias ? &bias_grad : nullptr);
  Tensor& dx = pass.buffer(id(), kDx, s.N);
  ops::conv2d_dgrad(ctx, s, dy, weight, dx, &dx_add);
  return dx;
}

// ---------------------------------------------------------------- BatchNorm2d

BatchNorm2d::BatchNorm2d(int channels_, float eps, float momentum) : channels(channels_), params{eps, momentum} {
  ENSURE(channels > 0, "bad BatchNorm2d(%d)", channels);
}

std::vector<ParamSlot> BatchNorm2d::slots() {
  return {
      {"weight", {channels}, SlotKind::Parameter, SlotLayout::Plain, Init::Ones, 0, 0, &weight, &weight_grad},
      {"bias", {channels}, SlotKind::Parameter, SlotLayout::Plain, Init::Zeros, 0, 0, &bias, &bias_grad},
      {"running_mean", {channels}, SlotKind::Buffer, SlotLayout::Plain, Init::Zeros, 0, 0, &running_mean, nullptr},
      {"running_var", {channels}, SlotKind::Buffer, SlotLayout::Plain, Init::Ones, 0, 0, &running_var, nullptr},
  };
}

Shape BatchNorm2d::output_shape(const Shape& in) const {
  ENSURE(!in.empty() && in.back() == channels, "BatchNorm2d expects %d channels, got input %s", channels,
         shape_str(in).c_str());
  return in;
}

Shape BatchNorm2d::plan(const Shape& in, PassPlan& plan) const {
  plan.fixed(id(), kSaveMean, Phase::Forward, {channels});
  plan.fixed(id(), kSaveInvstd, Phase::Forward, {channels});
  return plan_out_dx(id(), in, output_shape(in), plan);
}

BatchNormShape BatchNorm2d::shape_for(const Tensor& x, const Pass& pass) const {
  output_shape(x.shape());
  BatchNormShape s{as_int(x.numel() / channels), channels};
  if (!training_) return s;
  if (pass.stat_rows() > 0) s.stat_rows = as_int(pass.stat_rows() * (x.numel() / x.dim(0) / channels));
  ENSURE(
      s.stats() > 1, "BatchNorm2d in training mode needs more than one value per channel, got input %s%s",
      shape_str(x.shape()).c_str(),
      s.stat_rows ? strfmt(" with statistics of %lld samples", static_cast<long long>(pass.stat_rows())).c_str() : "");
  return s;
}

Tensor BatchNorm2d::forward(Context& ctx, Pass& pass, const Tensor& x) {
  const BatchNormShape s = shape_for(x, pass);
  pass.kept(id()) = x;
  Tensor& y = pass.buffer(id(), kY, x.dim(0));
  if (training_) ++num_batches_tracked;
  ops::batchnorm_fwd(ctx, s, params, training_,
                     {.x = x,
                      .gamma = weight,
                      .beta = bias,
                      .running_mean = running_mean,
                      .running_var = running_var,
                      .save_mean = pass.buffer(id(), kSaveMean, 0),
                      .save_invstd = pass.buffer(id(), kSaveInvstd, 0),
                      .y = y},
                     {.sync = pass.stat_sync()});
  return y;
}

Tensor BatchNorm2d::backward(Context& ctx, Pass& pass, const Tensor& dy) {
  return backward_fused(ctx, pass, dy, {});
}

// After an eval-mode forward the running statistics were constants of the input: the eval
// backward (what a frozen network's input gradient needs, attacks/invert.h).
Tensor BatchNorm2d::backward_fused(Context& ctx, Pass& pass, const Tensor& dy, ops::BatchNormBwdFusion f) {
  const Tensor& x = pass.kept(id());
  const BatchNormShape s = shape_for(x, pass);
  Tensor& dx = pass.buffer(id(), kDx, x.dim(0));
  if (!training_) {
    ops::batchnorm_bwd_eval(ctx, s, params,
                            {.x = x,
                             .dy = dy,
                             .gamma = weight,
                             .running_mean = running_mean,
                             .running_var = running_var,
                             .dx = dx,
                             .dgamma = weight_grad,
                             .dbeta = bias_grad},
                            f);
    return dx;
  }
  f.sync = pass.stat_sync();
  ops::batchnorm_bwd(ctx, s,
                     {.x = x,
                      .dy = dy,
                      .gamma = weight,
                      .save_mean = pass.buffer(id(), kSaveMean, 0),
                      .save_invstd = pass.buffer(id(), kSaveInvstd, 0),
                      .dx = dx,
                      .dgamma = weight_grad,
                      .dbeta = bias_grad},
                     f);
  return dx;
}

Tensor BatchNorm2d::forward_act(Context& ctx, Pass& pass, const Tensor& x, const Tensor* residual, bool relu,
                                Tensor& y) {
  const BatchNormShape s = shape_for(x, pass);
  pass.kept(id()) = x;
  if (training_) ++num_batches_tracked;
  ops::batchnorm_fwd(ctx, s, params, training_,
                     {.x = x,
                      .gamma = weight,
                      .beta = bias,
                      .running_mean = running_mean,
                      .running_var = running_var,
                      .save_mean = pass.buffer(id(), kSaveMean, 0),
                      .save_invstd = pass.buffer(id(), kSaveInvstd, 0),
                      .y = y},
                     {.residual = residual, .relu = relu, .sync = pass.stat_sync()});
  return y;
}

Tensor BatchNorm2d::backward_act(Context& ctx, Pass& pass, const Tensor& dy, const Tensor* relu_y, Tensor& dg,
                                 bool keep_dg) {
  return backward_fused(ctx, pass, dy, {.relu_y = relu_y, .dg = &dg, .keep_dg = keep_dg});
}

// ---------------------------------------------------------------- ReLU

Shape ReLU::plan(const Shape& in, PassPlan& plan) const {
  return plan_out_dx(id(), in, in, plan);
}

Tensor ReLU::forward(Context& ctx, Pass& pass, const Tensor& x) {
  Tensor& y = pass.buffer(id(), kY, x.dim(0));
  ops::relu_fwd(ctx, x, y);
  return y;
}

Tensor ReLU::backward(Context& ctx, Pass& pass, const Tensor& dy) {
  const Tensor& y = pass.buffer(id(), kY, dy.dim(0));
  Tensor& dx = pass.buffer(id(), kDx, dy.dim(0));
  ops::relu_bwd(ctx, y, dy, dx);
  return dx;
}

// ---------------------------------------------------------------- MaxPool2d

MaxPool2d::MaxPool2d(int kernel, int stride, int pad) : kernel_(kernel), stride_(stride), pad_(pad) {
  ENSURE(kernel > 0 && stride > 0 && pad >= 0 && 2 * pad <= kernel, "bad MaxPool2d(kernel %d, stride %d, pad %d)",
         kernel, stride, pad);
}

Pool2dShape MaxPool2d::shape_for(const Shape& in) const {
  expect_rank(in, 4, "MaxPool2d");
  Pool2dShape s{as_int(in[0]), as_int(in[1]), as_int(in[2]), as_int(in[3]), kernel_, kernel_, stride_, pad_};
  ENSURE(s.P() > 0 && s.Q() > 0, "MaxPool2d kernel %d stride %d does not fit input %s", kernel_, stride_,
         shape_str(in).c_str());
  return s;
}

Shape MaxPool2d::output_shape(const Shape& in) const {
  const Pool2dShape s = shape_for(in);
  return {s.N, s.P(), s.Q(), s.C};
}

Shape MaxPool2d::plan(const Shape& in, PassPlan& plan) const {
  const Shape out = output_shape(in);
  plan.rows(id(), kArgmax, Phase::Forward, out, DType::I32);
  return plan_out_dx(id(), in, out, plan);
}

Tensor MaxPool2d::forward(Context& ctx, Pass& pass, const Tensor& x) {
  const Pool2dShape s = shape_for(x.shape());
  pass.kept(id()) = x;
  Tensor& y = pass.buffer(id(), kY, s.N);
  ops::maxpool2d_fwd(ctx, s, x, y, pass.buffer(id(), kArgmax, s.N));
  return y;
}

Tensor MaxPool2d::backward(Context& ctx, Pass& pass, const Tensor& dy) {
  const Pool2dShape s = shape_for(pass.kept(id()).shape());
  Tensor& dx = pass.buffer(id(), kDx, s.N);
  ops::maxpool2d_bwd(ctx, s, dy, pass.buffer(id(), kArgmax, s.N), dx);
  return dx;
}

// ---------------------------------------------------------------- GlobalAvgPool

Shape GlobalAvgPool::output_shape(const Shape& in) const {
  expect_rank(in, 4, "GlobalAvgPool");
  return {in[0], in[3]};
}

Shape GlobalAvgPool::plan(const Shape& in, PassPlan& plan) const {
  return plan_out_dx(id(), in, output_shape(in), plan);
}

Tensor GlobalAvgPool::forward(Context& ctx, Pass& pass, const Tensor& x) {
  output_shape(x.shape());
  pass.kept(id()) = x;
  Tensor& y = pass.buffer(id(), kY, x.dim(0));
  ops::global_avgpool_fwd(ctx, {as_int(x.dim(0)), as_int(x.dim(1) * x.dim(2)), as_int(x.dim(3))}, x, y);
  return y;
}

Tensor GlobalAvgPool::backward(Context& ctx, Pass& pass, const Tensor& dy) {
  const Shape& in = pass.kept(id()).shape();
  Tensor& dx = pass.buffer(id(), kDx, in[0]);
  ops::global_avgpool_bwd(ctx, {as_int(in[0]), as_int(in[1] * in[2]), as_int(in[3])}, dy, dx);
  return dx;
}

// ---------------------------------------------------------------- Linear

Linear::Linear(int in_features_, int out_features_, Init weight_init_, Init bias_init_)
    : in_features(in_features_), out_features(out_features_), weight_init(weight_init_), bias_init(bias_init_) {
  ENSURE(in_features > 0 && out_features > 0, "bad Linear(%d, %d)", in_features, out_features);
}

std::vector<ParamSlot> Linear::slots() {
  return {
      {"weight",
       {out_features, in_features},
       SlotKind::Parameter,
       SlotLayout::Plain,
       weight_init,
       in_features,
       out_features,
       &weight,
       &weight_grad},
      {"bias",
       {out_features},
       SlotKind::Parameter,
       SlotLayout::Plain,
       bias_init,
       in_features,
       out_features,
       &bias,
       &bias_grad},
  };
}

Shape Linear::output_shape(const Shape& in) const {
  expect_rank(in, 2, "Linear");
  ENSURE(in[1] == in_features, "Linear expects %d input features, got input %s", in_features, shape_str(in).c_str());
  return {in[0], out_features};
}

Shape Linear::plan(const Shape& in, PassPlan& plan) const {
  return plan_out_dx(id(), in, output_shape(in), plan);
}

Tensor Linear::forward(Context& ctx, Pass& pass, const Tensor& x) {
  output_shape(x.shape());
  pass.kept(id()) = x;
  Tensor& y = pass.buffer(id(), kY, x.dim(0));
  ops::linear_fwd(ctx, {as_int(x.dim(0)), in_features, out_features}, x, weight, &bias, y);
  return y;
}

Tensor Linear::backward(Context& ctx, Pass& pass, const Tensor& dy) {
  const Tensor& x = pass.kept(id());
  Tensor& dx = pass.buffer(id(), kDx, x.dim(0));
  ops::linear_bwd(ctx, {as_int(x.dim(0)), in_features, out_features}, x, weight, dy, dx, weight_grad, &bias_grad);
  return dx;
}

// ---------------------------------------------------------------- Dropout

Shape Dropout::plan(const Shape& in, PassPlan& plan) const {
  plan.rows(id(), kMask, Phase::Forward, in);
  return plan_out_dx(id(), in, in, plan);
}

Tensor Dropout::forward(Context& ctx, Pass& pass, const Tensor& x) {
  if (!training_ || p_ == 0.0f) return x;
  Tensor& y = pass.buffer(id(), kY, x.dim(0));
  ops::dropout_fwd(ctx, {p_, seed}, x, y, pass.buffer(id(), kMask, x.dim(0)));
  return y;
}

Tensor Dropout::backward(Context& ctx, Pass& pass, const Tensor& dy) {
  if (!training_ || p_ == 0.0f) return dy;  // the eval forward is the identity
  Tensor& dx = pass.buffer(id(), kDx, dy.dim(0));
  ops::dropout_bwd(ctx, dy, pass.buffer(id(), kMask, dy.dim(0)), dx);
  return dx;
}

// ---------------------------------------------------------------- PadShortcut

PadShortcut::PadShortcut(int stride, int pad_before, int pad_after)
    : stride_(stride), pad_before_(pad_before), pad_after_(pad_after) {
  ENSURE(stride > 0 && pad_before >= 0 && pad_after >= 0, "bad PadShortcut(stride %d, pad %d+%d)", stride, pad_before,
         pad_after);
}

Shape PadShortcut::output_shape(const Shape& in) const {
  expect_rank(in, 4, "PadShortcut");
  return {in[0], (in[1] + stride_ - 1) / stride_, (in[2] + stride_ - 1) / stride_, in[3] + pad_before_ + pad_after_};
}

PadShortcutShape PadShortcut::shape_of(const Shape& in) const {
  return {static_cast<int>(in[0]),
          static_cast<int>(in[1]),
          static_cast<int>(in[2]),
          static_cast<int>(in[3]),
          stride_,
          pad_before_,
          pad_after_};
}

Shape PadShortcut::plan(const Shape& in, PassPlan& plan) const {
  return plan_out_dx(id(), in, output_shape(in), plan);
}

Tensor PadShortcut::forward(Context& ctx, Pass& pass, const Tensor& x) {
  output_shape(x.shape());
  pass.kept(id()) = x;
  Tensor& y = pass.buffer(id(), kY, x.dim(0));
  ops::pad_shortcut_fwd(ctx, shape_of(x.shape()), x, y);
  return y;
}

Tensor PadShortcut::backward(Context& ctx, Pass& pass, const Tensor& dy) {
  const Shape& in = pass.kept(id()).shape();
  Tensor& dx = pass.buffer(id(), kDx, in[0]);
  ops::pad_shortcut_bwd(ctx, shape_of(in), dy, dx);
  return dx;
}

// ---------------------------------------------------------------- Sequential

Sequential& Sequential::add(std::unique_ptr<Layer> layer) {
  return add(std::to_string(layers_.size()), std::move(layer));
}

Sequential& Sequential::add(std::string name, std::unique_ptr<Layer> layer) {
  layers_.emplace_back(std::move(name), std::move(layer));
  return *this;
}

std::vector<std::pair<std::string, Layer*>> Sequential::children() {
  std::vector<std::pair<std::string, Layer*>> out;
  for (auto& [name, layer] : layers_) out.emplace_back(name, layer.get());
  return out;
}

Shape Sequential::output_shape(const Shape& in) const {
  Shape s = in;
  for (const auto& [name, layer] : layers_) s = layer->output_shape(s);
  return s;
}

Shape Sequential::plan(const Shape& in, PassPlan& plan) const {
  Shape s = in;
  for (const auto& [name, layer] : layers_) s = layer->plan(s, plan);
  return s;
}

namespace {

// The batch norm at children[i] when children[i + 1] is a ReLU it fuses with, else null.
BatchNorm2d* bn_before_relu(const std::vector<std::pair<std::string, std::unique_ptr<Layer>>>& layers, size_t i) {
  if (i + 1 >= layers.size() || !dynamic_cast<ReLU*>(layers[i + 1].second.get())) return nullptr;
  return dynamic_cast<BatchNorm2d*>(layers[i].second.get());
}

}  // namespace

Tensor Sequential::forward(Context& ctx, Pass& pass, const Tensor& x) {
  return forward_range(ctx, pass, x, 0, layers_.size());
}

Tensor Sequential::forward_range(Context& ctx, Pass& pass, const Tensor& x, size_t begin, size_t end) {
  Tensor h = x;
  for (size_t i = begin; i < end; ++i) {
    if (BatchNorm2d* bn = i + 1 < end ? bn_before_relu(layers_, i) : nullptr) {
      Layer& relu = *layers_[i + 1].second;
      ProfileScope scope(ctx, "BatchNorm2d+ReLU", "forward");
      h = bn->forward_act(ctx, pass, h, nullptr, true, pass.buffer(relu.id(), kY, h.dim(0)));
      ++i;
      continue;
    }
    h = forward_of(*layers_[i].second, ctx, pass, h);
  }
  return h;
}

Tensor Sequential::backward(Context& ctx, Pass& pass, const Tensor& dy) {
  return backward_range(ctx, pass, dy, 0, layers_.size());
}

Tensor Sequential::backward_range(Context& ctx, Pass& pass, const Tensor& dy, size_t begin, size_t end) {
  Tensor g = dy;
  for (size_t i = end; i-- > begin;) {
    if (BatchNorm2d* bn = i >= begin + 1 ? bn_before_relu(layers_, i - 1) : nullptr) {
      Layer& relu = *layers_[i].second;
      const int64_t n = g.dim(0);
      ProfileScope scope(ctx, "BatchNorm2d+ReLU", "backward");
      g = bn->backward_act(ctx, pass, g, &pass.buffer(relu.id(), kY, n), pass.buffer(relu.id(), kDx, n), false);
      --i;
      continue;
    }
    g = backward_of(*layers_[i].second, ctx, pass, g);
  }
  return g;
}

// ---------------------------------------------------------------- Residual

Residual::Residual(std::unique_ptr<Sequential> main, std::unique_ptr<Layer> shortcut, std::string shortcut_name)
    : main_(std::move(main)), shortcut_(std::move(shortcut)), shortcut_name_(std::move(shortcut_name)) {}

std::vector<std::pair<std::string, Layer*>> Residual::children() {
  auto out = main_->children();
  if (shortcut_) out.emplace_back(shortcut_name_, shortcut_.get());
  return out;
}

Shape Residual::output_shape(const Shape& in) const {
  const Shape a = main_->output_shape(in);
  const Shape b = shortcut_ ? shortcut_->output_shape(in) : in;
  ENSURE(a == b, "residual branches disagree: main %s, shortcut %s", shape_str(a).c_str(), shape_str(b).c_str());
  return a;
}

Shape Residual::plan(const Shape& in, PassPlan& plan) const {
  const Shape out = main_->plan(in, plan);
  const Shape b = shortcut_ ? shortcut_->plan(in, plan) : in;
  ENSURE(out == b, "residual branches disagree: main %s, shortcut %s", shape_str(out).c_str(), shape_str(b).c_str());
  plan.rows(id(), kDsum, Phase::Backward, out);
  return plan_out_dx(id(), in, out, plan);
}

Tensor Residual::forward(Context& ctx, Pass& pass, const Tensor& x) {
  auto* bn = dynamic_cast<BatchNorm2d*>(main_->last());
  const Tensor a = bn ? main_->forward_range(ctx, pass, x, 0, main_->size() - 1) : main_->forward(ctx, pass, x);
  const Tensor b = shortcut_ ? forward_of(*shortcut_, ctx, pass, x) : x;
  Tensor& y = pass.buffer(id(), kY, a.dim(0));
  if (bn) {  // y = relu(bn(a) + b) in one pass
    ProfileScope scope(ctx, "BatchNorm2d+add+ReLU", "forward");
    const Shape out = bn->output_shape(a.shape());
    ENSURE(out == b.shape(), "residual branches disagree: main %s, shortcut %s", shape_str(out).c_str(),
           shape_str(b.shape()).c_str());
    return bn->forward_act(ctx, pass, a, &b, true, y);
  }
  ENSURE(a.shape() == b.shape(), "residual branches disagree: main %s, shortcut %s", shape_str(a.shape()).c_str(),
         shape_str(b.shape()).c_str());
  ProfileScope scope(ctx, "Residual add+ReLU", "forward");
  ops::add(ctx, a, b, y);
  ops::relu_fwd(ctx, y, y);  // in place: relu(a + b), kept for relu_bwd
  return y;
}

Tensor Residual::backward(Context& ctx, Pass& pass, const Tensor& dy) {
  const int64_t n = dy.dim(0);
  Tensor& dsum = pass.buffer(id(), kDsum, n);
  auto* bn = dynamic_cast<BatchNorm2d*>(main_->last());
  size_t end = main_->size();
  Tensor g;
  if (bn) {  // dsum = dy·[y > 0], kept for the shortcut, and the batch norm's backward of it
    ProfileScope scope(ctx, "BatchNorm2d+add+ReLU", "backward");
    g = bn->backward_act(ctx, pass, dy, &pass.buffer(id(), kY, n), dsum, true);
    --end;
  } else {
    ProfileScope scope(ctx, "Residual add+ReLU", "backward");
    ops::relu_bwd(ctx, pass.buffer(id(), kY, n), dy, dsum);
    g = dsum;
  }
  const Tensor dshort = shortcut_ ? backward_of(*shortcut_, ctx, pass, dsum) : dsum;
  // dx = dmain + dshort: added by the main branch's first convolution, in its dgrad pass.
  auto* conv = dynamic_cast<Conv2d*>(main_->first());
  if (conv && end > 1) {
    g = main_->backward_range(ctx, pass, g, 1, end);
    if (!ctx.profile()) return conv->backward_add(ctx, pass, g, dshort);
    ProfileScope scope(ctx, "Conv2d", "backward");
    return conv->backward_add(ctx, pass, g, dshort);
  }
  const Tensor dmain = main_->backward_range(ctx, pass, g, 0, end);
  ProfileScope scope(ctx, "Residual add", "backward");
  Tensor& dx = pass.buffer(id(), kDx, n);
  ops::add(ctx, dmain, dshort, dx);
  return dx;
}

}  // namespace activeip
