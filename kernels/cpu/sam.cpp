// SAM's ascent on the CPU (contract in kernels/sam.h): one segment per parameter tensor, its
// two sums of squares in double in element order — the order the host computed them in before
// the ascent became an op, so a CPU run's moved weights are unchanged — then e per element.
#include "kernels/sam.h"

#include <algorithm>
#include <cmath>

namespace activeip {

namespace {

// The multiplier of segment l's gradient: rho·‖w_l‖/‖g_l‖, or 0 when either norm is 0.
double segment_scale(double rho, double ww, double gg) {
  return ww == 0 || gg == 0 ? 0.0 : rho * std::sqrt(ww / gg);
}

}  // namespace

void sam_ascent_cpu(const SamShape& s, double rho, const SamArgs& a) {
  std::fill(a.e, a.e + s.n, 0.0f);
#pragma omp parallel for schedule(dynamic)
  for (int l = 0; l < s.segments; ++l) {
    const int64_t begin = a.segments[2 * l], end = a.segments[2 * l + 1];
    double ww = 0, gg = 0;
    for (int64_t i = begin; i < end; ++i) {
      ww += static_cast<double>(a.w[i]) * a.w[i];
      gg += static_cast<double>(a.g[i]) * a.g[i];
    }
    a.norms[2 * l] = ww;
    a.norms[2 * l + 1] = gg;
    const double k = segment_scale(rho, ww, gg);
    if (k == 0) continue;
    for (int64_t i = begin; i < end; ++i) {
      float v = static_cast<float>(k * a.g[i]);
      if (a.mask) v *= a.mask[i];
      a.e[i] = v;
    }
  }
}

void sam_ascent_ref(const SamShape& s, double rho, const double* w, const double* g, const int32_t* segments,
                    const double* mask, double* norms, double* e) {
  std::fill(e, e + s.n, 0.0);
  for (int l = 0; l < s.segments; ++l) {
    const int64_t begin = segments[2 * l], end = segments[2 * l + 1];
    double ww = 0, gg = 0;
    for (int64_t i = begin; i < end; ++i) ww += w[i] * w[i], gg += g[i] * g[i];
    norms[2 * l] = ww;
    norms[2 * l + 1] = gg;
    const double k = segment_scale(rho, ww, gg);
    for (int64_t i = begin; i < end; ++i) e[i] = k * g[i] * (mask ? mask[i] : 1.0);
  }
}

}  // namespace activeip
