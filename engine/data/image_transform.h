// Image transforms as an image pipeline (PIL, OpenCV) applies them: a flip, a random shift, a
// median filter, JPEG, noise, fewer colour bits, a blur, a shrink-and-pad. Every transform maps
// a uint8 image H×W×C (HWC, channels innermost) to a uint8 image of the same size; what is
// random is drawn from the caller's stream. They are the attacker's preprocessing in front of
// a stolen model (attacks/transform.h) and the degradations that protected training shows its
// triggers under (fingerprint/protect.h).
#pragma once

#include <cstdint>
#include <string>

#include "engine/core/random.h"

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

}  // namespace activeip
