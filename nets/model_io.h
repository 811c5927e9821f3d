// Loading a model checkpoint: read the metadata, build the net it names from the
// registry, load and validate every tensor. Any mismatch is an Error naming the file.
#pragma once

#include <memory>
#include <string>

#include "engine/checkpoint.h"
#include "nets/nets.h"

namespace activeip {

struct LoadedModel {
  std::unique_ptr<Network> net;
  ModelMeta meta;
};

LoadedModel load_model(const std::string& path, Context& ctx);

}  // namespace activeip
