// Fine-tuning modes and the attacker's data subset.
#include "attacks/finetune.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/core/random.h"
#include "engine/train/optimizer.h"

namespace activeip {

FinetuneMode parse_finetune_mode(const std::string& name) {
  if (name == "ftll") return FinetuneMode::FTLL;
  if (name == "ftal") return FinetuneMode::FTAL;
  if (name == "rtll") return FinetuneMode::RTLL;
  if (name == "rtal") return FinetuneMode::RTAL;
  ENSURE(false, "unknown fine-tuning mode '%s' (known: ftll, ftal, rtll, rtal)", name.c_str());
  return FinetuneMode::FTAL;
}

const char* finetune_mode_name(FinetuneMode m) {
  switch (m) {
    case FinetuneMode::FTLL:
      return "ftll";
    case FinetuneMode::FTAL:
      return "ftal";
    case FinetuneMode::RTLL:
      return "rtll";
    case FinetuneMode::RTAL:
      return "rtal";
  }
  return "?";
}

Dataset seeded_subset(const Dataset& data, double fraction, uint64_t seed) {
  ENSURE(fraction > 0 && fraction <= 1, "--fraction must be in (0, 1], got %g", fraction);
  const int64_t n = data.size();
  const int64_t m = std::min<int64_t>(n, std::max<int64_t>(2, std::llround(fraction * static_cast<double>(n))));
  std::vector<int32_t> pick = Rng(mix_seed(seed, 0xa77ac)).permutation(static_cast<int32_t>(n));
  pick.resize(static_cast<size_t>(m));
  std::sort(pick.begin(), pick.end());
  Dataset out;
  out.name = data.name;
  out.split = data.split;
  out.H = data.H;
  out.W = data.W;
  out.C = data.C;
  out.num_classes = data.num_classes;
  const int64_t image = int64_t{data.H} * data.W * data.C;
  out.images = Tensor::host({m, data.H, data.W, data.C}, DType::U8);
  out.labels = Tensor::host({m}, DType::I32);
  for (int64_t i = 0; i < m; ++i) {
    const int64_t from = pick[static_cast<size_t>(i)];
    std::memcpy(out.images.data<uint8_t>() + i * image, data.images.data<uint8_t>() + from * image,
                static_cast<size_t>(image));
    out.labels.data<int32_t>()[i] = data.labels.data<int32_t>()[from];
  }
  return out;
}

Tensor prepare_finetune(Network& net, Context& ctx, FinetuneMode mode, uint64_t seed) {
  const std::string last = net.last_layer_prefix();
  if (mode == FinetuneMode::RTLL || mode == FinetuneMode::RTAL) net.reinit(ctx, last, seed);
  if (mode == FinetuneMode::FTAL || mode == FinetuneMode::RTAL) return Tensor();
  return parameter_flags(net, [&](const std::string& name) { return name.rfind(last, 0) == 0; });
}

}  // namespace activeip
