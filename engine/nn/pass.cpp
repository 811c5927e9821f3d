// Pass arenas: every buffer at a 256-byte aligned offset of its phase's arena.
#include "engine/nn/pass.h"

#include <algorithm>

namespace activeip {

namespace {

constexpr size_t kAlign = 256;

int index(Phase phase) {
  return static_cast<int>(phase);
}

const char* phase_name(Phase phase) {
  return phase == Phase::Forward ? "forward" : "backward";
}

}  // namespace

void PassPlan::rows(int layer, int k, Phase phase, const Shape& shape, DType dtype) {
  ENSURE(!shape.empty() && shape[0] == 1, "pass plan: buffer %d of layer %d has shape %s, not one row", k, layer,
         shape_str(shape).c_str());
  add({layer, k, phase, shape, dtype, true});
}

void PassPlan::fixed(int layer, int k, Phase phase, const Shape& shape, DType dtype) {
  add({layer, k, phase, shape, dtype, false});
}

void PassPlan::add(Request r) {
  ENSURE(r.layer >= 0 && r.k >= 0, "pass plan: buffer %d of layer %d", r.k, r.layer);
  requests_.push_back(std::move(r));
}

void Pass::plan(const void* network, int layers, const PassPlan& plan) {
  ENSURE(network != nullptr && layers >= 0, "pass planned for %d layers", layers);
  network_ = network;
  buffers_.assign(static_cast<size_t>(layers), {});
  kept_.assign(static_cast<size_t>(layers), {});
  rows_[0] = rows_[1] = last_rows_ = 0;
  arena_[0] = arena_[1] = Tensor();
  for (const PassPlan::Request& r : plan.requests_) {
    ENSURE(r.layer < layers, "pass plan: layer %d of a network of %d layers", r.layer, layers);
    std::vector<Buffer>& of_layer = buffers_[static_cast<size_t>(r.layer)];
    if (of_layer.size() <= static_cast<size_t>(r.k)) of_layer.resize(static_cast<size_t>(r.k) + 1);
    Buffer& b = of_layer[static_cast<size_t>(r.k)];
    ENSURE(!b.declared, "pass plan: buffer %d of layer %d is declared twice", r.k, r.layer);
    b = {r.phase, r.shape, r.dtype, r.per_row, true, 0, {}};
  }
}

void Pass::allocate(Context& ctx, Phase phase, int64_t rows) {
  ENSURE(network_ != nullptr, "pass: the %s arena allocated before a plan", phase_name(phase));
  ENSURE(rows >= 1, "pass: %lld rows", static_cast<long long>(rows));
  const int p = index(phase);
  if (phase == Phase::Forward) last_rows_ = rows;
  Tensor& arena = arena_[p];
  if (rows <= rows_[p] && arena.device() == ctx.device()) return;
  rows_[p] = std::max(rows, rows_[p]);
  size_t need = 0;
  for (std::vector<Buffer>& of_layer : buffers_)
    for (Buffer& b : of_layer) {
      if (!b.declared || b.phase != phase) continue;
      b.offset = need;
      b.view = Tensor();  // it points into the old arena
      const int64_t numel = shape_numel(b.shape) * (b.per_row ? rows_[p] : 1);
      need += (static_cast<size_t>(numel) * dtype_size(b.dtype) + kAlign - 1) / kAlign * kAlign;
    }
  arena = Tensor::empty({static_cast<int64_t>(need)}, DType::U8, ctx);
}

Tensor& Pass::buffer(int layer, int k, int64_t n) {
  ENSURE(layer >= 0 && static_cast<size_t>(layer) < buffers_.size() && k >= 0 &&
             static_cast<size_t>(k) < buffers_[static_cast<size_t>(layer)].size() &&
             buffers_[static_cast<size_t>(layer)][static_cast<size_t>(k)].declared,
         "pass: layer %d has no buffer %d in its plan", layer, k);
  Buffer& b = buffers_[static_cast<size_t>(layer)][static_cast<size_t>(k)];
  const int64_t rows = rows_[index(b.phase)];
  ENSURE(!b.per_row || (n >= 1 && n <= rows), "pass: %lld rows asked of a %s arena of %lld", static_cast<long long>(n),
         phase_name(b.phase), static_cast<long long>(rows));
  ENSURE(rows > 0, "pass: the %s arena is not allocated", phase_name(b.phase));
  if (b.view.raw() != nullptr && (!b.per_row || b.view.dim(0) == n)) return b.view;
  Shape shape = b.shape;
  if (b.per_row) shape[0] = n;
  b.view = arena_[index(b.phase)].view(b.offset, shape, b.dtype);
  return b.view;
}

Tensor& Pass::kept(int layer) {
  ENSURE(layer >= 0 && static_cast<size_t>(layer) < kept_.size(), "pass: no layer %d", layer);
  return kept_[static_cast<size_t>(layer)];
}

}  // namespace activeip
