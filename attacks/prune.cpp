// The pruning attacks' choices: magnitude thresholds (on the network's device), fine-pruning's
// channel statistics, and structured pruning's kept filters and their copy into a narrower net.
#include "attacks/prune.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "engine/nn/ops.h"
#include "engine/train/mask.h"
#include "engine/train/trainer.h"

namespace activeip {

namespace {

// One run of prunable weights in the flat buffer.
struct Segment {
  int64_t offset, size;
};

// The k-th smallest magnitude key over `segments` of the parameters (kKeepAll for k = 0,
// kPruneAll for k = all of them), computed on ctx's device.
uint64_t threshold_of(Network& net, Context& ctx, const std::vector<Segment>& segments, int64_t k) {
  int64_t n = 0;
  for (const Segment& s : segments) n += s.size;
  if (k <= 0) return kKeepAll;
  if (k >= n) return kPruneAll;
  Tensor keys = Tensor::empty({n * 8}, DType::U8, ctx);  // uint64 keys (Tensor has no 64-bit dtype)
  int64_t at = 0;
  for (const Segment& s : segments) {
    Tensor run = keys.slice(at * 8, (at + s.size) * 8);
    ops::magnitude_keys(ctx, static_cast<uint32_t>(s.offset), net.params().slice(s.offset, s.offset + s.size), run);
    at += s.size;
  }
  return ops::kth_smallest_key(ctx, keys, k);
}

void apply_threshold(Network& net, Context& ctx, const Segment& s, uint64_t threshold, Tensor& mask) {
  Tensor run = mask.slice(s.offset, s.offset + s.size);
  ops::threshold_mask(ctx, static_cast<uint32_t>(s.offset), threshold, net.params().slice(s.offset, s.offset + s.size),
                      run);
}

const NamedSlot& classifier_weight(const Network& net) {
  const std::string prefix = net.last_layer_prefix();
  const NamedSlot& w = net.slot(prefix + "weight");
  ENSURE(w.slot.shape.size() == 2, "%s: %sweight is not a linear layer's weight", net.info().name.c_str(),
         prefix.c_str());
  return w;
}

}  // namespace

PruneMethod parse_prune_method(const std::string& name) {
  if (name == "global") return PruneMethod::Global;
  if (name == "layer") return PruneMethod::Layer;
  if (name == "filter") return PruneMethod::Filter;
  if (name == "fineprune") return PruneMethod::FinePrune;
  ENSURE(false, "unknown pruning method '%s' (known: global, layer, filter, fineprune)", name.c_str());
  return PruneMethod::Global;
}

const char* prune_method_name(PruneMethod m) {
  switch (m) {
    case PruneMethod::Global:
      return "global";
    case PruneMethod::Layer:
      return "layer";
    case PruneMethod::Filter:
      return "filter";
    case PruneMethod::FinePrune:
      return "fineprune";
  }
  return "?";
}

Tensor magnitude_mask(Network& net, Context& ctx, double sparsity, bool per_layer) {
  ENSURE(sparsity >= 0 && sparsity <= 1, "sparsity %g is outside [0, 1]", sparsity);
  ENSURE(net.num_parameters() < (int64_t{1} << 32), "%s has %lld parameters; pruning indexes at most 2^32",
         net.info().name.c_str(), static_cast<long long>(net.num_parameters()));
  Tensor mask = Tensor::empty({net.num_parameters()}, DType::F32, ctx);
  ops::fill(ctx, 1.0f, mask);
  std::vector<Segment> all;
  for (const NamedSlot& s : net.slots())
    if (prunable(s)) all.push_back({s.offset, shape_numel(s.slot.shape)});
  auto count = [&](int64_t n) { return static_cast<int64_t>(std::llround(sparsity * static_cast<double>(n))); };
  if (per_layer) {
    for (const Segment& s : all) apply_threshold(net, ctx, s, threshold_of(net, ctx, {s}, count(s.size)), mask);
  } else {
    int64_t n = 0;
    for (const Segment& s : all) n += s.size;
    const uint64_t threshold = threshold_of(net, ctx, all, count(n));
    for (const Segment& s : all) apply_threshold(net, ctx, s, threshold, mask);
  }
  ctx.synchronize();
  return mask;
}

std::vector<double> mean_feature_activation(Network& net, Context& ctx, const Dataset& data, const Normalization& norm,
                                            const std::vector<int32_t>& indices, int batch) {
  ENSURE(!indices.empty(), "activation statistics need at least one record");
  int C = 0;
  Tensor sum;  // C doubles on the device, in U8 storage (Tensor has no f64)
  auto accumulate = [&](Context& c, Tensor& x, int64_t) {
    const Tensor f = net.forward_features(c, x);
    ENSURE(f.rank() == 2, "%s: the classifier's input is %s, not N×C", net.info().name.c_str(),
           shape_str(f.shape()).c_str());
    if (!sum.defined() || C == 0) {
      C = static_cast<int>(f.dim(1));
      sum = Tensor::empty({int64_t{C} * 8}, DType::U8, c);
      sum.zero(c);
    }
    ops::channel_sum(c, C, f, sum);
  };
  predict(net, ctx, data, norm, indices, batch, accumulate);
  const Tensor host = sum.to(Device::cpu(), ctx);
  ctx.synchronize();
  std::vector<double> mean(static_cast<size_t>(C));
  std::memcpy(mean.data(), host.raw(), mean.size() * sizeof(double));
  for (double& m : mean) m /= static_cast<double>(indices.size());
  return mean;
}

std::vector<int> least_active_channels(const std::vector<double>& activation, double sparsity) {
  ENSURE(sparsity >= 0 && sparsity <= 1, "sparsity %g is outside [0, 1]", sparsity);
  std::vector<int> order(activation.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return activation[a] < activation[b]; });
  const auto k = static_cast<size_t>(std::llround(sparsity * static_cast<double>(activation.size())));
  order.resize(k);
  std::sort(order.begin(), order.end());
  return order;
}

Tensor feature_channel_mask(const Network& net, const std::vector<int>& channels) {
  const NamedSlot& w = classifier_weight(net);
  const int64_t out = w.slot.shape[0], in = w.slot.shape[1];
  Tensor mask = Tensor::host({net.num_parameters()});
  std::fill_n(mask.data<float>(), mask.numel(), 1.0f);
  for (int c : channels) {
    ENSURE(c >= 0 && c < in, "channel %d is outside the %lld features of %s", c, static_cast<long long>(in),
           net.info().name.c_str());
    for (int64_t o = 0; o < out; ++o) mask.data<float>()[w.offset + o * in + c] = 0.0f;
  }
  return mask;
}

std::map<std::string, std::vector<int>> filters_to_keep(Network& net, Context& ctx, double sparsity) {
  ENSURE(sparsity >= 0 && sparsity <= 1, "sparsity %g is outside [0, 1]", sparsity);
  const std::vector<FilterGroup>& groups = net.info().filter_groups;
  ENSURE(!groups.empty(), "%s has no filters that structured pruning can remove", net.info().name.c_str());
  const Tensor params = net.params().to(Device::cpu(), ctx);
  ctx.synchronize();
  std::map<std::string, std::vector<int>> keep;
  for (const FilterGroup& g : groups) {
    const NamedSlot& w = net.slot(g.conv + ".weight");
    ENSURE(w.slot.layout == SlotLayout::KRSC, "%s.weight is not a conv weight", g.conv.c_str());
    const int K = static_cast<int>(w.slot.shape[0]);
    const int64_t per_filter = shape_numel(w.slot.shape) / K;
    std::vector<double> l1(static_cast<size_t>(K), 0.0);
    for (int k = 0; k < K; ++k)
      for (int64_t i = 0; i < per_filter; ++i) l1[k] += std::fabs(params.data<float>()[w.offset + k * per_filter + i]);
    std::vector<int> order(static_cast<size_t>(K));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return l1[a] < l1[b]; });
    const int removed = std::min(K - 1, static_cast<int>(std::llround(sparsity * K)));
    std::vector<int> kept(order.begin() + removed, order.end());
    std::sort(kept.begin(), kept.end());
    keep[g.conv] = std::move(kept);
  }
  return keep;
}

std::map<std::string, int> kept_widths(const std::map<std::string, std::vector<int>>& keep) {
  std::map<std::string, int> widths;
  for (const auto& [conv, kept] : keep) widths[conv] = static_cast<int>(kept.size());
  return widths;
}

namespace {

bool has_prefix(const std::string& name, const std::string& layer) {
  return name.size() > layer.size() && name.compare(0, layer.size(), layer) == 0 && name[layer.size()] == '.';
}

// dst = src[index_0, index_1, …] for a row-major tensor of shape `src_shape`: each dimension
// takes the listed indices (all of them where the list is empty).
void gather(const float* src, const Shape& src_shape, const std::vector<std::vector<int>>& index, float* dst) {
  const size_t rank = src_shape.size();
  Shape dst_shape(rank), stride(rank, 1);
  for (size_t d = 0; d < rank; ++d) dst_shape[d] = index[d].empty() ? src_shape[d] : index[d].size();
  for (size_t d = rank; d-- > 1;) stride[d - 1] = stride[d] * src_shape[d];
  const int64_t n = shape_numel(dst_shape);
  std::vector<int64_t> at(rank, 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t from = 0;
    for (size_t d = 0; d < rank; ++d) from += (index[d].empty() ? at[d] : index[d][at[d]]) * stride[d];
    dst[i] = src[from];
    for (size_t d = rank; d-- > 0;) {
      if (++at[d] < dst_shape[d]) break;
      at[d] = 0;
    }
  }
}

}  // namespace

void copy_kept_filters(Network& from, Context& ctx, const std::map<std::string, std::vector<int>>& keep, Network& to) {
  ENSURE(from.info().name == to.info().name, "cannot copy a %s into a %s", from.info().name.c_str(),
         to.info().name.c_str());
  const Tensor src_params = from.params().to(Device::cpu(), ctx), src_buffers = from.buffers().to(Device::cpu(), ctx);
  Tensor params = Tensor::host({to.params().numel()}), buffers = Tensor::host({to.buffers().numel()});
  ctx.synchronize();
  for (const NamedSlot& s : to.slots()) {
    const NamedSlot& f = from.slot(s.name);
    const Shape& shape = f.slot.shape;
    std::vector<std::vector<int>> index(shape.size());
    for (const FilterGroup& g : from.info().filter_groups) {
      const auto it = keep.find(g.conv);
      ENSURE(it != keep.end(), "no kept filters given for %s", g.conv.c_str());
      if (has_prefix(s.name, g.conv) || has_prefix(s.name, g.bn)) {
        index[0] = it->second;  // weight rows (K of KRSC), bias, BN channels
      } else if (s.name == g.consumer + ".weight") {
        index[shape.size() - 1] = it->second;  // input channels: C of KRSC, columns of a linear weight
      }
    }
    Shape out = shape;
    for (size_t d = 0; d < shape.size(); ++d) {
      if (index[d].empty()) continue;
      out[d] = static_cast<int64_t>(index[d].size());
      for (int i : index[d])
        ENSURE(i >= 0 && i < shape[d], "%s: kept filter %d is outside its %lld channels", s.name.c_str(), i,
               static_cast<long long>(shape[d]));
    }
    ENSURE(out == s.slot.shape, "%s: the kept filters give %s, the narrower net has %s", s.name.c_str(),
           shape_str(out).c_str(), shape_str(s.slot.shape).c_str());
    const bool param = s.slot.kind == SlotKind::Parameter;
    gather((param ? src_params : src_buffers).data<float>() + f.offset, shape, index,
           (param ? params : buffers).data<float>() + s.offset);
  }
  for (const NamedCounter& c : to.counters())
    for (const NamedCounter& o : from.counters())
      if (o.name == c.name) *c.value = *o.value;
  to.params().copy_from(params, ctx);
  to.buffers().copy_from(buffers, ctx);
  ctx.synchronize();
}

}  // namespace activeip
