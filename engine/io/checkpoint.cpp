// Checkpoint I/O: layout conversion KRSC ↔ OIHW happens here and only here.
#include "engine/io/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/core/file_io.h"

namespace activeip {

namespace {

constexpr const char* kFormat = "activeip-model-v1";

// K×R×S×C (engine) ↔ K×C×R×S (PyTorch OIHW).
Shape oihw_shape(const Shape& krsc) {
  return {krsc[0], krsc[3], krsc[1], krsc[2]};
}

void krsc_to_oihw(const Shape& krsc, const float* in, float* out) {
  const int64_t K = krsc[0], R = krsc[1], S = krsc[2], C = krsc[3];
  for (int64_t k = 0; k < K; ++k)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t s = 0; s < S; ++s)
        for (int64_t c = 0; c < C; ++c) out[((k * C + c) * R + r) * S + s] = in[((k * R + r) * S + s) * C + c];
}

void oihw_to_krsc(const Shape& krsc, const float* in, float* out) {
  const int64_t K = krsc[0], R = krsc[1], S = krsc[2], C = krsc[3];
  for (int64_t k = 0; k < K; ++k)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t s = 0; s < S; ++s)
        for (int64_t c = 0; c < C; ++c) out[((k * R + r) * S + s) * C + c] = in[((k * C + c) * R + r) * S + s];
}

std::string get(const std::map<std::string, std::string>& m, const std::string& key, const std::string& path) {
  const auto it = m.find(key);
  ENSURE(it != m.end(), "%s: metadata has no '%s' (not an activeip model?)", path.c_str(), key.c_str());
  return it->second;
}

int get_int(const std::map<std::string, std::string>& m, const std::string& key, const std::string& path, int lo,
            int hi) {
  const std::string v = get(m, key, path);
  size_t used = 0;
  long long x = 0;
  try {
    x = std::stoll(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  ENSURE(used == v.size() && used > 0 && x >= lo && x <= hi, "%s: metadata '%s' = '%s' is not an integer in [%d, %d]",
         path.c_str(), key.c_str(), v.c_str(), lo, hi);
  return static_cast<int>(x);
}

}  // namespace

std::map<std::string, std::string> ModelMeta::to_metadata() const {
  nlohmann::json n = {{"mean", norm.mean}, {"std", norm.std}};
  std::map<std::string, std::string> m = {
      {"format", kFormat},
      {"net", net},
      {"dataset", dataset},
      {"num_classes", std::to_string(num_classes)},
      {"input_shape", nlohmann::json({C, H, W}).dump()},
      {"normalization", n.dump()},
      {"epoch", std::to_string(epoch)},
      {"config", config},
  };
  if (!protection.empty()) m["protection"] = protection;
  if (!channels.empty()) m["channels"] = nlohmann::json(channels).dump();
  return m;
}

ModelMeta ModelMeta::describe(const Network& net, const std::string& dataset, const Normalization& norm) {
  ModelMeta m;
  const NetInfo& i = net.info();
  m.net = i.name;
  m.dataset = dataset;
  m.H = i.H;
  m.W = i.W;
  m.C = i.C;
  m.num_classes = i.num_classes;
  m.norm = norm;
  m.channels = i.channels;
  return m;
}

ModelMeta ModelMeta::from_metadata(const std::map<std::string, std::string>& m, const std::string& path) {
  const std::string format = get(m, "format", path);
  ENSURE(format == kFormat, "%s: model format '%s' is not %s", path.c_str(), format.c_str(), kFormat);
  ModelMeta meta;
  meta.net = get(m, "net", path);
  meta.dataset = get(m, "dataset", path);
  meta.num_classes = get_int(m, "num_classes", path, 1, 1 << 20);
  meta.epoch = get_int(m, "epoch", path, 0, 1 << 30);
  meta.config = get(m, "config", path);
  if (auto it = m.find("protection"); it != m.end()) meta.protection = it->second;
  try {
    const auto shape = nlohmann::json::parse(get(m, "input_shape", path));
    // Integers within int: converting a number like 1e49 to int is undefined.
    ENSURE(shape.is_array() && shape.size() == 3 &&
               std::all_of(shape.begin(), shape.end(),
                           [](const nlohmann::json& d) {
                             return d.is_number_integer() && d.get<int64_t>() >= 0 && d.get<int64_t>() <= (1 << 20);
                           }),
           "%s: metadata input_shape %s is not [C, H, W]", path.c_str(), shape.dump().c_str());
    meta.C = shape.at(0).get<int>();
    meta.H = shape.at(1).get<int>();
    meta.W = shape.at(2).get<int>();
    const auto norm = nlohmann::json::parse(get(m, "normalization", path));
    meta.norm.mean = norm.at("mean").get<std::vector<float>>();
    meta.norm.std = norm.at("std").get<std::vector<float>>();
    if (auto it = m.find("channels"); it != m.end()) {
      const auto channels = nlohmann::json::parse(it->second);
      ENSURE(channels.is_object(), "%s: metadata channels is not an object of layer names", path.c_str());
      for (const auto& [name, width] : channels.items()) {
        ENSURE(width.is_number_integer() && width.get<int64_t>() >= 1 && width.get<int64_t>() <= (1 << 20),
               "%s: metadata channels[%s] = %s is not a channel count", path.c_str(), name.c_str(),
               width.dump().c_str());
        meta.channels[name] = width.get<int>();
      }
    }
  } catch (const nlohmann::json::exception& e) {
    ENSURE(false, "%s: malformed metadata (%s)", path.c_str(), e.what());
  }
  ENSURE(meta.C > 0 && meta.H > 0 && meta.W > 0 && meta.C <= 4 && meta.H <= 4096 && meta.W <= 4096,
         "%s: metadata input_shape [%d, %d, %d] is out of range", path.c_str(), meta.C, meta.H, meta.W);
  ENSURE(static_cast<int>(meta.norm.mean.size()) == meta.C && static_cast<int>(meta.norm.std.size()) == meta.C,
         "%s: normalization has %zu/%zu values for %d channels", path.c_str(), meta.norm.mean.size(),
         meta.norm.std.size(), meta.C);
  return meta;
}

SafetensorsWriter model_writer(Network& net, Context& ctx, const ModelMeta& meta) {
  const Tensor params = net.params().to(Device::cpu(), ctx), buffers = net.buffers().to(Device::cpu(), ctx);
  SafetensorsWriter w;
  std::vector<float> tmp;
  for (const NamedSlot& s : net.slots()) {
    const float* base = (s.slot.kind == SlotKind::Parameter ? params : buffers).data<float>() + s.offset;
    const size_t n = static_cast<size_t>(shape_numel(s.slot.shape));
    if (s.slot.layout == SlotLayout::KRSC) {
      tmp.resize(n);
      krsc_to_oihw(s.slot.shape, base, tmp.data());
      w.add(s.name, "F32", oihw_shape(s.slot.shape), tmp.data(), n * sizeof(float));
    } else {
      w.add(s.name, "F32", s.slot.shape, base, n * sizeof(float));
    }
  }
  for (const NamedCounter& c : net.counters()) w.add(c.name, "I64", {}, c.value, sizeof(int64_t));
  w.set_metadata(meta.to_metadata());
  return w;
}

void save_model(const std::string& path, Network& net, Context& ctx, const ModelMeta& meta) {
  model_writer(net, ctx, meta).write(path);
}

std::string pending_path(const std::string& companion_path) {
  return companion_path + ".pending";
}

void write_model_pair(const SafetensorsWriter& model, const std::string& model_path, SafetensorsWriter companion,
                      const std::string& companion_path) {
  companion.set_metadata("model_sha256", model.data_sha256());
  companion.write(pending_path(companion_path));
  model.write(model_path);
  rename_durable(pending_path(companion_path), companion_path);
}

void finish_model_pair(const std::string& model_sha256, const std::string& companion_path) {
  const std::string pending = pending_path(companion_path);
  if (!file_exists(pending)) return;
  const SafetensorsReader file(pending);
  const auto it = file.metadata().find("model_sha256");
  if (it != file.metadata().end() && it->second == model_sha256) rename_durable(pending, companion_path);
}

void load_weights(const SafetensorsReader& file, Network& net, Context& ctx) {
  const std::string& path = file.path();
  Tensor params = Tensor::host({net.num_parameters()}), buffers = Tensor::host({net.buffers().numel()});
  std::set<std::string> expected;
  for (const NamedSlot& s : net.slots()) {
    expected.insert(s.name);
    ENSURE(file.contains(s.name), "%s: no tensor '%s' (is it a %s checkpoint?)", path.c_str(), s.name.c_str(),
           net.info().name.c_str());
    const SafetensorsView& v = file.get(s.name);
    const Shape want = s.slot.layout == SlotLayout::KRSC ? oihw_shape(s.slot.shape) : s.slot.shape;
    ENSURE(v.dtype == "F32", "%s: tensor '%s' has dtype %s, expected F32", path.c_str(), s.name.c_str(),
           v.dtype.c_str());
    ENSURE(v.shape == want, "%s: tensor '%s' has shape %s, expected %s for %s", path.c_str(), s.name.c_str(),
           shape_str(v.shape).c_str(), shape_str(want).c_str(), net.info().name.c_str());
    float* dst = (s.slot.kind == SlotKind::Parameter ? params : buffers).data<float>() + s.offset;
    const size_t n = static_cast<size_t>(shape_numel(want));
    std::vector<float> tmp(n);
    std::memcpy(tmp.data(), v.data, n * sizeof(float));
    if (s.slot.layout == SlotLayout::KRSC)
      oihw_to_krsc(s.slot.shape, tmp.data(), dst);
    else
      std::memcpy(dst, tmp.data(), n * sizeof(float));
  }
  std::vector<int64_t> counters;
  for (const NamedCounter& c : net.counters()) {
    expected.insert(c.name);
    ENSURE(file.contains(c.name), "%s: no tensor '%s'", path.c_str(), c.name.c_str());
    const SafetensorsView& v = file.get(c.name);
    ENSURE(v.dtype == "I64" && v.bytes == sizeof(int64_t), "%s: tensor '%s' is not an I64 scalar", path.c_str(),
           c.name.c_str());
    int64_t x = 0;
    std::memcpy(&x, v.data, sizeof x);
    counters.push_back(x);
  }
  for (const std::string& name : file.names())
    ENSURE(expected.count(name), "%s: unexpected tensor '%s' for %s", path.c_str(), name.c_str(),
           net.info().name.c_str());
  // Everything validated: only now touch the network.
  net.params().copy_from(params, ctx);
  net.buffers().copy_from(buffers, ctx);
  for (size_t i = 0; i < counters.size(); ++i) *net.counters()[i].value = counters[i];
}

}  // namespace activeip
