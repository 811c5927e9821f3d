// The model zoo and its one registry: name → builder. Every net takes 1- or 3-channel
// 28×28 or 32×32 NHWC input and any number of classes; parameter names and shapes
// follow torchvision so checkpoints load into the equivalent PyTorch models.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/network.h"

namespace activeip {

struct NetSpec {
  int H = 32, W = 32, C = 3, num_classes = 10;
};

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

// The registry. Error "unknown net 'x' (known: ...)" for anything else.
std::unique_ptr<Network> make_net(const std::string& name, const NetSpec& spec);
const std::vector<std::string>& net_names();

}  // namespace activeip
