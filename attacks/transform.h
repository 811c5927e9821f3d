// The attacker's input preprocessing (`activeip transform`): what the holder of a stolen model
// may put in front of it without touching a weight — a flip, a random shift, a median filter,
// JPEG, noise, fewer colour bits, a blur, a shrink-and-pad. Every transform maps a uint8 image
// H×W×C (HWC, channels innermost) to a uint8 image of the same size, as an image pipeline
// (PIL, OpenCV) does; a chain of them is applied in order. Random transforms draw from a
// stream of their own per image, seeded, so a run is a pure function of the seed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/context.h"
#include "engine/core/random.h"
#include "engine/core/tensor.h"
#include "engine/data/dataset.h"
#include "engine/train/trainer.h"

namespace activeip {

enum class TransformKind { Flip, Shift, Median, Jpeg, Noise, Bits, Blur, ShrinkPad };

struct Transform {
  TransformKind kind = TransformKind::Flip;
  double value = 0;  // shift N, median K, jpeg Q, noise S, bits B, blur σ, shrinkpad S; flip none
  std::string spec;  // as written: "shift:2"

  int n() const { return static_cast<int>(value); }  // the integer parameters
};

// The specs and their ranges, for --help and the parser's errors.
const char* transform_specs();

// "flip", "shift:N" (N integer ≥ 1: a random offset in [−N, N] per axis, zero fill), "median:K"
// (K odd ≥ 3), "jpeg:Q" (1 ≤ Q ≤ 100), "noise:S" (Gaussian σ = S/255 of the range,
// 0 < S ≤ 255), "bits:B" (1 ≤ B ≤ 8), "blur:SIGMA" (0 < σ ≤ 20), "shrinkpad:S" (S integer
// ≥ 1). Error naming the spec and what is allowed.
Transform parse_transform(const std::string& spec);

// Error (naming the spec) when `t` cannot act on H×W×C images: shrinkpad needs S < H and
// S < W, jpeg 1 or 3 channels.
void check_transform_fits(const Transform& t, int H, int W, int C);

// Transforms one image in place (see check_transform_fits), drawing what is random from rng:
//   flip       out(y, x) = in(y, W−1−x)
//   shift:N    dy, dx uniform in [−N, N] (dy drawn first); out(y, x) = in(y−dy, x−dx), 0 outside
//   median:K   per channel, the median of the K×K window, edges replicated
//   jpeg:Q     TurboJPEG encode at quality Q (4:2:0 chroma subsampling for 3 channels, grey
//              for 1, the library's default DCT) and decode
//   noise:S    clamp(round(in + S·z)), z ~ N(0, 1) per value
//   bits:B     the nearest of the 2^B levels round(k·255/(2^B−1)) (bit-depth reduction as
//              feature squeezing does it: black stays 0, white 255)
//   blur:σ     Gaussian weights exp(−d²/2σ²) for |d| ≤ ceil(3σ), normalised, separable (rows
//              then columns, in double), edges replicated, rounded once at the end
//   shrinkpad:S bilinear resize (half-pixel centres, as torch's interpolate with
//              align_corners=False) to (H−S)×(W−S), rounded, placed at a top-left offset
//              (top, left) uniform in [0, S]² (top drawn first) on black
void apply_transform(const Transform& t, uint8_t* image, int H, int W, int C, Rng& rng);

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
