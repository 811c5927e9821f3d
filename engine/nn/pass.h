// A pass: the activations of one forward and backward through one network. What the
// layers produce and keep (outputs, saved statistics, pooling indices) lives in a forward
// arena, their input gradients in a backward arena; each arena is one allocation, laid out
// from the network's plan for the largest batch its phase has run and viewed for smaller
// ones. Two passes of one network are independent: a second forward into another pass
// (SAM's, a teacher's, an inner attack's) leaves the first pass's tensors as they were.
// The parameters, their gradients and the running statistics stay the network's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/core/communicator.h"
#include "engine/core/context.h"
#include "engine/core/tensor.h"

namespace activeip {

enum class Phase : uint8_t { Forward, Backward };

// What the layers of a network ask of a pass, planned for a one-row input: each layer's
// buffers, numbered by the layer (its own `k`), in the phase that fills them.
class PassPlan {
 public:
  // A buffer whose first dimension is the batch (`shape` for one row).
  void rows(int layer, int k, Phase phase, const Shape& shape, DType dtype = DType::F32);
  // A buffer of the same shape for every batch (per-channel statistics).
  void fixed(int layer, int k, Phase phase, const Shape& shape, DType dtype = DType::F32);

 private:
  friend class Pass;
  struct Request {
    int layer, k;
    Phase phase;
    Shape shape;
    DType dtype;
    bool per_row;
  };
  void add(Request r);
  std::vector<Request> requests_;
};

class Pass {
 public:
  Pass() = default;
  Pass(const Pass&) = delete;
  Pass& operator=(const Pass&) = delete;
  Pass(Pass&&) = default;
  Pass& operator=(Pass&&) = default;

  // The network whose plan this pass holds (null before its first forward).
  const void* network() const { return network_; }
  // Takes `network`'s plan for its `layers` layers; the arenas follow in allocate().
  void plan(const void* network, int layers, const PassPlan& plan);
  // Makes the phase's arena hold `rows` rows on ctx's device, laying it out again (one
  // allocation) only when it is smaller or elsewhere.
  void allocate(Context& ctx, Phase phase, int64_t rows);
  int64_t rows(Phase phase) const { return rows_[static_cast<int>(phase)]; }
  // The rows of the last forward (what a backward must match).
  int64_t last_rows() const { return last_rows_; }
  // The leading rows of the last forward whose statistics every batch norm in training mode
  // normalises the whole batch with (Network::set_stat_samples); 0: all of them.
  int64_t stat_rows() const { return stat_rows_; }
  void set_stat_rows(int64_t n) { stat_rows_ = n; }
  // Sync batch norm: the ranks whose rows every batch norm in training mode takes its
  // statistics over (Network::set_stat_sync); null: this process's rows alone.
  Communicator* stat_sync() const { return stat_sync_; }
  void set_stat_sync(Communicator* sync) { stat_sync_ = sync; }
  size_t bytes(Phase phase) const { return arena_[static_cast<int>(phase)].bytes(); }

  // Buffer k of `layer` viewed for a batch of n rows (n ≤ its phase's rows).
  Tensor& buffer(int layer, int k, int64_t n);
  // The tensor `layer` keeps from its forward for its backward (a handle, not a copy).
  Tensor& kept(int layer);

 private:
  struct Buffer {
    Phase phase = Phase::Forward;
    Shape shape;  // one row's, for a buffer of rows
    DType dtype = DType::F32;
    bool per_row = false;
    bool declared = false;
    size_t offset = 0;  // into its phase's arena, as laid out now
    Tensor view;        // the last view handed out
  };
  const void* network_ = nullptr;
  std::vector<std::vector<Buffer>> buffers_;  // by layer, then k
  std::vector<Tensor> kept_;                  // by layer
  int64_t rows_[2] = {0, 0};
  int64_t last_rows_ = 0;
  int64_t stat_rows_ = 0;
  Communicator* stat_sync_ = nullptr;
  Tensor arena_[2];
};

}  // namespace activeip
