// Forward and backward of every layer, through the device-dispatching ops. Shapes are
// validated here (the layer boundary) and nowhere below.
#include "engine/nn/layers.h"

#include <cstring>

#include "engine/nn/ops.h"

namespace activeip {

namespace {

void expect_rank(const Shape& in, int rank, const char* layer) {
  ENSURE(static_cast<int>(in.size()) == rank, "%s expects a rank-%d input, got %s", layer, rank, shape_str(in).c_str());
}

int as_int(int64_t v) {
  return static_cast<int>(v);
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

Tensor Conv2d::forward(Context& ctx, const Tensor& x) {
  const Conv2dShape s = shape_for(x.shape());
  x_ = x;
  ensure_tensor(y_, {s.N, s.P(), s.Q(), s.K}, DType::F32, ctx);
  ops::conv2d_fprop(ctx, s, x, weight, has_bias ? &bias : nullptr, y_);
  return y_;
}

Tensor Conv2d::backward(Context& ctx, const Tensor& dy) {
  const Conv2dShape s = shape_for(x_.shape());
  ops::conv2d_wgrad(ctx, s, x_, dy, weight_grad, has_bias ? &bias_grad : nullptr);
  ensure_tensor(dx_, x_.shape(), DType::F32, ctx);
  ops::conv2d_dgrad(ctx, s, dy, weight, dx_);
  return dx_;
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

Tensor BatchNorm2d::forward(Context& ctx, const Tensor& x) {
  output_shape(x.shape());
  const BatchNormShape s{as_int(x.numel() / channels), channels};
  x_ = x;
  ensure_tensor(y_, x.shape(), DType::F32, ctx);
  ensure_tensor(save_mean_, {channels}, DType::F32, ctx);
  ensure_tensor(save_invstd_, {channels}, DType::F32, ctx);
  if (training_) {
    ENSURE(s.M > 1, "BatchNorm2d in training mode needs more than one value per channel, got input %s",
           shape_str(x.shape()).c_str());
    ++num_batches_tracked;
  }
  ops::batchnorm_fwd(ctx, s, params, training_,
                     {.x = x,
                      .gamma = weight,
                      .beta = bias,
                      .running_mean = running_mean,
                      .running_var = running_var,
                      .save_mean = save_mean_,
                      .save_invstd = save_invstd_,
                      .y = y_});
  return y_;
}

Tensor BatchNorm2d::backward(Context& ctx, const Tensor& dy) {
  ENSURE(training_, "BatchNorm2d backward needs a training-mode forward");
  const BatchNormShape s{as_int(x_.numel() / channels), channels};
  ensure_tensor(dx_, x_.shape(), DType::F32, ctx);
  ops::batchnorm_bwd(ctx, s,
                     {.x = x_,
                      .dy = dy,
                      .gamma = weight,
                      .save_mean = save_mean_,
                      .save_invstd = save_invstd_,
                      .dx = dx_,
                      .dgamma = weight_grad,
                      .dbeta = bias_grad});
  return dx_;
}

// ---------------------------------------------------------------- ReLU

Tensor ReLU::forward(Context& ctx, const Tensor& x) {
  ensure_tensor(y_, x.shape(), DType::F32, ctx);
  ops::relu_fwd(ctx, x, y_);
  return y_;
}

Tensor ReLU::backward(Context& ctx, const Tensor& dy) {
  ensure_tensor(dx_, y_.shape(), DType::F32, ctx);
  ops::relu_bwd(ctx, y_, dy, dx_);
  return dx_;
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

Tensor MaxPool2d::forward(Context& ctx, const Tensor& x) {
  const Pool2dShape s = shape_for(x.shape());
  in_shape_ = x.shape();
  ensure_tensor(y_, {s.N, s.P(), s.Q(), s.C}, DType::F32, ctx);
  ensure_tensor(argmax_, y_.shape(), DType::I32, ctx);
  ops::maxpool2d_fwd(ctx, s, x, y_, argmax_);
  return y_;
}

Tensor MaxPool2d::backward(Context& ctx, const Tensor& dy) {
  const Pool2dShape s = shape_for(in_shape_);
  ensure_tensor(dx_, in_shape_, DType::F32, ctx);
  ops::maxpool2d_bwd(ctx, s, dy, argmax_, dx_);
  return dx_;
}

// ---------------------------------------------------------------- GlobalAvgPool

Shape GlobalAvgPool::output_shape(const Shape& in) const {
  expect_rank(in, 4, "GlobalAvgPool");
  return {in[0], in[3]};
}

Tensor GlobalAvgPool::forward(Context& ctx, const Tensor& x) {
  const Shape out = output_shape(x.shape());
  in_shape_ = x.shape();
  ensure_tensor(y_, out, DType::F32, ctx);
  ops::global_avgpool_fwd(ctx, {as_int(x.dim(0)), as_int(x.dim(1) * x.dim(2)), as_int(x.dim(3))}, x, y_);
  return y_;
}

Tensor GlobalAvgPool::backward(Context& ctx, const Tensor& dy) {
  ensure_tensor(dx_, in_shape_, DType::F32, ctx);
  ops::global_avgpool_bwd(ctx, {as_int(in_shape_[0]), as_int(in_shape_[1] * in_shape_[2]), as_int(in_shape_[3])}, dy,
                          dx_);
  return dx_;
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

Tensor Linear::forward(Context& ctx, const Tensor& x) {
  const Shape out = output_shape(x.shape());
  x_ = x;
  ensure_tensor(y_, out, DType::F32, ctx);
  ops::linear_fwd(ctx, {as_int(x.dim(0)), in_features, out_features}, x, weight, &bias, y_);
  return y_;
}

Tensor Linear::backward(Context& ctx, const Tensor& dy) {
  ensure_tensor(dx_, x_.shape(), DType::F32, ctx);
  ops::linear_bwd(ctx, {as_int(x_.dim(0)), in_features, out_features}, x_, weight, dy, dx_, weight_grad, &bias_grad);
  return dx_;
}

// ---------------------------------------------------------------- Dropout

Tensor Dropout::forward(Context& ctx, const Tensor& x) {
  if (!training_ || p_ == 0.0f) return x;
  ensure_tensor(y_, x.shape(), DType::F32, ctx);
  ensure_tensor(mask_, x.shape(), DType::F32, ctx);
  ops::dropout_fwd(ctx, {p_, seed}, x, y_, mask_);
  return y_;
}

Tensor Dropout::backward(Context& ctx, const Tensor& dy) {
  if (p_ == 0.0f) return dy;
  ensure_tensor(dx_, dy.shape(), DType::F32, ctx);
  ops::dropout_bwd(ctx, dy, mask_, dx_);
  return dx_;
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

Tensor PadShortcut::forward(Context& ctx, const Tensor& x) {
  in_shape_ = x.shape();
  ensure_tensor(y_, output_shape(x.shape()), DType::F32, ctx);
  ops::pad_shortcut_fwd(ctx, shape_of(in_shape_), x, y_);
  return y_;
}

Tensor PadShortcut::backward(Context& ctx, const Tensor& dy) {
  ensure_tensor(dx_, in_shape_, DType::F32, ctx);
  ops::pad_shortcut_bwd(ctx, shape_of(in_shape_), dy, dx_);
  return dx_;
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

Tensor Sequential::forward(Context& ctx, const Tensor& x) {
  Tensor h = x;
  for (auto& [name, layer] : layers_) h = layer->forward(ctx, h);
  return h;
}

Tensor Sequential::backward(Context& ctx, const Tensor& dy) {
  Tensor g = dy;
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) g = it->second->backward(ctx, g);
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

Tensor Residual::forward(Context& ctx, const Tensor& x) {
  const Tensor a = main_->forward(ctx, x);
  const Tensor b = shortcut_ ? shortcut_->forward(ctx, x) : x;
  ENSURE(a.shape() == b.shape(), "residual branches disagree: main %s, shortcut %s", shape_str(a.shape()).c_str(),
         shape_str(b.shape()).c_str());
  ensure_tensor(y_, a.shape(), DType::F32, ctx);
  ops::add(ctx, a, b, y_);
  ops::relu_fwd(ctx, y_, y_);  // in place: relu(a + b), kept for relu_bwd
  return y_;
}

Tensor Residual::backward(Context& ctx, const Tensor& dy) {
  ensure_tensor(dsum_, y_.shape(), DType::F32, ctx);
  ops::relu_bwd(ctx, y_, dy, dsum_);
  const Tensor dmain = main_->backward(ctx, dsum_);
  if (!shortcut_) {
    ensure_tensor(dx_, dmain.shape(), DType::F32, ctx);
    ops::add(ctx, dmain, dsum_, dx_);
    return dx_;
  }
  const Tensor dshort = shortcut_->backward(ctx, dsum_);
  ensure_tensor(dx_, dmain.shape(), DType::F32, ctx);
  ops::add(ctx, dmain, dshort, dx_);
  return dx_;
}

}  // namespace activeip
