// Arming protected training, shared by `train --protect`, `enroll` and the overwriting
// attack (`finetune --overwrite-key`): the owner key, the registry, the ProtectComposer over the
// users to embed, and the protection record the checkpoint and the registry keep.
// Create the Context before a Protection: the composer holds device tensors from its allocator,
// so the protection must be destroyed first.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/io/checkpoint.h"
#include "engine/train/trainer.h"
#include "fingerprint/protect.h"

namespace activeip::cli {

struct Protection {
  std::optional<OwnerKey> key;
  std::optional<Registry> registry;
  std::unique_ptr<ProtectComposer> composer;
  ProtectionInfo info;
};

// Loads the key and opens the registry (which must not already serve another key), after
// validating the rates; before any data is read. Option errors are usage errors.
Protection open_protection(const std::string& key, const std::string& registry, const ProtectConfig& config);

// Builds the composer over `users` under `scheme`, with users' codes of `code_length` labels
// (0: the scheme's choice for the registry's codes), seeded with the training seed, and writes
// what the checkpoint and --resume record: train.mixer and meta.protection, scheme and code
// length included. Error naming the user whose code the code length cannot hold. `parent`:
// the id of the model this one derives from, or empty.
void arm_protection(Protection& p, const Scheme& scheme, int code_length, const std::vector<std::string>& users,
                    const DataSplits& data, const ProtectConfig& config, TrainConfig& train, ModelMeta& meta,
                    const std::string& parent, const std::string& registry_path);

// Records the written model `out` in the protection's registry, with what the end of
// training measured (nullptr: nothing measured, every user counts as embedded); returns its id.
std::string record_protected(Protection& p, const std::string& out, const std::string& net, const std::string& dataset,
                             const EmbeddingCheck* check);

}  // namespace activeip::cli
