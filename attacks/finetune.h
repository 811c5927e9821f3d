// Fine-tuning attacks after Adi et al. 2018, on the engine's side: FTLL fine-tunes the last
// layer only, FTAL all layers, RTLL re-initialises the last layer and trains it only, RTAL
// re-initialises it and trains all layers. The attacker holds a seeded fraction of the
// training split (seeded_subset, engine/data/dataset.h). The frozen layers' BatchNorm running
// statistics still update in training mode, as with requires_grad=False in PyTorch; their
// parameters do not move.
#pragma once

#include <string>

#include "engine/data/dataset.h"
#include "engine/nn/network.h"

namespace activeip {

enum class FinetuneMode { FTLL, FTAL, RTLL, RTAL };
FinetuneMode parse_finetune_mode(const std::string& name);  // ftll | ftal | rtll | rtal
const char* finetune_mode_name(FinetuneMode m);

// Readies `net` for `mode`: RTLL/RTAL re-initialise the last layer (Network::reinit with
// `seed`). Returns the trainable flags for Trainer::set_trainable: only the last layer for
// FTLL/RTLL, an undefined tensor (train everything) for FTAL/RTAL.
Tensor prepare_finetune(Network& net, Context& ctx, FinetuneMode mode, uint64_t seed);

}  // namespace activeip
