// Image files as a user hands them to `predict`: PNG (libpng) and JPEG (libjpeg-turbo's
// TurboJPEG), decoded to 8-bit grey or RGB pixels, and resized to a network's input as
// torchvision's Resize does on a PIL image.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace activeip {

// H×W×C uint8 pixels, channels innermost; C = 1 (grey) or 3 (RGB).
struct Image {
  int H = 0, W = 0, C = 0;
  std::vector<uint8_t> pixels;
};

// Decodes a PNG or JPEG file (told apart by their signatures, whatever the file's name):
// grey stays grey, colour (a PNG palette included) becomes RGB, 16-bit PNG samples become 8-bit.
// Error naming the file and what is wrong: not a PNG or JPEG image, damaged or truncated, an
// alpha channel (the networks take grey or RGB; flatten the image first), CMYK, or over
// 2^26 pixels.
Image read_image(const std::string& path);

// Resizes to h×w with PIL's bilinear filter (Image.resize(BILINEAR), which torchvision's
// Resize applies to PIL images): a triangle filter over each output pixel's footprint, widened
// by the scale when shrinking (antialiasing), rows then columns, rounded once per pass.
Image resize_image(const Image& in, int h, int w);

}  // namespace activeip
