// Pruning masks over the flat parameter buffer: their statistics, applying one, checking that
// it holds, and the mask file beside a model (U8, one element per parameter).
#include "engine/train/mask.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "engine/io/safetensors.h"

namespace activeip {

namespace {

constexpr const char* kMaskFormat = "activeip-mask-v1";

}  // namespace

bool prunable(const NamedSlot& s) {
  const std::string suffix = "weight";
  const bool weight =
      s.name.size() >= suffix.size() && s.name.compare(s.name.size() - suffix.size(), suffix.size(), suffix) == 0;
  return s.slot.kind == SlotKind::Parameter && weight && s.slot.shape.size() >= 2;
}

MaskStats mask_stats(const Network& net, Context& ctx, const Tensor& mask) {
  ENSURE(mask.numel() == net.num_parameters(), "mask has %lld elements, %s has %lld parameters",
         static_cast<long long>(mask.numel()), net.info().name.c_str(), static_cast<long long>(net.num_parameters()));
  const Tensor m = mask.to(Device::cpu(), ctx);
  ctx.synchronize();
  const float* f = m.data<float>();
  MaskStats st;
  for (int64_t i = 0; i < m.numel(); ++i) st.masked += f[i] == 0.0f;
  for (const NamedSlot& s : net.slots()) {
    if (!prunable(s)) continue;
    const int64_t n = shape_numel(s.slot.shape);
    st.candidates += n;
    for (int64_t i = 0; i < n; ++i) st.pruned += f[s.offset + i] == 0.0f;
  }
  return st;
}

Tensor filter_mask(Network& net, Context& ctx, double fraction) {
  ENSURE(fraction >= 0 && fraction <= 1, "filter fraction must be in [0, 1], got %g", fraction);
  const Tensor w = net.params().to(Device::cpu(), ctx);
  ctx.synchronize();
  Tensor mask = Tensor::host({net.num_parameters()});
  std::fill_n(mask.data<float>(), mask.numel(), 1.0f);
  for (const NamedSlot& s : net.slots()) {
    if (!prunable(s) || s.slot.shape.size() != 4) continue;  // the convolutions
    const int64_t K = s.slot.shape[0], per = shape_numel(s.slot.shape) / K;
    std::vector<std::pair<double, int64_t>> l1(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) {
      double sum = 0;
      for (int64_t i = 0; i < per; ++i) sum += std::fabs(w.data<float>()[s.offset + k * per + i]);
      l1[static_cast<size_t>(k)] = {sum, k};
    }
    std::sort(l1.begin(), l1.end());
    const auto removed = static_cast<int64_t>(std::llround(fraction * static_cast<double>(K)));
    for (int64_t j = 0; j < removed; ++j)
      std::fill_n(mask.data<float>() + s.offset + l1[static_cast<size_t>(j)].second * per, per, 0.0f);
  }
  return mask;
}

void apply_mask(Network& net, Context& ctx, const Tensor& mask) {
  ENSURE(mask.numel() == net.num_parameters() && mask.dtype() == DType::F32,
         "mask has %lld %s elements, %s has %lld parameters", static_cast<long long>(mask.numel()),
         dtype_name(mask.dtype()), net.info().name.c_str(), static_cast<long long>(net.num_parameters()));
  Tensor w = net.params().to(Device::cpu(), ctx).clone(ctx);
  const Tensor m = mask.to(Device::cpu(), ctx);
  ctx.synchronize();
  float* pw = w.data<float>();
  const float* pm = m.data<float>();
  for (int64_t i = 0; i < w.numel(); ++i) pw[i] *= pm[i];
  net.params().copy_from(w, ctx);
  ctx.synchronize();
}

int64_t mask_violations(Network& net, Context& ctx, const Tensor& mask) {
  ENSURE(mask.numel() == net.num_parameters(), "mask has %lld elements, %s has %lld parameters",
         static_cast<long long>(mask.numel()), net.info().name.c_str(), static_cast<long long>(net.num_parameters()));
  const Tensor m = mask.to(Device::cpu(), ctx), w = net.params().to(Device::cpu(), ctx);
  ctx.synchronize();
  int64_t bad = 0;
  for (int64_t i = 0; i < m.numel(); ++i) bad += m.data<float>()[i] == 0.0f && w.data<float>()[i] != 0.0f;
  return bad;
}

std::string mask_path(const std::string& model_path) {
  const std::string ext = ".safetensors";
  if (model_path.size() > ext.size() && model_path.compare(model_path.size() - ext.size(), ext.size(), ext) == 0)
    return model_path.substr(0, model_path.size() - ext.size()) + ".mask.safetensors";
  return model_path + ".mask.safetensors";
}

SafetensorsWriter mask_writer(const Network& net, Context& ctx, const Tensor& mask,
                              const std::map<std::string, std::string>& extra) {
  ENSURE(mask.numel() == net.num_parameters(), "mask has %lld elements, %s has %lld parameters",
         static_cast<long long>(mask.numel()), net.info().name.c_str(), static_cast<long long>(net.num_parameters()));
  const Tensor m = mask.to(Device::cpu(), ctx);
  ctx.synchronize();
  std::vector<uint8_t> bytes(static_cast<size_t>(m.numel()));
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = m.data<float>()[i] != 0.0f;
  std::map<std::string, std::string> meta = extra;
  meta["format"] = kMaskFormat;
  meta["net"] = net.info().name;
  meta["parameters"] = std::to_string(net.num_parameters());
  SafetensorsWriter w;
  w.add("mask", "U8", {m.numel()}, bytes.data(), bytes.size());
  w.set_metadata(meta);
  return w;
}

Tensor load_mask(const std::string& path, const Network& net) {
  const SafetensorsReader file(path);
  const auto& meta = file.metadata();
  const auto field = [&](const char* key) {
    const auto it = meta.find(key);
    ENSURE(it != meta.end(), "%s: no '%s' in the metadata of the mask", path.c_str(), key);
    return it->second;
  };
  ENSURE(field("format") == kMaskFormat, "%s: not an activeip pruning mask", path.c_str());
  ENSURE(field("net") == net.info().name, "%s: a mask for a %s, not a %s", path.c_str(), field("net").c_str(),
         net.info().name.c_str());
  const SafetensorsView& v = file.get("mask");
  ENSURE(v.dtype == "U8" && v.shape == Shape({net.num_parameters()}), "%s: mask is %s %s, expected U8 [%lld]",
         path.c_str(), v.dtype.c_str(), shape_str(v.shape).c_str(), static_cast<long long>(net.num_parameters()));
  Tensor mask = Tensor::host({net.num_parameters()});
  for (size_t i = 0; i < v.bytes; ++i) {
    ENSURE(v.data[i] <= 1, "%s: mask element %zu is %d, not 0 or 1", path.c_str(), i, v.data[i]);
    mask.data<float>()[i] = v.data[i];
  }
  return mask;
}

}  // namespace activeip
