// The model zoo and its one registry: name → builder. Every net takes 1- or 3-channel
// 28×28 or 32×32 NHWC input and any number of classes; parameter names and shapes
// follow torchvision so checkpoints load into the equivalent PyTorch models.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/nn/network.h"

namespace activeip {

struct NetSpec {
  NetSpec(int H_ = 32, int W_ = 32, int C_ = 3, int num_classes_ = 10, std::map<std::string, int> channels_ = {})
      : H(H_), W(W_), C(C_), num_classes(num_classes_), channels(std::move(channels_)) {}
  int H, W, C, num_classes;
  // Output channels of filter-group convs (NetInfo::filter_groups) narrower than the
  // architecture's: a filter-pruned model. make_net refuses a name that is no group's conv.
  std::map<std::string, int> channels;
};

// The output channels of the filter-group conv `name`: spec.channels' entry when it has one,
// else `width`; Error unless the entry is in [1, width].
int conv_width(const NetSpec& spec, const std::string& name, int width);

// resnet18, resnet34: the CIFAR variant of torchvision's ResNet (3×3 stride-1 stem, no
// max-pool, projection shortcuts "downsample"). resnet20/32/56: He et al.'s CIFAR ResNets
// (16-32-64 channels, 3n basic blocks per stage, parameter-free option-A shortcuts).
std::unique_ptr<Network> make_resnet(const std::string& name, const NetSpec& spec);
// vgg11/13/16/19 with batch norm (torchvision's feature stack, conv bias included) and the
// CIFAR head: a global average pool in place of the fifth max-pool — so that 28×28 inputs
// work (28→14→7→3→1) — then a single Linear(512, classes) "classifier".
std::unique_ptr<Network> make_vgg(const std::string& name, const NetSpec& spec);
// A small convnet for tests and demos.
std::unique_ptr<Network> make_convnet(const NetSpec& spec);

// The registry. Error "unknown net 'x' (known: ...)" for anything else, and for a
// spec.channels entry that names no filter group's conv.
std::unique_ptr<Network> make_net(const std::string& name, const NetSpec& spec);
const std::vector<std::string>& net_names();

}  // namespace activeip
