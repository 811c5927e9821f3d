// Pruning masks over the flat parameter buffer (1 keep / 0 pruned): what Sgd::set_mask holds
// at zero, whatever chose them. A mask is stored beside its model as
// NAME.mask.safetensors.
#pragma once

#include <map>
#include <string>

#include "engine/io/safetensors.h"
#include "engine/nn/network.h"

namespace activeip {

// Conv and linear weights: what magnitude pruning may zero.
bool prunable(const NamedSlot& s);

struct MaskStats {
  int64_t candidates = 0, pruned = 0;  // conv/linear weights, and how many of them are masked
  int64_t masked = 0;                  // masked parameters of any kind
  double sparsity() const { return candidates ? static_cast<double>(pruned) / static_cast<double>(candidates) : 0; }
};
MaskStats mask_stats(const Network& net, Context& ctx, const Tensor& mask);
// Multiplies the network's parameters by the mask (host or ctx's device), once.
void apply_mask(Network& net, Context& ctx, const Tensor& mask);
// Parameters the mask prunes that are not zero in the network (0 when the mask holds).
int64_t mask_violations(Network& net, Context& ctx, const Tensor& mask);

// The mask (host, F32) that zeroes, in every convolution, the round(fraction·K) of its K
// filters with the smallest L1 norm (ties: the lower index first): L1 filter pruning (Li et
// al. 2017) as a mask, the network keeping its widths.
Tensor filter_mask(Network& net, Context& ctx, double fraction);

// model.safetensors → model.mask.safetensors.
std::string mask_path(const std::string& model_path);
// The mask as a file (U8, one per parameter) with the net's name and `extra` metadata, ready to
// write (beside its model: write_model_pair).
SafetensorsWriter mask_writer(const Network& net, Context& ctx, const Tensor& mask,
                              const std::map<std::string, std::string>& extra = {});
// The mask written by save_mask, as host F32; Error naming the file when it is malformed or
// made for another net.
Tensor load_mask(const std::string& path, const Network& net);

}  // namespace activeip
