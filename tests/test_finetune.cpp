// Fine-tuning attacks on the CPU: each mode freezes and re-initialises exactly the right
// parameters (before/after buffers compared bit for bit), re-initialisation is seeded,
// freezing by name prefix, the attacker's seeded subset, and --resume comparing the flags.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <string>

#include "attacks/finetune.h"
#include "engine/train/optimizer.h"
#include "engine/train/trainer.h"
#include "nets/nets.h"
#include "tests/test_util.h"
#include "tests/train_test_util.h"

using namespace activeip;

using test::host_floats;
using test::small_config;

namespace {

// Per parameter tensor: did any element change between a and b?
std::map<std::string, bool> changed(const Network& net, const std::vector<float>& a, const std::vector<float>& b) {
  std::map<std::string, bool> out;
  for (const NamedSlot& s : net.slots()) {
    if (s.slot.kind != SlotKind::Parameter) continue;
    const auto n = static_cast<size_t>(shape_numel(s.slot.shape));
    const auto o = static_cast<size_t>(s.offset);
    out[s.name] = std::memcmp(a.data() + o, b.data() + o, n * sizeof(float)) != 0;
  }
  return out;
}

bool in_fc(const std::string& name) {
  return name.rfind("fc.", 0) == 0;
}

}  // namespace

TEST_CASE("finetune: each mode freezes and re-initialises exactly the right parameters") {
  const DataSplits data = load_data({"synthetic", "", 128, 64});
  for (const char* name : {"ftll", "ftal", "rtll", "rtal"}) {
    SUBCASE(name) {
      const FinetuneMode mode = parse_finetune_mode(name);
      const bool last_only = mode == FinetuneMode::FTLL || mode == FinetuneMode::RTLL;
      const bool reinit = mode == FinetuneMode::RTLL || mode == FinetuneMode::RTAL;
      Context ctx;
      auto net = make_net("convnet", {32, 32, 3, 10});
      net->build(ctx, 4);
      CHECK(net->last_layer_prefix() == "fc.");
      const std::vector<float> before = host_floats(net->params(), ctx);
      const Tensor trainable = prepare_finetune(*net, ctx, mode, 7);
      const std::vector<float> prepared = host_floats(net->params(), ctx);
      for (const auto& [slot, diff] : changed(*net, before, prepared))
        CHECK_MESSAGE(diff == (reinit && in_fc(slot)), slot);
      CHECK(trainable.defined() == last_only);

      Trainer t(*net, ctx, data, small_config(1));
      if (last_only) t.set_trainable(trainable);
      t.train_epoch({});
      const std::vector<float> after = host_floats(net->params(), ctx);
      for (const auto& [slot, diff] : changed(*net, prepared, after))
        CHECK_MESSAGE(diff == (!last_only || in_fc(slot)), slot);
    }
  }
}

TEST_CASE("finetune: re-initialisation is seeded and follows the layer's initialiser") {
  Context ctx;
  auto a = make_net("convnet", {32, 32, 3, 10}), b = make_net("convnet", {32, 32, 3, 10}),
       c = make_net("convnet", {32, 32, 3, 10});
  a->build(ctx, 4);
  b->build(ctx, 5);
  c->build(ctx, 4);
  CHECK(a->reinit(ctx, "fc.", 11) == 2);  // weight and bias
  b->reinit(ctx, "fc.", 11);
  c->reinit(ctx, "fc.", 12);
  const NamedSlot& w = a->slot("fc.weight");
  const auto fc = [&](Network& n) {
    const std::vector<float> p = host_floats(n.params(), ctx);
    return std::vector<float>(p.begin() + w.offset, p.begin() + w.offset + shape_numel(w.slot.shape));
  };
  CHECK(fc(*a) == fc(*b));  // the re-initialisation depends on its seed only
  CHECK(fc(*a) != fc(*c));
  const double bound = 1.0 / std::sqrt(128.0);  // U(±1/sqrt(fan_in)), PyTorch's Linear
  for (float x : fc(*a)) CHECK(std::fabs(x) <= bound);
  CHECK_THROWS_AS(a->reinit(ctx, "nope.", 1), Error);
}

TEST_CASE("finetune: freezing by name prefix and the trainable flags' checks") {
  const DataSplits data = load_data({"synthetic", "", 64, 64});
  Context ctx;
  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, 4);
  const std::vector<float> before = host_floats(net->params(), ctx);
  Trainer t(*net, ctx, data, small_config(1));
  t.freeze({"features.0.", "features.1."});
  t.train_epoch({});
  for (const auto& [slot, diff] : changed(*net, before, host_floats(net->params(), ctx)))
    CHECK_MESSAGE(diff == !(slot.rfind("features.0.", 0) == 0 || slot.rfind("features.1.", 0) == 0), slot);
  CHECK_THROWS_WITH_AS(freeze_by_prefix(*net, {"layer9."}), doctest::Contains("layer9."), Error);
  Tensor bad = Tensor::host({net->num_parameters()});
  std::fill_n(bad.data<float>(), bad.numel(), 0.5f);
  CHECK_THROWS_WITH_AS(t.set_trainable(bad), doctest::Contains("0 or 1"), Error);
  CHECK_THROWS_AS(t.set_trainable(Tensor::host({3})), Error);
}

TEST_CASE("finetune: --resume compares the frozen layers") {
  const DataSplits data = load_data({"synthetic", "", 64, 64});
  const test::TempDir dir;
  const std::string path = dir / "frozen.safetensors";
  Context ctx;
  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, 4);
  Trainer t(*net, ctx, data, small_config(2));
  t.freeze({"features."});
  t.train_epoch({});
  t.save(path, ModelMeta::describe(*net, "synthetic", data.norm));
  auto r = make_net("convnet", {32, 32, 3, 10});
  r->build(ctx, 4);
  Trainer c(*r, ctx, data, small_config(2));
  CHECK_THROWS_WITH_AS(c.resume(path), doctest::Contains("frozen layers"), Error);
  c.freeze({"features."});
  CHECK_NOTHROW(c.resume(path));
}

TEST_CASE("finetune: the attacker's subset is seeded and sized by the fraction") {
  const DataSplits data = load_data({"synthetic", "", 200, 64});
  const Dataset a = seeded_subset(data.train, 0.33, 1), b = seeded_subset(data.train, 0.33, 1),
                c = seeded_subset(data.train, 0.33, 2);
  CHECK(a.size() == 66);
  CHECK(std::memcmp(a.images.raw(), b.images.raw(), a.images.bytes()) == 0);
  CHECK(std::memcmp(a.images.raw(), c.images.raw(), a.images.bytes()) != 0);
  CHECK(seeded_subset(data.train, 1.0, 3).size() == 200);
  CHECK(seeded_subset(data.train, 0.001, 3).size() == 2);
  CHECK_THROWS_WITH_AS(seeded_subset(data.train, 0.0, 1), doctest::Contains("--fraction"), Error);
  CHECK_THROWS_AS(parse_finetune_mode("bogus"), Error);
}
