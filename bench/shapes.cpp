// The benchmarks' layer shapes, read off the nets rather than listed by hand: the layer tree
// is walked with each layer's own output_shape, so a change to nets/ changes the benchmark.
// A Residual runs its main branch on the block input and its shortcut (its last child, when
// it has one) on the same input; the walk tells them apart by chaining shapes.
#include <functional>
#include <map>
#include <tuple>

#include "base/error.h"
#include "bench/bench.h"
#include "engine/nn/layers.h"

namespace activeip::bench {

namespace {

using Visit = std::function<void(const std::string& path, Layer& layer, const Shape& in)>;

std::string join(const std::string& path, const std::string& name) {
  return path.empty() ? name : path + "." + name;
}

// Whether the children of a Residual, chained from `in`, give its output: then there is no
// shortcut child (identity shortcut). A shortcut child cannot take the main branch's output
// (a projection expects the block's input channels, option A halves the size again).
bool chains_to(const std::vector<std::pair<std::string, Layer*>>& children, const Shape& in, const Shape& out) {
  try {
    Shape s = in;
    for (const auto& [name, child] : children) s = child->output_shape(s);
    return s == out;
  } catch (const Error&) {
    return false;
  }
}

Shape walk(Layer& layer, const std::string& path, const Shape& in, const Visit& visit) {
  const auto children = layer.children();
  if (children.empty()) {
    visit(path, layer, in);
    return layer.output_shape(in);
  }
  const Shape out = layer.output_shape(in);
  size_t main_count = children.size();
  if (dynamic_cast<Residual*>(&layer) && !chains_to(children, in, out)) main_count = children.size() - 1;
  Shape s = in;
  for (size_t i = 0; i < main_count; ++i) s = walk(*children[i].second, join(path, children[i].first), s, visit);
  for (size_t i = main_count; i < children.size(); ++i)
    walk(*children[i].second, join(path, children[i].first), in, visit);
  return out;
}

void walk_net(const std::string& net_name, int batch, const NetSpec& spec, const Visit& visit) {
  ENSURE(batch >= 1, "batch must be at least 1, got %d", batch);
  const std::unique_ptr<Network> net = make_net(net_name, spec);
  walk(net->body(), "", net->input_shape(batch), visit);
}

}  // namespace

std::vector<ConvCase> conv_cases(const std::string& net, int batch, const NetSpec& spec) {
  std::vector<ConvCase> cases;
  std::map<std::tuple<int, int, int, int, int, int, int, int, int, bool>, size_t> seen;
  walk_net(net, batch, spec, [&](const std::string& path, Layer& layer, const Shape& in) {
    auto* conv = dynamic_cast<Conv2d*>(&layer);
    if (!conv) return;
    const Conv2dShape s = conv->shape_for(in);
    const auto key = std::make_tuple(s.N, s.H, s.W, s.C, s.K, s.R, s.S, s.stride, s.pad, conv->has_bias);
    auto [it, fresh] = seen.emplace(key, cases.size());
    if (fresh) cases.push_back(ConvCase{net, s, conv->has_bias, {}});
    cases[it->second].layers.push_back(path);
  });
  return cases;
}

std::vector<LinearLayer> linear_layers(const std::string& net, const NetSpec& spec) {
  std::vector<LinearLayer> out;
  walk_net(net, 1, spec, [&](const std::string& path, Layer& layer, const Shape&) {
    if (auto* fc = dynamic_cast<Linear*>(&layer)) out.push_back({path, fc->in_features, fc->out_features});
  });
  return out;
}

double forward_flops_per_image(const std::string& net, const NetSpec& spec) {
  double flops = 0;
  walk_net(net, 1, spec, [&](const std::string&, Layer& layer, const Shape& in) {
    if (auto* conv = dynamic_cast<Conv2d*>(&layer)) flops += conv->shape_for(in).flops();
    if (auto* fc = dynamic_cast<Linear*>(&layer)) flops += 2.0 * fc->in_features * fc->out_features;
  });
  return flops;
}

}  // namespace activeip::bench
