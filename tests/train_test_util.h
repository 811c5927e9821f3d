// Helpers for the tests that train networks: a host copy of a tensor's floats, and the small
// training configuration those tests share.
#pragma once

#include <vector>

#include "engine/core/context.h"
#include "engine/core/tensor.h"
#include "engine/train/trainer.h"

namespace activeip::test {

inline std::vector<float> host_floats(const Tensor& t, Context& ctx) {
  const Tensor h = t.to(Device::cpu(), ctx);
  return {h.data<float>(), h.data<float>() + h.numel()};
}

// Batch 32, lr 0.05, seed 4: a few seconds per epoch of `synthetic` on the CPU.
inline TrainConfig small_config(int epochs) {
  TrainConfig c;
  c.epochs = epochs;
  c.batch = 32;
  c.lr = 0.05;
  c.seed = 4;
  c.eval_batch = 64;
  return c;
}

}  // namespace activeip::test
