// Fine-tuning modes.
#include "attacks/finetune.h"

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

Tensor prepare_finetune(Network& net, Context& ctx, FinetuneMode mode, uint64_t seed) {
  const std::string last = net.last_layer_prefix();
  if (mode == FinetuneMode::RTLL || mode == FinetuneMode::RTAL) net.reinit(ctx, last, seed);
  if (mode == FinetuneMode::FTAL || mode == FinetuneMode::RTAL) return Tensor();
  return parameter_flags(net, [&](const std::string& name) { return name.rfind(last, 0) == 0; });
}

}  // namespace activeip
