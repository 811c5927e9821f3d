// A network: a layer tree plus the flat buffers that hold all its state. build() walks
// the tree, names every slot as PyTorch would ("layer1.0.conv1.weight"), lays the
// parameters out in ONE buffer, their gradients in another of the same layout, and the
// BN running statistics in a third; each layer's tensors become views into them. The
// optimizer, gradient zeroing and (later) pruning masks then work on whole buffers.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/nn/layer.h"
#include "engine/nn/pass.h"

namespace activeip {

class Dropout;

// A conv whose filters can be removed without touching a residual sum: the conv (its weight
// rows and bias), the batch norm after it, and the one layer that reads it (a conv's input
// channels, or the classifier's input columns after the global average pool). Layer names,
// as the slots are named: "layer1.0.conv1", "layer1.0.bn1", "layer1.0.conv2".
struct FilterGroup {
  std::string conv, bn, consumer;
};

struct NetInfo {
  std::string name;  // registry name, e.g. "resnet20"
  int H = 0, W = 0, C = 0, num_classes = 0;
  std::vector<FilterGroup> filter_groups;  // what structured pruning may narrow
  std::map<std::string, int> channels;     // the groups' convs built narrower than the architecture
};

struct NamedSlot {
  std::string name;  // full PyTorch-style name
  ParamSlot slot;
  int64_t offset = 0;  // elements into params() (Parameter) or buffers() (Buffer)
};

struct NamedCounter {
  std::string name;  // e.g. "bn1.num_batches_tracked"
  int64_t* value;
};

// What training changes in a network besides its gradients — the flat parameters, the
// running statistics and the counters — as one value (Network::snapshot / restore).
struct NetworkState {
  Tensor params, buffers;  // on the network's device
  std::vector<int64_t> counters;
};

class Network {
 public:
  Network(NetInfo info, std::unique_ptr<Layer> body);

  const NetInfo& info() const { return info_; }
  Layer& body() { return *body_; }

  // Allocates the flat buffers on ctx's device and initialises every slot as torchvision
  // does, deterministically from `seed` (generated on the host, then copied).
  void build(Context& ctx, uint64_t seed);
  bool built() const { return built_; }

  // x: N×H×W×C → logits N×classes, in `pass` (planned for this network on its first use,
  // again when a batch is larger than it was planned for). The forms without a pass use the
  // network's own. The logits and every activation stay valid until the next forward in
  // the same pass.
  Tensor forward(Context& ctx, Pass& pass, const Tensor& x);
  Tensor forward(Context& ctx, const Tensor& x) { return forward(ctx, pass_, x); }
  // The gradient of the last forward in `pass`.
  Tensor backward(Context& ctx, Pass& pass, const Tensor& dlogits);
  Tensor backward(Context& ctx, const Tensor& dlogits) { return backward(ctx, pass_, dlogits); }
  // The input of the last top-level layer (for every net here the pooled features the
  // classifier reads, N×C): the body's children but the last. Error unless the body is a
  // container whose last child is a Linear layer.
  Tensor forward_features(Context& ctx, const Tensor& x);
  void zero_grad(Context& ctx);
  // Re-initialises every slot whose name starts with `prefix` (parameters and buffers; "fc."
  // is the ResNet classifier) as build() does, from `seed` (deterministic, independent of the
  // build seed's stream). Returns how many slots it re-initialised; Error when none matches.
  int reinit(Context& ctx, const std::string& prefix, uint64_t seed);
  // The name prefix of the layer that holds the last parameter, e.g. "fc." (the classifier).
  std::string last_layer_prefix() const;
  void set_training(bool training) { body_->set_training(training); }
  bool training() const { return body_->training(); }
  // Clean-statistics batch norm: in training mode every batch norm normalises the whole batch
  // with the statistics of its first n samples, and moves its running statistics by them
  // alone (the gradient through the statistics reaches those samples only). 0, or n at least
  // the batch: all samples, as usual.
  void set_stat_samples(int64_t n) { stat_samples_ = n; }
  // Sync batch norm (data-parallel training): in training mode every batch norm takes its
  // statistics over the rows of all ranks of `sync` (borrowed; null: this process's rows).
  // With set_stat_samples, over each rank's first n samples.
  void set_stat_sync(Communicator* sync) { stat_sync_ = sync; }
  // Copies the state into `into`, reusing its storage when it has the right size (so a step
  // that snapshots allocates nothing after the first), and back.
  void snapshot(Context& ctx, NetworkState& into) const;
  void restore(Context& ctx, const NetworkState& from);
  // Derives the per-step seeds of stochastic layers (dropout) from the build seed.
  void begin_step(uint64_t step);

  Tensor& params() { return params_; }
  Tensor& grads() { return grads_; }
  Tensor& buffers() { return buffers_; }
  const Tensor& buffers() const { return buffers_; }
  const std::vector<NamedSlot>& slots() const { return slots_; }
  const std::vector<NamedCounter>& counters() const { return counters_; }
  const NamedSlot& slot(const std::string& name) const;
  int64_t num_parameters() const { return params_.numel(); }
  Shape input_shape(int64_t batch) const { return {batch, info_.H, info_.W, info_.C}; }

 private:
  NetInfo info_;
  std::unique_ptr<Layer> body_;
  bool built_ = false;
  uint64_t seed_ = 0;
  std::vector<NamedSlot> slots_;
  std::vector<NamedCounter> counters_;
  std::vector<Dropout*> dropouts_;
  int layers_ = 0;  // layers with an id in passes
  int64_t stat_samples_ = 0;
  Communicator* stat_sync_ = nullptr;
  Tensor params_, grads_, buffers_;
  Pass pass_;

  void prepare(Context& ctx, Pass& pass, const Tensor& x);
};

}  // namespace activeip
