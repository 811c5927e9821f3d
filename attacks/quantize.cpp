#include "attacks/quantize.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "engine/train/mask.h"

namespace activeip {

QuantizeGranularity parse_quantize_granularity(const std::string& name) {
  if (name == "channel") return QuantizeGranularity::Channel;
  if (name == "tensor") return QuantizeGranularity::Tensor;
  throw Error(strfmt("quantization granularity '%s' is unknown (known: channel, tensor)", name.c_str()));
}

QuantizeStats quantize_weights(Network& net, Context& ctx, const QuantizeSpec& spec) {
  ENSURE(spec.bits >= 2 && spec.bits <= 16, "--bits must be in 2 … 16, got %d", spec.bits);
  const double qmax = std::ldexp(1.0, spec.bits - 1) - 1;
  Tensor params = net.params().to(Device::cpu(), ctx);
  ctx.synchronize();
  float* p = params.data<float>();
  QuantizeStats st;
  double err2 = 0, norm2 = 0;
  for (const NamedSlot& s : net.slots()) {
    if (!prunable(s)) continue;
    const int64_t n = shape_numel(s.slot.shape);
    // The output channel is the first dimension of every weight layout (OIHW/KRSC, out×in).
    const int64_t group = spec.granularity == QuantizeGranularity::Channel ? n / s.slot.shape[0] : n;
    for (int64_t g0 = 0; g0 < n; g0 += group) {
      float* w = p + s.offset + g0;
      double amax = 0;
      for (int64_t i = 0; i < group; ++i) amax = std::max(amax, std::fabs(static_cast<double>(w[i])));
      if (amax == 0) continue;
      const double scale = amax / qmax;
      for (int64_t i = 0; i < group; ++i) {
        const double q = std::clamp(std::nearbyint(w[i] / scale), -qmax, qmax) * scale;
        err2 += (q - w[i]) * (q - w[i]);
        norm2 += static_cast<double>(w[i]) * w[i];
        w[i] = static_cast<float>(q);
      }
    }
    ++st.tensors;
    st.weights += n;
  }
  net.params().copy_from(params, ctx);
  st.relative_error = norm2 > 0 ? std::sqrt(err2 / norm2) : 0;
  return st;
}

}  // namespace activeip
