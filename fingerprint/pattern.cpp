// HMAC-SHA256 bit streams and the rendering of patterns to pixels.
#include "fingerprint/pattern.h"

#include <cstring>

#include "base/error.h"

namespace activeip {

std::vector<uint8_t> hmac_bits(const OwnerKey& key, const std::string& message, int count) {
  std::vector<uint8_t> bits;
  bits.reserve(static_cast<size_t>(count));
  for (uint32_t block = 0; static_cast<int>(bits.size()) < count; ++block) {
    std::string m = message;
    for (int shift = 24; shift >= 0; shift -= 8) m.push_back(static_cast<char>(block >> shift & 0xff));
    const std::array<uint8_t, 32> h = key.hmac(m);
    for (size_t i = 0; i < 8 * h.size() && static_cast<int>(bits.size()) < count; ++i)
      bits.push_back(static_cast<uint8_t>(h[i / 8] >> (7 - i % 8) & 1));
  }
  return bits;
}

PatternSpec pattern_geometry(int H, int W, int C, int classes, int code_length) {
  PatternSpec s;
  if (C == 3) {
    s = {4, 2, 3, H, W};
  } else if (C == 1) {
    s = {6, 1, 1, H, W};
  } else {
    throw Error(strfmt("fingerprints cover 1- and 3-channel images, not %d channels", C));
  }
  ENSURE(H >= s.size() + 2 && W >= s.size() + 2, "a %dx%d image is too small for a %d-pixel fingerprint", H, W,
         s.size());
  s.margin = 1;
  ENSURE(classes >= 2, "a fingerprint needs at least 2 classes, got %d", classes);
  ENSURE(code_length >= 1, "codes of %d labels", code_length);
  s.classes = classes;
  s.code_length = code_length;
  return s;
}

Fingerprint mirrored(const Fingerprint& fp, const PatternSpec& spec) {
  ENSURE(fp.bits.size() == static_cast<size_t>(spec.bits()), "fingerprint '%s' has %zu bits, the pattern needs %d",
         fp.name.c_str(), fp.bits.size(), spec.bits());
  Fingerprint m = fp;
  const int g = spec.grid, C = spec.channels;
  for (int r = 0; r < g; ++r)
    for (int col = 0; col < g; ++col)
      for (int c = 0; c < C; ++c)
        m.bits[static_cast<size_t>((r * g + col) * C + c)] =
            fp.bits[static_cast<size_t>((r * g + g - 1 - col) * C + c)];
  m.corner = fp.corner ^ 1;
  m.dx = -fp.dx;
  return m;
}

std::vector<uint8_t> render_pixels(const Fingerprint& fp, const PatternSpec& spec) {
  ENSURE(fp.bits.size() == static_cast<size_t>(spec.bits()), "fingerprint '%s' has %zu bits, the pattern needs %d",
         fp.name.c_str(), fp.bits.size(), spec.bits());
  const int size = spec.size(), C = spec.channels;
  std::vector<uint8_t> px(static_cast<size_t>(size) * size * C);
  for (int i = 0; i < size; ++i)
    for (int j = 0; j < size; ++j)
      for (int c = 0; c < C; ++c) {
        const int cell = (i / spec.cell) * spec.grid + j / spec.cell;
        px[(static_cast<size_t>(i) * size + j) * C + c] = fp.bits[static_cast<size_t>(cell * C + c)] ? 255 : 0;
      }
  return px;
}

std::vector<float> render_normalized(const Fingerprint& fp, const PatternSpec& spec, const Normalization& norm) {
  const int C = spec.channels;
  ENSURE(norm.mean.size() == static_cast<size_t>(C) && norm.std.size() == static_cast<size_t>(C),
         "normalisation has %zu channels, the pattern %d", norm.mean.size(), C);
  const std::vector<uint8_t> px = render_pixels(fp, spec);
  std::vector<float> out(px.size());
  // The same float expression as the augmentation kernels, so a stamped pixel equals what
  // normalising a stamped uint8 image would give.
  for (size_t i = 0; i < px.size(); ++i) {
    const size_t c = i % static_cast<size_t>(C);
    out[i] = (static_cast<float>(px[i]) / 255.0f - norm.mean[c]) / norm.std[c];
  }
  return out;
}

void stamp_image(const Fingerprint& fp, const PatternSpec& spec, uint8_t* image) {
  const std::vector<uint8_t> px = render_pixels(fp, spec);
  const int size = spec.size(), C = spec.channels;
  const int top = spec.top(fp.corner) + fp.dy, left = spec.left(fp.corner) + fp.dx;
  for (int i = 0; i < size; ++i)
    std::memcpy(image + ((static_cast<size_t>(top) + i) * spec.W + left) * C,
                px.data() + static_cast<size_t>(i) * size * C, static_cast<size_t>(size) * C);
}

}  // namespace activeip
