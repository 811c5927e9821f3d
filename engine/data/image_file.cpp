#include "engine/data/image_file.h"

#include <png.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "engine/core/file_io.h"

namespace activeip {

namespace {

constexpr int64_t kMaxPixels = int64_t{1} << 26;

void check_size(const std::string& path, const char* format, int64_t w, int64_t h) {
  ENSURE(w >= 1 && h >= 1, "%s: damaged or truncated %s (no image size in it)", path.c_str(), format);
  ENSURE(w * h <= kMaxPixels, "%s: a %lldx%lld image is over the %lld pixels this reads", path.c_str(),
         static_cast<long long>(w), static_cast<long long>(h), static_cast<long long>(kMaxPixels));
}

Image decode_png(const std::string& path, const std::vector<uint8_t>& bytes) {
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  struct Free {
    png_image* p;
    ~Free() { png_image_free(p); }
  } free_png{&png};
  ENSURE(png_image_begin_read_from_memory(&png, bytes.data(), bytes.size()), "%s: damaged or truncated PNG (%s)",
         path.c_str(), png.message);
  ENSURE(!(png.format & PNG_FORMAT_FLAG_ALPHA),
         "%s: the image has an alpha channel (transparency); the networks take grey or RGB images: flatten it first",
         path.c_str());
  check_size(path, "PNG", png.width, png.height);
  Image im{static_cast<int>(png.height), static_cast<int>(png.width), (png.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1, {}};
  png.format = im.C == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  im.pixels.resize(PNG_IMAGE_SIZE(png));
  ENSURE(png_image_finish_read(&png, nullptr, im.pixels.data(), 0, nullptr), "%s: damaged or truncated PNG (%s)",
         path.c_str(), png.message);
  return im;
}

Image decode_jpeg(const std::string& path, const std::vector<uint8_t>& bytes) {
  tjhandle tj = tjInitDecompress();
  ENSURE(tj != nullptr, "TurboJPEG: cannot create a decoder: %s", tjGetErrorStr2(nullptr));
  struct Free {
    tjhandle h;
    ~Free() { tjDestroy(h); }
  } free_tj{tj};
  int w = 0, h = 0, subsamp = 0, colorspace = 0;
  ENSURE(tjDecompressHeader3(tj, bytes.data(), bytes.size(), &w, &h, &subsamp, &colorspace) == 0,
         "%s: damaged or truncated JPEG (%s)", path.c_str(), tjGetErrorStr2(tj));
  ENSURE(colorspace != TJCS_CMYK && colorspace != TJCS_YCCK,
         "%s: a CMYK JPEG; the networks take grey or RGB images: convert it first", path.c_str());
  check_size(path, "JPEG", w, h);
  Image im{h, w, colorspace == TJCS_GRAY ? 1 : 3, {}};
  im.pixels.resize(static_cast<size_t>(h) * w * im.C);
  // A warning (e.g. "premature end of JPEG file") fails too: a truncated file decodes to grey.
  ENSURE(tjDecompress2(tj, bytes.data(), bytes.size(), im.pixels.data(), w, 0, h, im.C == 1 ? TJPF_GRAY : TJPF_RGB,
                       0) == 0,
         "%s: damaged or truncated JPEG (%s)", path.c_str(), tjGetErrorStr2(tj));
  return im;
}

// PIL's precompute_coeffs for the bilinear (triangle) filter: for each output position, the
// first input index and the normalised weights over the footprint, widened by the scale when
// shrinking.
struct Taps {
  std::vector<int> first, count;
  std::vector<double> weights;  // count[i] of them per output i, from offset i·stride
  int stride = 0;
};

Taps taps(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size, filterscale = std::max(scale, 1.0);
  const double support = filterscale;  // the triangle's support is 1
  Taps t;
  t.stride = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.weights.assign(static_cast<size_t>(out_size) * t.stride, 0.0);
  for (int o = 0; o < out_size; ++o) {
    const double center = (o + 0.5) * scale;
    const int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    const int hi = std::min(static_cast<int>(center + support + 0.5), in_size);
    double* w = t.weights.data() + static_cast<size_t>(o) * t.stride;
    double total = 0;
    const int n = std::min(hi - lo, t.stride);
    for (int k = 0; k < n; ++k) {
      const double x = std::fabs((k + lo - center + 0.5) / filterscale);
      w[k] = x < 1.0 ? 1.0 - x : 0.0;
      total += w[k];
    }
    for (int k = 0; k < n; ++k) w[k] = total > 0 ? w[k] / total : 0;
    t.first[o] = lo;
    t.count[o] = n;
  }
  return t;
}

uint8_t to_u8(double v) {
  return static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
}

}  // namespace

Image read_image(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  static const uint8_t kPng[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  static const uint8_t kJpeg[] = {0xff, 0xd8, 0xff};
  if (bytes.size() >= sizeof kPng && std::memcmp(bytes.data(), kPng, sizeof kPng) == 0) return decode_png(path, bytes);
  if (bytes.size() >= sizeof kJpeg && std::memcmp(bytes.data(), kJpeg, sizeof kJpeg) == 0)
    return decode_jpeg(path, bytes);
  throw Error(strfmt("%s: not a PNG or JPEG image", path.c_str()));
}

Image resize_image(const Image& in, int h, int w) {
  ENSURE(h >= 1 && w >= 1, "cannot resize an image to %dx%d", h, w);
  if (in.H == h && in.W == w) return in;
  const int C = in.C;
  // Rows first (in.H × w), then columns (h × w), as PIL does, each pass rounded to uint8.
  const Taps tx = taps(in.W, w), ty = taps(in.H, h);
  Image mid{in.H, w, C, std::vector<uint8_t>(static_cast<size_t>(in.H) * w * C)};
  for (int y = 0; y < in.H; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < C; ++c) {
        double v = 0;
        for (int k = 0; k < tx.count[x]; ++k)
          v += tx.weights[static_cast<size_t>(x) * tx.stride + k] *
               in.pixels[(static_cast<size_t>(y) * in.W + tx.first[x] + k) * C + c];
        mid.pixels[(static_cast<size_t>(y) * w + x) * C + c] = to_u8(v);
      }
  Image out{h, w, C, std::vector<uint8_t>(static_cast<size_t>(h) * w * C)};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < C; ++c) {
        double v = 0;
        for (int k = 0; k < ty.count[y]; ++k)
          v += ty.weights[static_cast<size_t>(y) * ty.stride + k] *
               mid.pixels[(static_cast<size_t>(ty.first[y] + k) * w + x) * C + c];
        out.pixels[(static_cast<size_t>(y) * w + x) * C + c] = to_u8(v);
      }
  return out;
}

}  // namespace activeip
