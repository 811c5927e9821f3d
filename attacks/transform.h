// The attacker's input preprocessing (`activeip transform`): what the holder of a stolen model
// may put in front of it without touching a weight — a chain of the image transforms of
// engine/data/image_transform.h, applied in order. Random transforms draw from a stream of
// their own per image, seeded, so a run is a pure function of the seed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/context.h"
#include "engine/core/tensor.h"
#include "engine/data/dataset.h"
#include "engine/data/image_transform.h"
#include "engine/train/trainer.h"

namespace activeip {

// The chain of transforms in front of a model. It takes normalised batches (as the evaluation
// path loads them: (px/255 − mean)/std per channel), undoes the normalisation, rounds to uint8
// (exact for what the loader and the stamp produce: both are uint8 images), applies the chain
// and normalises again exactly as the loader does. Image i of the run (counted over every batch
// it has seen) draws transform k's randomness from Rng(mix_seed(seed, i, k)), so the result
// does not depend on how the images are batched.
// A batch on a CUDA device is copied to the host and back: the attack only evaluates, and
// host transforms are the reference an attacker's own pipeline would match.
class InputPipeline {
 public:
  // Error when a transform cannot act on H×W×C images or the chain is empty.
  InputPipeline(std::vector<Transform> transforms, Normalization norm, uint64_t seed, int H, int W, int C);

  const std::vector<Transform>& transforms() const { return transforms_; }
  std::vector<std::string> specs() const;

  // x: rows×H×W×C f32, normalised, on ctx's device; transformed in place.
  void apply(Context& ctx, Tensor& x);
  // The pipeline as the evaluation path's hook (engine/train/trainer.h); it must outlive it.
  BatchAlter alter();

  // The uint8 chain alone on images (count×H×W×C, host), image i drawing as image first + i.
  void apply_u8(uint8_t* images, int64_t count, int64_t first) const;

 private:
  std::vector<Transform> transforms_;
  Normalization norm_;
  uint64_t seed_;
  int H_, W_, C_;
  int64_t seen_ = 0;  // images transformed so far: the next is image seen_ of the run
  std::vector<uint8_t> pixels_;
};

}  // namespace activeip
