// The layers the nets are built from. Each keeps its input (or output) for backward and
// declares its output and dx buffers in the pass's plan (engine/nn/pass.h).
// Containers: Sequential (children "0", "1", … or given names) and Residual
// (main branch + shortcut, summed, then ReLU — a ResNet basic block).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/nn/layer.h"
#include "kernels/batchnorm.h"
#include "kernels/conv2d.h"
#include "kernels/dropout.h"
#include "kernels/pool.h"
#include "kernels/shortcut.h"

namespace activeip {

namespace ops {
struct BatchNormBwdFusion;  // engine/nn/ops.h
}  // namespace ops

class Conv2d final : public Layer {
 public:
  Conv2d(int in_channels, int out_channels, int kernel, int stride, int pad, bool bias);
  const char* type() const override { return "Conv2d"; }
  std::vector<ParamSlot> slots() override;
  Shape output_shape(const Shape& in) const override;
  Shape plan(const Shape& in, PassPlan& plan) const override;
  Tensor forward(Context& ctx, Pass& pass, const Tensor& x) override;
  Tensor backward(Context& ctx, Pass& pass, const Tensor& dy) override;
  Conv2dShape shape_for(const Shape& in) const;
  // backward with dx = dgrad(dy) + dx_add: a residual block's shortcut gradient, added in the
  // same pass (ops::conv2d_dgrad).
  Tensor backward_add(Context& ctx, Pass& pass, const Tensor& dy, const Tensor& dx_add);

  int in_channels, out_channels, kernel, stride, pad;
  bool has_bias;
  Tensor weight, bias, weight_grad, bias_grad;
};

// Backward follows a forward in either mode: after an eval forward the running statistics are
// constants (ops::batchnorm_bwd_eval) — the input gradient of a frozen network.
class BatchNorm2d final : public Layer {
 public:
  explicit BatchNorm2d(int channels, float eps = 1e-5f, float momentum = 0.1f);
  const char* type() const override { return "BatchNorm2d"; }
  std::vector<ParamSlot> slots() override;
  Shape output_shape(const Shape& in) const override;
  Shape plan(const Shape& in, PassPlan& plan) const override;
  Tensor forward(Context& ctx, Pass& pass, const Tensor& x) override;
  Tensor backward(Context& ctx, Pass& pass, const Tensor& dy) override;
  int64_t* counter() override { return &num_batches_tracked; }

  // The batch norm with what follows it fused in (ops::BatchNormFusion): forward writes
  // y = act(bn(x) + residual) into `y` (the buffer of the layer whose output it stands for);
  // backward takes the gradient of that y, masks it by [y > 0] when relu, keeps the masked
  // gradient in `dg` when keep_dg (on CUDA always, as its scratch) and returns dx.
  Tensor forward_act(Context& ctx, Pass& pass, const Tensor& x, const Tensor* residual, bool relu, Tensor& y);
  Tensor backward_act(Context& ctx, Pass& pass, const Tensor& dy, const Tensor* relu_y, Tensor& dg, bool keep_dg);

  int channels;
  BatchNormParams params;
  Tensor weight, bias, weight_grad, bias_grad, running_mean, running_var;
  int64_t num_batches_tracked = 0;

 private:
  // x as M×C rows; in training the rows of the pass's statistics samples (Pass::stat_rows),
  // at least two.
  BatchNormShape shape_for(const Tensor& x, const Pass& pass) const;
  // backward and backward_act: the fusion `f` (its sync is the pass's), in the mode of the
  // last forward.
  Tensor backward_fused(Context& ctx, Pass& pass, const Tensor& dy, ops::BatchNormBwdFusion f);
};

class ReLU final : public Layer {
 public:
  const char* type() const override { return "ReLU"; }
  Shape output_shape(const Shape& in) const override { return in; }
  Shape plan(const Shape& in, PassPlan& plan) const override;
  Tensor forward(Context& ctx, Pass& pass, const Tensor& x) override;
  Tensor backward(Context& ctx, Pass& pass, const Tensor& dy) override;
};

class MaxPool2d final : public Layer {
 public:
  MaxPool2d(int kernel, int stride, int pad = 0);
  const char* type() const override { return "MaxPool2d"; }
  Shape output_shape(const Shape& in) const override;
  Shape plan(const Shape& in, PassPlan& plan) const override;
  Tensor forward(Context& ctx, Pass& pass, const Tensor& x) override;
  Tensor backward(Context& ctx, Pass& pass, const Tensor& dy) override;

 private:
  Pool2dShape shape_for(const Shape& in) const;
  int kernel_, stride_, pad_;
};

// N×H×W×C → N×C (also the flatten before the classifier).
class GlobalAvgPool final : public Layer {
 public:
  const char* type() const override { return "GlobalAvgPool"; }
  Shape output_shape(const Shape& in) const override;
  Shape plan(const Shape& in, PassPlan& plan) const override;
  Tensor forward(Context& ctx, Pass& pass, const Tensor& x) override;
  Tensor backward(Context& ctx, Pass& pass, const Tensor& dy) override;
};

class Linear final : public Layer {
 public:
  // weight_init: UniformFanIn (PyTorch default) or Normal001 (torchvision VGG); VGG's
  // classifier bias starts at zero, the default bias is U(±1/sqrt(in)).
  Linear(int in_features, int out_features, Init weight_init = Init::UniformFanIn, Init bias_init = Init::UniformFanIn);
  const char* type() const override { return "Linear"; }
  std::vector<ParamSlot> slots() override;
  Shape output_shape(const Shape& in) const override;
  Shape plan(const Shape& in, PassPlan& plan) const override;
  Tensor forward(Context& ctx, Pass& pass, const Tensor& x) override;
  Tensor backward(Context& ctx, Pass& pass, const Tensor& dy) override;

  int in_features, out_features;
  Init weight_init, bias_init;
  Tensor weight, bias, weight_grad, bias_grad;
};

// Inverted dropout; identity in eval mode. `seed` is set per step by Network::begin_step.
class Dropout final : public Layer {
 public:
  explicit Dropout(float p) : p_(p) {}
  const char* type() const override { return "Dropout"; }
  Shape output_shape(const Shape& in) const override { return in; }
  Shape plan(const Shape& in, PassPlan& plan) const override;
  Tensor forward(Context& ctx, Pass& pass, const Tensor& x) override;
  Tensor backward(Context& ctx, Pass& pass, const Tensor& dy) override;
  uint64_t seed = 0;

 private:
  float p_;
};

// He et al.'s option-A shortcut for CIFAR ResNets: subsample by `stride` and zero-pad
// the channels from C to C + pad_before + pad_after. No parameters.
class PadShortcut final : public Layer {
 public:
  PadShortcut(int stride, int pad_before, int pad_after);
  const char* type() const override { return "PadShortcut"; }
  Shape output_shape(const Shape& in) const override;
  Shape plan(const Shape& in, PassPlan& plan) const override;
  Tensor forward(Context& ctx, Pass& pass, const Tensor& x) override;
  Tensor backward(Context& ctx, Pass& pass, const Tensor& dy) override;

 private:
  PadShortcutShape shape_of(const Shape& in) const;
  int stride_, pad_before_, pad_after_;
};

// Children in order. A BatchNorm2d followed by a ReLU runs as one fused op (BatchNorm2d::
// forward_act), its output in the ReLU's buffer.
class Sequential final : public Layer {
 public:
  Sequential() = default;
  // Children named by their index ("0", "1", …), as torch.nn.Sequential.
  Sequential& add(std::unique_ptr<Layer> layer);
  // Children with explicit names ("conv1", "bn1", …), as a torch module's attributes.
  Sequential& add(std::string name, std::unique_ptr<Layer> layer);
  const char* type() const override { return "Sequential"; }
  std::vector<std::pair<std::string, Layer*>> children() override;
  Shape output_shape(const Shape& in) const override;
  Shape plan(const Shape& in, PassPlan& plan) const override;
  Tensor forward(Context& ctx, Pass& pass, const Tensor& x) override;
  Tensor backward(Context& ctx, Pass& pass, const Tensor& dy) override;
  size_t size() const { return layers_.size(); }
  Layer* first() const { return layers_.empty() ? nullptr : layers_.front().second.get(); }
  Layer* last() const { return layers_.empty() ? nullptr : layers_.back().second.get(); }
  // The children [begin, end) only: a Residual runs its main branch's last batch norm (fused
  // with the sum and the ReLU) and the backward of its first convolution (fused with the sum's
  // gradient) itself.
  Tensor forward_range(Context& ctx, Pass& pass, const Tensor& x, size_t begin, size_t end);
  Tensor backward_range(Context& ctx, Pass& pass, const Tensor& dy, size_t begin, size_t end);

 private:
  std::vector<std::pair<std::string, std::unique_ptr<Layer>>> layers_;
};

// y = relu(main(x) + shortcut(x)); a null shortcut is the identity. The main branch's
// children are flattened into this block's names ("conv1", "bn1", …) and the shortcut is
// named `shortcut_name` ("downsample" in torchvision's ResNet). When the main branch ends in
// a batch norm, that batch norm, the sum and the ReLU run as one fused op.
class Residual final : public Layer {
 public:
  Residual(std::unique_ptr<Sequential> main, std::unique_ptr<Layer> shortcut, std::string shortcut_name = "downsample");
  const char* type() const override { return "Residual"; }
  std::vector<std::pair<std::string, Layer*>> children() override;
  Shape output_shape(const Shape& in) const override;
  Shape plan(const Shape& in, PassPlan& plan) const override;
  Tensor forward(Context& ctx, Pass& pass, const Tensor& x) override;
  Tensor backward(Context& ctx, Pass& pass, const Tensor& dy) override;

 private:
  std::unique_ptr<Sequential> main_;
  std::unique_ptr<Layer> shortcut_;
  std::string shortcut_name_;
};

}  // namespace activeip
