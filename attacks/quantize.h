// The quantization attack: what a thief does to a stolen model before deploying it. Every conv
// and linear weight (engine/train/mask.h's prunable(); biases and batch norms stay float, as
// weight-only post-training quantization leaves them) is rounded to a signed B-bit integer
// grid, symmetric around zero: per output channel (each filter, each classifier row) or per
// tensor, scale = max|w| / (2^(B−1) − 1), w ← clamp(round(w / scale), −(2^(B−1) − 1),
// 2^(B−1) − 1) · scale (TensorRT's symmetric range; a row of zeros stays zero). The weights
// stay float tensors holding the dequantized values, so every command reads the result.
#pragma once

#include <string>

#include "engine/nn/network.h"

namespace activeip {

enum class QuantizeGranularity { Channel, Tensor };
QuantizeGranularity parse_quantize_granularity(const std::string& name);  // channel | tensor

struct QuantizeSpec {
  int bits = 8;  // 2 … 16
  QuantizeGranularity granularity = QuantizeGranularity::Channel;
};

struct QuantizeStats {
  int tensors = 0;            // weight tensors quantized
  int64_t weights = 0;        // their elements
  double relative_error = 0;  // ‖w_q − w‖ / ‖w‖ over all of them
};

// Quantizes the network's weights in place (through a host copy); Error for bits outside 2 … 16.
QuantizeStats quantize_weights(Network& net, Context& ctx, const QuantizeSpec& spec);

}  // namespace activeip
