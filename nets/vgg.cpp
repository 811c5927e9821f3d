// VGG with batch norm (Simonyan & Zisserman configurations A, B, D, E), as torchvision's
// vgg*_bn feature stack — every conv 3×3 pad 1 with bias, then BN, then ReLU; "M" is a
// 2×2 max-pool — with the CIFAR head: global average pool, then one Linear(512, classes).
// The fifth "M" is left out: the global average pool takes its place, so 28×28 inputs
// (1×1 after the fourth pool) work as well as 32×32 (2×2 after the fourth pool).
#include <map>
#include <string>

#include "engine/nn/layers.h"
#include "nets/nets.h"

namespace activeip {

std::unique_ptr<Network> make_vgg(const std::string& name, const NetSpec& spec) {
  constexpr int M = 0;  // max-pool marker
  static const std::map<std::string, std::vector<int>> configs = {
      {"vgg11", {64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M}},
      {"vgg13", {64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M}},
      {"vgg16", {64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M}},
      {"vgg19", {64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512, 512, M}},
  };
  const auto it = configs.find(name);
  ENSURE(it != configs.end(), "unknown VGG '%s'", name.c_str());
  const std::vector<int>& cfg = it->second;

  // Every conv is a filter group, read by the next conv or, for the last, by the classifier.
  auto features = std::make_unique<Sequential>();
  std::vector<FilterGroup> groups;
  int in = spec.C;
  for (size_t i = 0; i + 1 < cfg.size(); ++i) {  // the last entry is the fifth "M"
    if (cfg[i] == M) {
      features->add(std::make_unique<MaxPool2d>(2, 2));
      continue;
    }
    const std::string conv = "features." + std::to_string(features->size());
    if (!groups.empty()) groups.back().consumer = conv;
    groups.push_back({conv, "features." + std::to_string(features->size() + 1), ""});
    const int width = conv_width(spec, conv, cfg[i]);
    features->add(std::make_unique<Conv2d>(in, width, 3, 1, 1, true));
    features->add(std::make_unique<BatchNorm2d>(width));
    features->add(std::make_unique<ReLU>());
    in = width;
  }
  groups.back().consumer = "classifier";
  auto net = std::make_unique<Sequential>();
  net->add("features", std::move(features));
  net->add("avgpool", std::make_unique<GlobalAvgPool>());
  net->add("classifier", std::make_unique<Linear>(in, spec.num_classes, Init::Normal001, Init::Zeros));
  return std::make_unique<Network>(
      NetInfo{name, spec.H, spec.W, spec.C, spec.num_classes, std::move(groups), spec.channels}, std::move(net));
}

}  // namespace activeip
