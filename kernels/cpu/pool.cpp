// Max-pool and global average pool on the CPU, NHWC activations. Max-pool forward writes
// the output and the flat h·W + w index of each window's winner in one pass; backward
// scatters dy through those indices (overlapping windows add). Images run in parallel,
// each written by one thread, so sums of overlapping windows have a fixed order.
// The *_ref functions are the plain double-precision specification.
#include "kernels/pool.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace activeip {

namespace {

// The winner of window (p, q) of channel c in one H×W×C image, the definition both paths
// follow: padding cells are skipped (they never win); a strictly greater value replaces
// the current one, so the first maximum in window (r, s) order wins ties; a NaN wins and
// is kept, so NaNs propagate as in PyTorch.
template <class T>
bool replaces(T v, T best, bool have) {
  return !have || v > best || (std::isnan(v) && !std::isnan(best));
}

int32_t window_argmax_ref(const Pool2dShape& s, const double* img, int p, int q, int c) {
  int32_t best_i = -1;
  double best = 0;
  for (int r = 0; r < s.R; ++r) {
    const int h = p * s.stride - s.pad + r;
    if (h < 0 || h >= s.H) continue;
    for (int t = 0; t < s.S; ++t) {
      const int w = q * s.stride - s.pad + t;
      if (w < 0 || w >= s.W) continue;
      const double v = img[(static_cast<size_t>(h) * s.W + w) * s.C + c];
      if (replaces(v, best, best_i >= 0)) {
        best = v;
        best_i = h * s.W + w;
      }
    }
  }
  return best_i;
}

}  // namespace

// Channels are the inner loop: each window cell contributes a contiguous row of C values,
// compared against the running maxima held in y and argmax themselves. The window is
// clipped to the image first, so its first cell seeds the maxima and no padding cell is
// ever visited; the compare-and-select form lets the channel loop vectorise.
void maxpool2d_fwd_cpu(const Pool2dShape& s, const float* x, float* y, int32_t* argmax) {
  const int P = s.P(), Q = s.Q(), C = s.C;
  const size_t in_img = static_cast<size_t>(s.H) * s.W * C, out_img = static_cast<size_t>(P) * Q * C;
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < s.N; ++n)
    for (int p = 0; p < P; ++p) {
      const float* img = x + n * in_img;
      const int h0 = std::max(0, p * s.stride - s.pad), h1 = std::min(s.H, p * s.stride - s.pad + s.R);
      for (int q = 0; q < Q; ++q) {
        const int w0 = std::max(0, q * s.stride - s.pad), w1 = std::min(s.W, q * s.stride - s.pad + s.S);
        float* best = y + n * out_img + (static_cast<size_t>(p) * Q + q) * C;
        int32_t* best_i = argmax + (best - y);
        const int32_t first = h0 * s.W + w0;
        std::copy(img + static_cast<size_t>(first) * C, img + static_cast<size_t>(first + 1) * C, best);
        std::fill(best_i, best_i + C, first);
        for (int h = h0; h < h1; ++h)
          for (int w = (h == h0 ? w0 + 1 : w0); w < w1; ++w) {
            const int32_t i = h * s.W + w;
            const float* row = img + static_cast<size_t>(i) * C;
            for (int c = 0; c < C; ++c) {
              const bool take = replaces(row[c], best[c], true);
              best[c] = take ? row[c] : best[c];
              best_i[c] = take ? i : best_i[c];
            }
          }
      }
    }
}

void maxpool2d_bwd_cpu(const Pool2dShape& s, const float* dy, const int32_t* argmax, float* dx) {
  const size_t in_img = static_cast<size_t>(s.H) * s.W * s.C, out_img = static_cast<size_t>(s.P()) * s.Q() * s.C;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < s.N; ++n) {
    float* d = dx + n * in_img;
    std::fill(d, d + in_img, 0.0f);
    for (size_t o = 0; o < out_img; o += s.C)
      for (int c = 0; c < s.C; ++c)
        d[static_cast<size_t>(argmax[n * out_img + o + c]) * s.C + c] += dy[n * out_img + o + c];
  }
}

void global_avgpool_fwd_cpu(const GlobalPoolShape& s, const float* x, float* y) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < s.N; ++n) {
    const float* img = x + static_cast<size_t>(n) * s.HW * s.C;
    // Accumulate in double over the H·W rows, a block of channels at a time (channels
    // inner, so the rows are read contiguously; the block keeps the sums in registers/L1).
    constexpr int kBlock = 64;
    double acc[kBlock];
    for (int c0 = 0; c0 < s.C; c0 += kBlock) {
      const int cn = std::min(kBlock, s.C - c0);
      std::fill(acc, acc + cn, 0.0);
      for (int i = 0; i < s.HW; ++i)
        for (int c = 0; c < cn; ++c) acc[c] += img[static_cast<size_t>(i) * s.C + c0 + c];
      for (int c = 0; c < cn; ++c) y[static_cast<size_t>(n) * s.C + c0 + c] = static_cast<float>(acc[c] / s.HW);
    }
  }
}

void global_avgpool_bwd_cpu(const GlobalPoolShape& s, const float* dy, float* dx) {
  const float inv = 1.0f / static_cast<float>(s.HW);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < s.N; ++n)
    for (int i = 0; i < s.HW; ++i)
      for (int c = 0; c < s.C; ++c)
        dx[(static_cast<size_t>(n) * s.HW + i) * s.C + c] = dy[static_cast<size_t>(n) * s.C + c] * inv;
}

void maxpool2d_fwd_ref(const Pool2dShape& s, const double* x, double* y) {
  const int P = s.P(), Q = s.Q();
  for (int n = 0; n < s.N; ++n) {
    const double* img = x + static_cast<size_t>(n) * s.H * s.W * s.C;
    for (int p = 0; p < P; ++p)
      for (int q = 0; q < Q; ++q)
        for (int c = 0; c < s.C; ++c) {
          const int32_t i = window_argmax_ref(s, img, p, q, c);
          y[((static_cast<size_t>(n) * P + p) * Q + q) * s.C + c] = img[static_cast<size_t>(i) * s.C + c];
        }
  }
}

void maxpool2d_bwd_ref(const Pool2dShape& s, const double* x, const double* dy, double* dx) {
  const int P = s.P(), Q = s.Q();
  const size_t in_img = static_cast<size_t>(s.H) * s.W * s.C;
  std::fill(dx, dx + s.N * in_img, 0.0);
  for (int n = 0; n < s.N; ++n)
    for (int p = 0; p < P; ++p)
      for (int q = 0; q < Q; ++q)
        for (int c = 0; c < s.C; ++c) {
          const int32_t i = window_argmax_ref(s, x + n * in_img, p, q, c);
          dx[n * in_img + static_cast<size_t>(i) * s.C + c] += dy[((static_cast<size_t>(n) * P + p) * Q + q) * s.C + c];
        }
}

void global_avgpool_fwd_ref(const GlobalPoolShape& s, const double* x, double* y) {
  for (int n = 0; n < s.N; ++n)
    for (int c = 0; c < s.C; ++c) {
      double sum = 0;
      for (int i = 0; i < s.HW; ++i) sum += x[(static_cast<size_t>(n) * s.HW + i) * s.C + c];
      y[static_cast<size_t>(n) * s.C + c] = sum / s.HW;
    }
}

void global_avgpool_bwd_ref(const GlobalPoolShape& s, const double* dy, double* dx) {
  for (int n = 0; n < s.N; ++n)
    for (int i = 0; i < s.HW; ++i)
      for (int c = 0; c < s.C; ++c)
        dx[(static_cast<size_t>(n) * s.HW + i) * s.C + c] = dy[static_cast<size_t>(n) * s.C + c] / s.HW;
}

}  // namespace activeip
