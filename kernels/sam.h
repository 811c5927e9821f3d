// Sharpness-aware minimisation's ascent (Foret et al. 2021) with the layer-wise relative bound
// of adversarial weight perturbation (Wu et al. 2020), over the flat parameter buffer: the
// buffer is cut into S segments, one per parameter tensor l, [begin_l, end_l) in increasing,
// non-overlapping order, and
//   ww_l = Σ_{i∈l} w_i²,  gg_l = Σ_{i∈l} g_i²          (double),
//   e_i  = rho·sqrt(ww_l/gg_l)·g_i · mask_i   for i in l  (0 when ww_l or gg_l is 0),
//   e_i  = 0                                  for i in no segment.
// The multiplier is rounded once, float(k·g_i), and the mask (1 keep / 0 pruned, may be null)
// applied in float after, so that pruned weights stay at zero at the moved point too.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda_stream.h"

namespace activeip {

struct SamShape {
  int64_t n = 0;     // floats in w, g, mask and e
  int segments = 0;  // S: parameter tensors
};

// The tensors of one ascent. segments: 2S int32 (begin, end) pairs; norms: 2S doubles,
// written (ww_l, gg_l); mask may be null.
struct SamArgs {
  const float* w;
  const float* g;
  const int32_t* segments;
  const float* mask;
  double* norms;
  float* e;
};

// CPU: each segment's sums in element order (segments in parallel), then e.
void sam_ascent_cpu(const SamShape& s, double rho, const SamArgs& a);

#ifdef ACTIVEIP_CUDA
// Floats of device scratch sam_ascent_cuda needs for S segments (the per-block partial sums).
size_t sam_ascent_workspace_floats(const SamShape& s);
// CUDA: each segment's sums over a fixed number of blocks, combined in a fixed order, so the
// result is the same on every run (not bit for bit the CPU's order).
void sam_ascent_cuda(const SamShape& s, double rho, const SamArgs& a, float* workspace, cudaStream_t stream);
#endif

// Specification in double: norms as above, e_i = rho·sqrt(ww_l/gg_l)·g_i·mask_i.
void sam_ascent_ref(const SamShape& s, double rho, const double* w, const double* g, const int32_t* segments,
                    const double* mask, double* norms, double* e);

}  // namespace activeip
