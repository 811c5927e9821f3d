// Loading a model checkpoint: read the metadata, build the net it names from the
// registry, load and validate every tensor. Any mismatch is an Error naming the file.
#pragma once

#include <memory>
#include <string>

#include "engine/data/dataset.h"
#include "engine/io/checkpoint.h"
#include "nets/nets.h"

namespace activeip {

struct LoadedModel {
  std::unique_ptr<Network> net;
  ModelMeta meta;
};

LoadedModel load_model(const std::string& path, Context& ctx);

// The test split of `spec` for the model at `model` (described by `meta`), after checking that
// the model takes its images and has an output for each of its classes; the training split is
// not read (its files need not exist).
DataSplits load_test_split(const ModelMeta& meta, const std::string& model, DataSpec spec);

}  // namespace activeip
