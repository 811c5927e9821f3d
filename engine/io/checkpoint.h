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

// A model and a file of its own beside it (its training state, its pruning mask) change as one
// unit, in three atomic steps: the companion is written as COMPANION.pending, recording the
// SHA-256 of the model's tensor bytes (metadata "model_sha256"); then the model; then the
// pending file is renamed over COMPANION. Killed before the model is in place, the old model
// and its companion remain (with a pending file of weights never written, which nothing reads
// and the next write replaces); killed after it, the new model and its pending companion do,
// and finish_model_pair() completes the write. Either way a model is never beside another
// model's companion.
void write_model_pair(const SafetensorsWriter& model, const std::string& model_path, SafetensorsWriter companion,
                      const std::string& companion_path);
std::string pending_path(const std::string& companion_path);  // COMPANION.pending
// The last step of a write_model_pair stopped before it: when COMPANION.pending records
// `model_sha256` (the tensor digest of the model beside it), it is renamed over COMPANION.
void finish_model_pair(const std::string& model_sha256, const std::string& companion_path);

// Copies every tensor of `net` from the file (converting OIHW → KRSC); Error naming the
// file and tensor for a missing or unexpected tensor, a wrong dtype or a wrong shape.
void load_weights(const SafetensorsReader& file, Network& net, Context& ctx);

}  // namespace activeip
