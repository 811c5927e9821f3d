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
  const int top = spec.top(fp.corner), left = spec.left(fp.corner);
  for (int i = 0; i < size; ++i)
    std::memcpy(image + ((static_cast<size_t>(top) + i) * spec.W + left) * C,
                px.data() + static_cast<size_t>(i) * size * C, static_cast<size_t>(size) * C);
}

}  // namespace activeip
