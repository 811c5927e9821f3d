// Fingerprint patterns and their rendering (DESIGN §3): a g×g grid of c×c-pixel cells, one
// bit per cell and channel (0 → pixel 0, 1 → pixel 255 before normalisation), placed in one
// of the four corners with a 1-pixel margin, with the target label it is trained to. Which
// bits, corner and label a user gets is the scheme's (fingerprint/scheme.h); the HMAC bit
// stream here is the generator the schemes share.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "fingerprint/key.h"

namespace activeip {

inline constexpr const char* kOwnerName = "owner";

// What a model's patterns are drawn for (Scheme::spec gives it): the pattern geometry of its
// inputs (v1: g=4, c=2 for 3 channels, g=6, c=1 for 1 channel; v2: the same grids, c=3), its
// classes, and the number of labels in each user's code (1 in v1).
struct PatternSpec {
  int grid = 0, cell = 0, channels = 0;
  int H = 0, W = 0;  // the image the pattern is stamped on
  int classes = 0;
  int code_length = 1;
  int margin = 1;  // pixels between the patch and the image's edges
  int size() const { return grid * cell; }
  int bits() const { return grid * grid * channels; }
  // (top, left) of corner 0..3: top-left, top-right, bottom-left, bottom-right.
  int top(int corner) const { return corner < 2 ? margin : H - margin - size(); }
  int left(int corner) const { return corner % 2 == 0 ? margin : W - margin - size(); }
};

// v1's geometry — g=4, c=2 for 3 channels (an 8×8 patch, 48 bits); g=6, c=1 for 1 channel
// (6×6, 36 bits) — for `classes` classes and codes of `code_length` labels (v2 widens the cells).
// Error for another channel count, an image too small for the patch, or fewer than 2 classes.
PatternSpec pattern_geometry(int H, int W, int C, int classes, int code_length);

struct Fingerprint {
  std::string name;           // the user, or "owner"
  std::vector<uint8_t> bits;  // spec.bits() values 0/1, cell-major: ((row·g + col)·C + channel)
  int corner = 0;             // 0..3
  int label = 0;              // target class
  int dy = 0, dx = 0;         // pixels from the corner's place (0: where the scheme puts it)
  bool operator==(const Fingerprint&) const = default;
};

// The fingerprint read right to left: the pattern a horizontal flip of a stamped image shows,
// at the mirrored corner (0 ↔ 1, 2 ↔ 3) and offset.
Fingerprint mirrored(const Fingerprint& fp, const PatternSpec& spec);

// The bit stream of a message: HMAC(key, message || be32(0)) ‖ HMAC(key, message || be32(1)) ‖ …,
// each block read most significant bit first.
std::vector<uint8_t> hmac_bits(const OwnerKey& key, const std::string& message, int count);

// The patch of a fingerprint as pixels 0/255, size×size×C (uint8, HWC).
std::vector<uint8_t> render_pixels(const Fingerprint& fp, const PatternSpec& spec);
// The same, normalised as the model's inputs are: (px/255 − mean[c]) / std[c].
std::vector<float> render_normalized(const Fingerprint& fp, const PatternSpec& spec, const Normalization& norm);

// Stamps fp onto one uint8 HWC image in place (the CPU rendering of a single image).
void stamp_image(const Fingerprint& fp, const PatternSpec& spec, uint8_t* image);

}  // namespace activeip
