// Model checkpoints as safetensors: tensor names and layouts as torchvision's state_dict
// (conv weights OIHW, BN running stats, num_batches_tracked as I64 scalars), and the
// metadata that lets `activeip` rebuild the net — net, classes, input shape,
// normalisation, dataset, epoch, training config, protection info (never a key).
#pragma once

#include <map>
#include <string>

#include "engine/data/dataset.h"
#include "engine/io/safetensors.h"
#include "engine/nn/network.h"

namespace activeip {

struct ModelMeta {
  std::string net, dataset;
  int H = 0, W = 0, C = 0, num_classes = 0;
  Normalization norm;
  int64_t epoch = 0;          // completed training epochs
  std::string config = "{}";  // JSON: the training options
  std::string protection;     // JSON, empty when the model is not protected
  // Filter-pruned widths (NetInfo::channels), "channels" in the file when not empty.
  std::map<std::string, int> channels;

  // What describes `net` (its widths too) and its data; epoch, config and protection keep
  // their defaults.
  static ModelMeta describe(const Network& net, const std::string& dataset, const Normalization& norm);
  std::map<std::string, std::string> to_metadata() const;
  // Error naming the file and the key when a field is missing or malformed.
  static ModelMeta from_metadata(const std::map<std::string, std::string>& m, const std::string& path);
};

// The checkpoint of the network's parameters, buffers and counters with `meta`, ready to write.
SafetensorsWriter model_writer(Network& net, Context& ctx, const ModelMeta& meta);
// Atomic write of model_writer(net, ctx, meta).
void save_model(const std::string& path, Network& net, Context& ctx, const ModelMeta& meta);

// Copies every tensor of `net` from the file (converting OIHW → KRSC); Error naming the
// file and tensor for a missing or unexpected tensor, a wrong dtype or a wrong shape.
void load_weights(const SafetensorsReader& file, Network& net, Context& ctx);

}  // namespace activeip
