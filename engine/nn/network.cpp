// Slot naming, flat-buffer layout and torchvision-style initialisation.
#include "engine/nn/network.h"

#include <cmath>
#include <functional>

#include "engine/core/random.h"
#include "engine/nn/layers.h"

namespace activeip {

Network::Network(NetInfo info, std::unique_ptr<Layer> body) : info_(std::move(info)), body_(std::move(body)) {
  ENSURE(info_.H > 0 && info_.W > 0 && info_.C > 0 && info_.num_classes > 0,
         "network %s: bad input %dx%dx%d or %d classes", info_.name.c_str(), info_.H, info_.W, info_.C,
         info_.num_classes);
  const Shape out = body_->output_shape({1, info_.H, info_.W, info_.C});
  ENSURE(out == Shape({1, info_.num_classes}), "network %s maps a %dx%dx%d input to %s, not [1, %d]",
         info_.name.c_str(), info_.H, info_.W, info_.C, shape_str(out).c_str(), info_.num_classes);
  std::function<void(Layer&)> number = [&](Layer& layer) {
    layer.id_ = layers_++;
    for (auto& [name, child] : layer.children()) number(*child);
  };
  number(*body_);
}

static void fill_init(const ParamSlot& s, float* out, Rng& rng) {
  const int64_t n = shape_numel(s.shape);
  switch (s.init) {
    case Init::Zeros:
      for (int64_t i = 0; i < n; ++i) out[i] = 0.0f;
      break;
    case Init::Ones:
      for (int64_t i = 0; i < n; ++i) out[i] = 1.0f;
      break;
    case Init::KaimingNormalFanOut: {
      const double std = std::sqrt(2.0 / static_cast<double>(s.fan_out));
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(std * rng.normal());
      break;
    }
    case Init::UniformFanIn: {
      const double bound = 1.0 / std::sqrt(static_cast<double>(s.fan_in));
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(rng.uniform(-bound, bound));
      break;
    }
    case Init::Normal001:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(0.01 * rng.normal());
      break;
  }
}

void Network::build(Context& ctx, uint64_t seed) {
  ENSURE(!built_, "network %s is already built", info_.name.c_str());
  seed_ = seed;
  int64_t n_params = 0, n_buffers = 0;
  std::function<void(const std::string&, Layer&)> walk = [&](const std::string& prefix, Layer& layer) {
    for (ParamSlot& s : layer.slots()) {
      int64_t& count = s.kind == SlotKind::Parameter ? n_params : n_buffers;
      slots_.push_back({prefix + s.name, s, count});
      count += shape_numel(s.shape);
    }
    if (int64_t* c = layer.counter()) counters_.push_back({prefix + "num_batches_tracked", c});
    if (auto* d = dynamic_cast<Dropout*>(&layer)) dropouts_.push_back(d);
    for (auto& [name, child] : layer.children()) walk(prefix + name + ".", *child);
  };
  walk("", *body_);

  // Initialise on the host in declaration order (one RNG stream), then move to the device.
  Tensor host_params = Tensor::host({n_params}), host_buffers = Tensor::host({n_buffers});
  Rng rng(mix_seed(seed, 0x1417));
  for (const NamedSlot& s : slots_) {
    float* base = s.slot.kind == SlotKind::Parameter ? host_params.data<float>() : host_buffers.data<float>();
    fill_init(s.slot, base + s.offset, rng);
  }
  params_ = host_params.to(ctx.device(), ctx);
  buffers_ = host_buffers.to(ctx.device(), ctx);
  grads_ = Tensor::empty({n_params}, DType::F32, ctx);
  grads_.zero(ctx);

  for (NamedSlot& s : slots_) {
    Tensor& flat = s.slot.kind == SlotKind::Parameter ? params_ : buffers_;
    const int64_t n = shape_numel(s.slot.shape);
    *s.slot.value = flat.slice(s.offset, s.offset + n).reshape(s.slot.shape);
    if (s.slot.grad) *s.slot.grad = grads_.slice(s.offset, s.offset + n).reshape(s.slot.shape);
  }
  built_ = true;
}

const NamedSlot& Network::slot(const std::string& name) const {
  for (const NamedSlot& s : slots_)
    if (s.name == name) return s;
  ENSURE(false, "network %s has no tensor '%s'", info_.name.c_str(), name.c_str());
  return slots_.front();
}

void Network::prepare(Context& ctx, Pass& pass, const Tensor& x) {
  ENSURE(built_, "network %s used before build()", info_.name.c_str());
  ENSURE(x.rank() == 4 && x.dim(0) >= 1 && x.dim(1) == info_.H && x.dim(2) == info_.W && x.dim(3) == info_.C,
         "network %s expects N×%d×%d×%d input, got %s", info_.name.c_str(), info_.H, info_.W, info_.C,
         shape_str(x.shape()).c_str());
  if (pass.network() != this) {
    ENSURE(pass.network() == nullptr, "network %s was given a pass of another network", info_.name.c_str());
    PassPlan plan;
    body_->plan(input_shape(1), plan);
    pass.plan(this, layers_, plan);
  }
  pass.allocate(ctx, Phase::Forward, x.dim(0));
  pass.set_stat_rows(stat_samples_ > 0 && stat_samples_ < x.dim(0) ? stat_samples_ : 0);
  pass.set_stat_sync(stat_sync_);
}

Tensor Network::forward(Context& ctx, Pass& pass, const Tensor& x) {
  prepare(ctx, pass, x);
  return body_->forward(ctx, pass, x);
}

Tensor Network::forward_features(Context& ctx, const Tensor& x) {
  const auto children = body_->children();
  ENSURE(!children.empty() && std::string(children.back().second->type()) == "Linear",
         "network %s does not end in a Linear layer: it has no features to read", info_.name.c_str());
  prepare(ctx, pass_, x);
  Tensor h = x;
  for (size_t i = 0; i + 1 < children.size(); ++i) h = children[i].second->forward(ctx, pass_, h);
  return h;
}

Tensor Network::backward(Context& ctx, Pass& pass, const Tensor& dlogits) {
  ENSURE(pass.network() == this, "network %s: backward in a pass it has not run forward in", info_.name.c_str());
  ENSURE(dlogits.rank() == 2 && dlogits.dim(1) == info_.num_classes && dlogits.dim(0) == pass.last_rows(),
         "network %s: backward of %s logit gradients after a forward of %lld rows", info_.name.c_str(),
         shape_str(dlogits.shape()).c_str(), static_cast<long long>(pass.last_rows()));
  pass.allocate(ctx, Phase::Backward, dlogits.dim(0));
  return body_->backward(ctx, pass, dlogits);
}

void Network::zero_grad(Context& ctx) {
  grads_.zero(ctx);
}

int Network::reinit(Context& ctx, const std::string& prefix, uint64_t seed) {
  ENSURE(built_, "network %s re-initialised before build()", info_.name.c_str());
  Rng rng(mix_seed(seed, 0x5e1417));
  int count = 0;
  for (const NamedSlot& s : slots_) {
    if (s.name.rfind(prefix, 0) != 0) continue;
    Tensor host = Tensor::host(s.slot.shape);
    fill_init(s.slot, host.data<float>(), rng);
    s.slot.value->copy_from(host, ctx);
    ++count;
  }
  ctx.synchronize();
  ENSURE(count > 0, "network %s has no tensor whose name starts with '%s'", info_.name.c_str(), prefix.c_str());
  return count;
}

std::string Network::last_layer_prefix() const {
  for (auto it = slots_.rbegin(); it != slots_.rend(); ++it) {
    if (it->slot.kind != SlotKind::Parameter) continue;
    const size_t dot = it->name.rfind('.');
    return dot == std::string::npos ? std::string() : it->name.substr(0, dot + 1);
  }
  ENSURE(false, "network %s has no parameters", info_.name.c_str());
  return {};
}

void Network::snapshot(Context& ctx, NetworkState& into) const {
  ENSURE(built_, "network %s snapshot before build()", info_.name.c_str());
  ensure_tensor(into.params, params_.shape(), DType::F32, ctx).copy_from(params_, ctx);
  ensure_tensor(into.buffers, buffers_.shape(), DType::F32, ctx).copy_from(buffers_, ctx);
  into.counters.clear();
  for (const NamedCounter& c : counters_) into.counters.push_back(*c.value);
}

void Network::restore(Context& ctx, const NetworkState& from) {
  ENSURE(from.params.shape() == params_.shape() && from.buffers.shape() == buffers_.shape() &&
             from.counters.size() == counters_.size(),
         "network %s restored from the state of another network (%lld parameters, %lld buffers, %zu counters)",
         info_.name.c_str(), static_cast<long long>(from.params.numel()), static_cast<long long>(from.buffers.numel()),
         from.counters.size());
  params_.copy_from(from.params, ctx);
  buffers_.copy_from(from.buffers, ctx);
  for (size_t i = 0; i < counters_.size(); ++i) *counters_[i].value = from.counters[i];
}

void Network::begin_step(uint64_t step) {
  for (size_t i = 0; i < dropouts_.size(); ++i) dropouts_[i]->seed = mix_seed(seed_, step, i + 1);
}

}  // namespace activeip
