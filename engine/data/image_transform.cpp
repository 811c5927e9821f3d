// Image transforms on uint8 HWC images (see engine/data/image_transform.h): the spec parser
// and each transform.
#include "engine/data/image_transform.h"

#include <turbojpeg.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "base/error.h"

namespace activeip {

namespace {

const char* kSpecs =
    "flip, shift:N (integer N >= 1), median:K (odd K >= 3), jpeg:Q (integer 1..100), noise:S (sigma S/255, "
    "0 < S <= 255), bits:B (integer 1..8), blur:SIGMA (0 < SIGMA <= 20), shrinkpad:S (integer S >= 1)";

[[noreturn]] void bad_spec(const std::string& spec, const std::string& why) {
  throw Error(strfmt("transform '%s': %s; the transforms are %s", spec.c_str(), why.c_str(), kSpecs));
}

bool parse_int(const std::string& s, int& out) {
  const char* end = s.data() + s.size();
  const auto [p, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && p == end && !s.empty();
}

bool parse_real(const std::string& s, double& out) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && std::isfinite(out);
}

uint8_t to_u8(double v) {
  return static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
}

int clampi(int v, int lo, int hi) {
  return std::min(std::max(v, lo), hi);
}

// A uniform integer in [lo, hi].
int uniform_int(Rng& rng, int lo, int hi) {
  return lo + static_cast<int>(rng.below(static_cast<uint64_t>(hi - lo + 1)));
}

void flip(uint8_t* im, int H, int W, int C) {
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W / 2; ++x)
      for (int c = 0; c < C; ++c) std::swap(im[(y * W + x) * C + c], im[(y * W + (W - 1 - x)) * C + c]);
}

void shift(uint8_t* im, int H, int W, int C, int N, Rng& rng) {
  const int dy = uniform_int(rng, -N, N);
  const int dx = uniform_int(rng, -N, N);
  std::vector<uint8_t> in(im, im + static_cast<size_t>(H) * W * C);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const int sy = y - dy, sx = x - dx;
      const bool inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
      for (int c = 0; c < C; ++c) im[(y * W + x) * C + c] = inside ? in[(sy * W + sx) * C + c] : 0;
    }
}

void median(uint8_t* im, int H, int W, int C, int K) {
  const int r = K / 2;
  std::vector<uint8_t> in(im, im + static_cast<size_t>(H) * W * C), window(static_cast<size_t>(K) * K);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x)
      for (int c = 0; c < C; ++c) {
        size_t n = 0;
        for (int u = -r; u <= r; ++u)
          for (int v = -r; v <= r; ++v)
            window[n++] = in[(clampi(y + u, 0, H - 1) * W + clampi(x + v, 0, W - 1)) * C + c];
        std::nth_element(window.begin(), window.begin() + n / 2, window.end());
        im[(y * W + x) * C + c] = window[n / 2];
      }
}

// TurboJPEG handles, one pair per thread, freed with it.
struct JpegHandles {
  tjhandle enc = nullptr, dec = nullptr;
  JpegHandles() : enc(tjInitCompress()), dec(tjInitDecompress()) {
    ENSURE(enc && dec, "TurboJPEG: cannot create a codec: %s", tjGetErrorStr2(nullptr));
  }
  ~JpegHandles() {
    tjDestroy(enc);
    tjDestroy(dec);
  }
};

void jpeg(uint8_t* im, int H, int W, int C, int Q) {
  thread_local JpegHandles h;
  const int format = C == 3 ? TJPF_RGB : TJPF_GRAY;
  const int subsamp = C == 3 ? TJSAMP_420 : TJSAMP_GRAY;
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  if (tjCompress2(h.enc, im, W, 0, H, format, &buf, &size, subsamp, Q, 0) != 0) {
    const std::string why = tjGetErrorStr2(h.enc);
    tjFree(buf);
    throw Error(strfmt("jpeg:%d: TurboJPEG cannot encode a %dx%dx%d image: %s", Q, H, W, C, why.c_str()));
  }
  const int rc = tjDecompress2(h.dec, buf, size, im, W, 0, H, format, 0);
  tjFree(buf);
  ENSURE(rc == 0, "jpeg:%d: TurboJPEG cannot decode what it encoded: %s", Q, tjGetErrorStr2(h.dec));
}

void noise(uint8_t* im, int H, int W, int C, double S, Rng& rng) {
  const size_t n = static_cast<size_t>(H) * W * C;
  for (size_t i = 0; i < n; ++i) im[i] = to_u8(im[i] + S * rng.normal());
}

void bits(uint8_t* im, int H, int W, int C, int B) {
  const double levels = std::ldexp(1.0, B) - 1;
  uint8_t table[256];
  for (int v = 0; v < 256; ++v) table[v] = to_u8(std::round(v * levels / 255.0) * 255.0 / levels);
  const size_t n = static_cast<size_t>(H) * W * C;
  for (size_t i = 0; i < n; ++i) im[i] = table[im[i]];
}

void blur(uint8_t* im, int H, int W, int C, double sigma) {
  const int r = static_cast<int>(std::ceil(3 * sigma));
  std::vector<double> w(static_cast<size_t>(2 * r + 1));
  double sum = 0;
  for (int d = -r; d <= r; ++d) sum += w[static_cast<size_t>(d + r)] = std::exp(-d * d / (2 * sigma * sigma));
  for (double& x : w) x /= sum;
  const size_t n = static_cast<size_t>(H) * W * C;
  std::vector<double> rows(n), cols(n);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x)
      for (int c = 0; c < C; ++c) {
        double a = 0;
        for (int d = -r; d <= r; ++d)
          a += w[static_cast<size_t>(d + r)] * im[(y * W + clampi(x + d, 0, W - 1)) * C + c];
        rows[static_cast<size_t>((y * W + x) * C + c)] = a;
      }
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x)
      for (int c = 0; c < C; ++c) {
        double a = 0;
        for (int d = -r; d <= r; ++d)
          a += w[static_cast<size_t>(d + r)] * rows[static_cast<size_t>((clampi(y + d, 0, H - 1) * W + x) * C + c)];
        im[(y * W + x) * C + c] = to_u8(a);
      }
}

void shrinkpad(uint8_t* im, int H, int W, int C, int S, Rng& rng) {
  const int h = H - S, w = W - S;
  const int top = uniform_int(rng, 0, S);
  const int left = uniform_int(rng, 0, S);
  std::vector<uint8_t> in(im, im + static_cast<size_t>(H) * W * C);
  std::fill(im, im + in.size(), uint8_t{0});
  // Source coordinate of output pixel i: (i + 0.5)·in/out − 0.5, clamped at 0 (torch's
  // area_pixel_compute_source_index for align_corners=False).
  const auto source = [](int i, int in_size, int out_size, int& i0, int& i1, double& f) {
    const double s = std::max(0.0, (i + 0.5) * in_size / out_size - 0.5);
    i0 = std::min(static_cast<int>(s), in_size - 1);
    i1 = std::min(i0 + 1, in_size - 1);
    f = s - i0;
  };
  for (int y = 0; y < h; ++y) {
    int y0, y1;
    double fy;
    source(y, H, h, y0, y1, fy);
    for (int x = 0; x < w; ++x) {
      int x0, x1;
      double fx;
      source(x, W, w, x0, x1, fx);
      for (int c = 0; c < C; ++c) {
        const auto at = [&](int yy, int xx) { return static_cast<double>(in[(yy * W + xx) * C + c]); };
        const double v =
            (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) + fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1));
        im[((y + top) * W + (x + left)) * C + c] = to_u8(v);
      }
    }
  }
}

}  // namespace

const char* transform_specs() {
  return kSpecs;
}

Transform parse_transform(const std::string& spec) {
  Transform t;
  t.spec = spec;
  const size_t colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  const bool has_arg = colon != std::string::npos;
  const std::string arg = has_arg ? spec.substr(colon + 1) : "";
  if (name == "flip") {
    if (has_arg) bad_spec(spec, "flip takes no parameter");
    t.kind = TransformKind::Flip;
    return t;
  }
  struct Kind {
    const char* name;
    TransformKind kind;
    bool integer;
    double lo, hi;  // integer: lo ≤ v ≤ hi; real: lo < v ≤ hi
    const char* what;
  };
  static const Kind kinds[] = {
      {"shift", TransformKind::Shift, true, 1, 1e6, "N must be an integer >= 1 (pixels)"},
      {"median", TransformKind::Median, true, 3, 1e6, "K must be an odd integer >= 3"},
      {"jpeg", TransformKind::Jpeg, true, 1, 100, "Q must be an integer from 1 to 100"},
      {"noise", TransformKind::Noise, false, 0, 255, "S must be a number with 0 < S <= 255"},
      {"bits", TransformKind::Bits, true, 1, 8, "B must be an integer from 1 to 8"},
      {"blur", TransformKind::Blur, false, 0, 20, "SIGMA must be a number with 0 < SIGMA <= 20"},
      {"shrinkpad", TransformKind::ShrinkPad, true, 1, 1e6, "S must be an integer >= 1 (pixels)"},
  };
  for (const Kind& k : kinds) {
    if (name != k.name) continue;
    if (!has_arg) bad_spec(spec, strfmt("%s needs a parameter (%s:…): %s", k.name, k.name, k.what));
    t.kind = k.kind;
    if (k.integer) {
      int v = 0;
      if (!parse_int(arg, v) || v < k.lo || v > k.hi || (k.kind == TransformKind::Median && v % 2 == 0))
        bad_spec(spec, k.what);
      t.value = v;
    } else {
      double v = 0;
      if (!parse_real(arg, v) || !(v > k.lo) || v > k.hi) bad_spec(spec, k.what);
      t.value = v;
    }
    return t;
  }
  bad_spec(spec, strfmt("no transform is called '%s'", name.c_str()));
}

void check_transform_fits(const Transform& t, int H, int W, int C) {
  ENSURE(H >= 1 && W >= 1 && C >= 1, "transform '%s': images of %dx%dx%d", t.spec.c_str(), H, W, C);
  if (t.kind == TransformKind::ShrinkPad && (t.n() >= H || t.n() >= W))
    throw Error(strfmt("transform '%s': shrinking a %dx%d image by %d pixels leaves nothing; S must be below %d",
                       t.spec.c_str(), H, W, t.n(), std::min(H, W)));
  if (t.kind == TransformKind::Jpeg && C != 1 && C != 3)
    throw Error(strfmt("transform '%s': JPEG takes 1 or 3 channels, these images have %d", t.spec.c_str(), C));
}

void apply_transform(const Transform& t, uint8_t* image, int H, int W, int C, Rng& rng) {
  switch (t.kind) {
    case TransformKind::Flip:
      return flip(image, H, W, C);
    case TransformKind::Shift:
      return shift(image, H, W, C, t.n(), rng);
    case TransformKind::Median:
      return median(image, H, W, C, t.n());
    case TransformKind::Jpeg:
      return jpeg(image, H, W, C, t.n());
    case TransformKind::Noise:
      return noise(image, H, W, C, t.value, rng);
    case TransformKind::Bits:
      return bits(image, H, W, C, t.n());
    case TransformKind::Blur:
      return blur(image, H, W, C, t.value);
    case TransformKind::ShrinkPad:
      return shrinkpad(image, H, W, C, t.n(), rng);
  }
}

}  // namespace activeip
