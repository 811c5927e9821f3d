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
#include "fingerprint/lock.h"
#include "fingerprint/protect.h"

namespace activeip::cli {

struct Protection {
  std::optional<OwnerKey> key;
  std::optional<Registry> registry;
  std::unique_ptr<ProtectComposer> composer;
  std::unique_ptr<LockComposer> lock;  // lock mode: this composer in place of `composer`
  ProtectionInfo info;
  std::vector<std::string> revoke;  // active users the registry revokes when the model is recorded
  BatchComposer* mixer() const { return lock ? static_cast<BatchComposer*>(lock.get()) : composer.get(); }
  const Scheme& scheme() const { return lock ? lock->scheme() : composer->scheme(); }
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

// Lock mode's arming (fingerprint/lock.h): the LockComposer over the `active` users (whose
// patterns unlock) and the `revoked` ones (whose patterns are refused), the owner's trigger
// under `scheme`, and the record, as arm_protection() writes it.
void arm_lock(Protection& p, const Scheme& scheme, int code_length, const std::vector<std::string>& active,
              const std::vector<std::string>& revoked, const DataSplits& data, double poison_rate,
              const LockConfig& lock, TrainConfig& train, ModelMeta& meta, const std::string& parent);

// The lock pattern that token `token_path` holds for the model at `model_path` (by its id);
// Error naming both when the token holds nothing for it or the model is not locked.
Fingerprint token_lock(const std::string& token_path, const std::string& model_path);
// A BatchAlter that stamps `lock` on every row of the normalised batches of a model described
// by `meta`, up to `batch` rows each; `stamper` and `ids` hold its state and must outlive it.
BatchAlter lock_stamp(Context& ctx, const Fingerprint& lock, const ModelMeta& meta, int batch,
                      std::optional<Stamper>& stamper, std::vector<int32_t>& ids);

// Records the written model `out` in the protection's registry, with what the end of
// training measured (nullptr: nothing measured, every user counts as embedded); returns its id.
std::string record_protected(Protection& p, const std::string& out, const std::string& net, const std::string& dataset,
                             const EmbeddingCheck* check);

}  // namespace activeip::cli
