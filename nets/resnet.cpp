// ResNets for small images. Read top to bottom like the papers' figures:
//   stem  conv3×3(C→w) – BN – ReLU                         (no 7×7, no max-pool)
//   stages of basic blocks  [conv3×3 – BN – ReLU – conv3×3 – BN] + shortcut, ReLU
//   head  global average pool – fc
// resnet18/34 (torchvision names, widths 64-128-256-512, 1×1-conv "downsample" shortcuts)
// and resnet20/32/56 (He et al. 2016 §4.2: widths 16-32-64, n = 3/5/9 blocks per stage,
// option-A shortcuts: stride-2 subsampling plus zero channels, no parameters). Each block's
// first conv may be narrower (NetSpec::channels): a filter-pruned model.
#include <map>
#include <string>

#include "engine/nn/layers.h"
#include "nets/nets.h"

namespace activeip {

namespace {

enum class Shortcut { Projection, PadZeros };

// `name`: the block's path ("layer1.0"). Its conv1 is a filter group (conv1 – bn1 – conv2):
// the residual sum never sees those channels, so structured pruning may narrow them.
std::unique_ptr<Layer> basic_block(int in, int out, int stride, Shortcut kind, const NetSpec& spec,
                                   const std::string& name, std::vector<FilterGroup>& groups) {
  const int mid = conv_width(spec, name + ".conv1", out);
  groups.push_back({name + ".conv1", name + ".bn1", name + ".conv2"});
  auto main = std::make_unique<Sequential>();
  main->add("conv1", std::make_unique<Conv2d>(in, mid, 3, stride, 1, false));
  main->add("bn1", std::make_unique<BatchNorm2d>(mid));
  main->add("relu", std::make_unique<ReLU>());
  main->add("conv2", std::make_unique<Conv2d>(mid, out, 3, 1, 1, false));
  main->add("bn2", std::make_unique<BatchNorm2d>(out));
  if (stride == 1 && in == out) return std::make_unique<Residual>(std::move(main), nullptr);
  if (kind == Shortcut::PadZeros) {
    const int extra = out - in;
    return std::make_unique<Residual>(std::move(main),
                                      std::make_unique<PadShortcut>(stride, extra / 2, extra - extra / 2), "shortcut");
  }
  auto down = std::make_unique<Sequential>();
  down->add(std::make_unique<Conv2d>(in, out, 1, stride, 0, false));
  down->add(std::make_unique<BatchNorm2d>(out));
  return std::make_unique<Residual>(std::move(main), std::move(down), "downsample");
}

std::unique_ptr<Network> build(const std::string& name, const NetSpec& spec, const std::vector<int>& widths,
                               const std::vector<int>& blocks, Shortcut kind) {
  auto net = std::make_unique<Sequential>();
  net->add("conv1", std::make_unique<Conv2d>(spec.C, widths[0], 3, 1, 1, false));
  net->add("bn1", std::make_unique<BatchNorm2d>(widths[0]));
  net->add("relu", std::make_unique<ReLU>());
  int in = widths[0];
  std::vector<FilterGroup> groups;
  for (size_t stage = 0; stage < widths.size(); ++stage) {
    const std::string layer_name = "layer" + std::to_string(stage + 1);
    auto layer = std::make_unique<Sequential>();
    for (int b = 0; b < blocks[stage]; ++b) {
      const int stride = (stage > 0 && b == 0) ? 2 : 1;
      layer->add(basic_block(in, widths[stage], stride, kind, spec, layer_name + "." + std::to_string(b), groups));
      in = widths[stage];
    }
    net->add(layer_name, std::move(layer));
  }
  net->add("avgpool", std::make_unique<GlobalAvgPool>());
  net->add("fc", std::make_unique<Linear>(in, spec.num_classes));
  return std::make_unique<Network>(
      NetInfo{name, spec.H, spec.W, spec.C, spec.num_classes, std::move(groups), spec.channels}, std::move(net));
}

}  // namespace

std::unique_ptr<Network> make_resnet(const std::string& name, const NetSpec& spec) {
  static const std::map<std::string, std::vector<int>> imagenet_style = {{"resnet18", {2, 2, 2, 2}},
                                                                         {"resnet34", {3, 4, 6, 3}}};
  static const std::map<std::string, int> cifar_style = {{"resnet20", 3}, {"resnet32", 5}, {"resnet56", 9}};
  if (auto it = imagenet_style.find(name); it != imagenet_style.end())
    return build(name, spec, {64, 128, 256, 512}, it->second, Shortcut::Projection);
  if (auto it = cifar_style.find(name); it != cifar_style.end()) {
    const int n = it->second;
    return build(name, spec, {16, 32, 64}, {n, n, n}, Shortcut::PadZeros);
  }
  ENSURE(false, "unknown ResNet '%s'", name.c_str());
  return nullptr;
}

}  // namespace activeip
