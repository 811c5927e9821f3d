// A small convnet for tests and quick demos: three conv–BN–ReLU stages (32, 64, 128
// channels, max-pool after the first two), global average pool, fc. ~94k parameters.
#include <string>

#include "engine/nn/layers.h"
#include "nets/nets.h"

namespace activeip {

std::unique_ptr<Network> make_convnet(const NetSpec& spec) {
  auto features = std::make_unique<Sequential>();
  std::vector<FilterGroup> groups;  // every conv, read by the next one or by fc
  int in = spec.C;
  const int widths[] = {32, 64, 128};
  for (int stage = 0; stage < 3; ++stage) {
    const std::string conv = "features." + std::to_string(features->size());
    if (!groups.empty()) groups.back().consumer = conv;
    groups.push_back({conv, "features." + std::to_string(features->size() + 1), ""});
    const int width = conv_width(spec, conv, widths[stage]);
    features->add(std::make_unique<Conv2d>(in, width, 3, 1, 1, false));
    features->add(std::make_unique<BatchNorm2d>(width));
    features->add(std::make_unique<ReLU>());
    if (stage < 2) features->add(std::make_unique<MaxPool2d>(2, 2));
    in = width;
  }
  groups.back().consumer = "fc";
  auto net = std::make_unique<Sequential>();
  net->add("features", std::move(features));
  net->add("avgpool", std::make_unique<GlobalAvgPool>());
  net->add("fc", std::make_unique<Linear>(in, spec.num_classes));
  return std::make_unique<Network>(
      NetInfo{"convnet", spec.H, spec.W, spec.C, spec.num_classes, std::move(groups), spec.channels}, std::move(net));
}

}  // namespace activeip
