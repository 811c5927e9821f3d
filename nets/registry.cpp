// The one table from net name to builder.
#include <algorithm>
#include <functional>
#include <utility>

#include "nets/nets.h"

namespace activeip {

namespace {
using Builder = std::function<std::unique_ptr<Network>(const std::string&, const NetSpec&)>;

const std::vector<std::pair<std::string, Builder>>& table() {
  static const std::vector<std::pair<std::string, Builder>> t = {
      {"resnet18", make_resnet}, {"resnet34", make_resnet},
      {"resnet20", make_resnet}, {"resnet32", make_resnet},
      {"resnet56", make_resnet}, {"vgg11", make_vgg},
      {"vgg13", make_vgg},       {"vgg16", make_vgg},
      {"vgg19", make_vgg},       {"convnet", [](const std::string&, const NetSpec& s) { return make_convnet(s); }},
  };
  return t;
}
}  // namespace

const std::vector<std::string>& net_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& [name, builder] : table()) n.push_back(name);
    return n;
  }();
  return names;
}

int conv_width(const NetSpec& spec, const std::string& name, int width) {
  const auto it = spec.channels.find(name);
  if (it == spec.channels.end()) return width;
  ENSURE(it->second >= 1 && it->second <= width, "%s: %d output channels recorded, must be 1 to %d", name.c_str(),
         it->second, width);
  return it->second;
}

std::unique_ptr<Network> make_net(const std::string& name, const NetSpec& spec) {
  for (const auto& [n, builder] : table()) {
    if (n != name) continue;
    std::unique_ptr<Network> net = builder(name, spec);
    for (const auto& channels : spec.channels) {
      const std::string& conv = channels.first;  // a plain reference: lambdas capture it (clang < 16)
      const auto& groups = net->info().filter_groups;
      ENSURE(std::any_of(groups.begin(), groups.end(), [&](const FilterGroup& g) { return g.conv == conv; }),
             "%s has no prunable conv '%s' (channels recorded for it)", name.c_str(), conv.c_str());
    }
    return net;
  }
  std::string known;
  for (const auto& n : net_names()) known += (known.empty() ? "" : ", ") + n;
  ENSURE(false, "unknown net '%s' (known: %s)", name.c_str(), known.c_str());
  return nullptr;
}

}  // namespace activeip
