// The layer interface. Layers have explicit forward and backward (no autograd):
// forward(ctx, pass, x) keeps in the pass what backward needs and returns y; backward(ctx,
// pass, dy) ADDS into the layer's parameter gradients and returns dx, which it OVERWRITES.
// Returned tensors live in the pass (engine/nn/pass.h) and stay valid until the layer's
// next forward/backward in the same pass; another pass does not touch them.
// Parameters are declared by name and shape; Network::build() places all of them in one
// flat parameter buffer (gradients in another, BN statistics in a third) and hands each
// layer views of its slots.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/context.h"
#include "engine/core/tensor.h"
#include "engine/nn/pass.h"

namespace activeip {

// How a parameter starts, as torchvision initialises the layer that owns it.
enum class Init {
  Zeros,
  Ones,
  KaimingNormalFanOut,  // N(0, 2/fan_out): torchvision conv weights (mode="fan_out", relu)
  UniformFanIn,         // U(±1/sqrt(fan_in)): PyTorch's default Linear weight and bias
  Normal001,            // N(0, 0.01²): torchvision VGG classifier weights
};

// What a slot holds: a trained parameter (has a gradient), or a buffer (running stats).
enum class SlotKind { Parameter, Buffer };

// Layout of a slot inside the engine; checkpoints always use PyTorch's layout.
enum class SlotLayout {
  Plain,  // same in both
  KRSC,   // conv weight stored K×R×S×C here, OIHW = K×C×R×S in PyTorch
};

struct ParamSlot {
  std::string name;  // local ("weight"); Network prefixes the path ("layer1.0.conv1.weight")
  Shape shape;       // engine shape (KRSC for conv weights)
  SlotKind kind = SlotKind::Parameter;
  SlotLayout layout = SlotLayout::Plain;
  Init init = Init::Zeros;
  int64_t fan_in = 0, fan_out = 0;
  Tensor* value = nullptr;  // the layer's member that receives the view
  Tensor* grad = nullptr;   // Parameters only
};

class Layer {
 public:
  virtual ~Layer() = default;
  virtual const char* type() const = 0;

  // The layer's own slots (not its children's).
  virtual std::vector<ParamSlot> slots() { return {}; }
  // Named sub-layers, in execution order ("0", "conv1", "downsample" …).
  virtual std::vector<std::pair<std::string, Layer*>> children() { return {}; }

  // NHWC shape of the output for an NHWC input shape (validates the input).
  virtual Shape output_shape(const Shape& in) const = 0;
  // Declares the buffers one pass of this layer (children included) needs for input shape
  // `in`, under the layer's id, and returns the output shape.
  virtual Shape plan(const Shape& in, PassPlan& plan) const = 0;
  virtual Tensor forward(Context& ctx, Pass& pass, const Tensor& x) = 0;
  virtual Tensor backward(Context& ctx, Pass& pass, const Tensor& dy) = 0;

  void set_training(bool training);
  bool training() const { return training_; }

  // Counters that PyTorch keeps as integer buffers (BatchNorm's num_batches_tracked).
  virtual int64_t* counter() { return nullptr; }

  // The layer's index in its network's passes (given by the Network, in tree order).
  int id() const { return id_; }

 protected:
  bool training_ = true;

 private:
  friend class Network;
  int id_ = -1;
};

}  // namespace activeip
