// The pruning attacks: how each method chooses what to remove; their masks (1 keep / 0
// pruned, engine/train/mask.h) go to Sgd::set_mask. Magnitude pruning considers the conv and
// linear weights (not biases, not BN): the global method zeroes the round(S·n) smallest |w| of
// all of them together, the per-layer method the round(S·n_l) smallest of each; ties are
// broken by position (kernels/prune.h), so the count is always exact. Fine-pruning (Liu et al.
// 2018) removes the round(S·C) channels of the last convolutional stage least active on clean
// data, by zeroing the classifier's input columns that read them (the channels then reach
// nothing). On CUDA the keys, the threshold (a CUB radix sort) and the mask are computed on
// the device. Structured (filter) pruning removes whole filters instead: the result is a
// narrower network with no mask.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/nn/network.h"
#include "engine/train/mask.h"

namespace activeip {

enum class PruneMethod { Global, Layer, Filter, FinePrune };
PruneMethod parse_prune_method(const std::string& name);  // global | layer | filter | fineprune
const char* prune_method_name(PruneMethod m);

// The magnitude-pruning mask for `sparsity` ∈ [0, 1], flat over the parameters, on the
// network's device (ctx's).
Tensor magnitude_mask(Network& net, Context& ctx, double sparsity, bool per_layer);

// Mean activation of each channel of the features the classifier reads
// (Network::forward_features) over the records `indices` of `data`, eval mode.
std::vector<double> mean_feature_activation(Network& net, Context& ctx, const Dataset& data, const Normalization& norm,
                                            const std::vector<int32_t>& indices, int batch);
// The round(sparsity·C) channels with the smallest activation (ties: lower channel first),
// in ascending channel order.
std::vector<int> least_active_channels(const std::vector<double>& activation, double sparsity);
// The mask that zeroes the classifier's input columns of `channels` (host, F32).
Tensor feature_channel_mask(const Network& net, const std::vector<int>& channels);

// Structured pruning (after Li et al. 2017): in each filter group (NetInfo::filter_groups),
// the round(S·K) of the conv's K filters with the smallest L1 norm (ties: lower index first;
// one filter always stays). Returns the kept filters of each group's conv, ascending.
std::map<std::string, std::vector<int>> filters_to_keep(Network& net, Context& ctx, double sparsity);
// How many filters `keep` holds for each conv: the NetSpec::channels of the narrower net.
std::map<std::string, int> kept_widths(const std::map<std::string, std::vector<int>>& keep);
// Copies every parameter, buffer and counter of `from` into `to` (built, the same net with
// the widths of kept_widths(keep)): each group's kept filters (conv weight rows and bias),
// their batch-norm channels, and the matching input channels of the layer that reads them.
// Error naming the tensor when a shape does not match.
void copy_kept_filters(Network& from, Context& ctx, const std::map<std::string, std::vector<int>>& keep, Network& to);

}  // namespace activeip
