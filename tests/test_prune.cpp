// Pruning on the CPU: the magnitude keys order ties by position, so every method zeroes
// exactly round(S·n) weights (globally, or per layer) and exactly the smallest ones; the mask
// file round trip; fine-pruning's channel ranking and classifier-column mask; and a masked
// training run (Trainer::set_mask) keeping the pruned weights at exactly zero, with --resume
// comparing the mask.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "engine/prune.h"
#include "engine/trainer.h"
#include "kernels/prune.h"
#include "nets/nets.h"
#include "tests/test_util.h"
#include "tests/train_test_util.h"

using namespace activeip;

using test::host_floats;
using test::small_config;

namespace {

int64_t zeros_in(const std::vector<float>& v, int64_t begin, int64_t n) {
  int64_t z = 0;
  for (int64_t i = begin; i < begin + n; ++i) z += v[static_cast<size_t>(i)] == 0.0f;
  return z;
}

}  // namespace

TEST_CASE("prune kernels: ties are broken by position, so exactly k are pruned") {
  // Many equal magnitudes of both signs, zeros included.
  const size_t n = 1001;
  std::vector<float> w(n);
  for (size_t i = 0; i < n; ++i) w[i] = static_cast<float>(static_cast<int>(i % 7) - 3) * 0.25f;
  std::vector<uint64_t> keys(n);
  magnitude_keys_cpu(n, w.data(), 5, keys.data());
  for (size_t k : {size_t{1}, size_t{100}, size_t{143}, size_t{500}, n - 1}) {
    const uint64_t t = kth_smallest_key_cpu(n, keys.data(), k);
    std::vector<float> mask(n);
    threshold_mask_cpu(n, w.data(), 5, t, mask.data());
    size_t pruned = 0;
    float max_pruned = 0, min_kept = INFINITY;
    for (size_t i = 0; i < n; ++i) {
      pruned += mask[i] == 0.0f;
      if (mask[i] == 0.0f) max_pruned = std::max(max_pruned, std::fabs(w[i]));
      if (mask[i] != 0.0f) min_kept = std::min(min_kept, std::fabs(w[i]));
    }
    CHECK(pruned == k);
    CHECK(max_pruned <= min_kept);
    // Among equal magnitudes the earlier positions go first.
    for (size_t i = 0; i < n; ++i)
      for (size_t j = i + 1; j < n && j < i + 50; ++j)
        if (std::fabs(w[i]) == std::fabs(w[j]) && mask[j] == 0.0f) REQUIRE(mask[i] == 0.0f);
  }
  std::vector<float> all(n);
  threshold_mask_cpu(n, w.data(), 0, kPruneAll, all.data());
  CHECK(zeros_in(all, 0, static_cast<int64_t>(n)) == static_cast<int64_t>(n));
  threshold_mask_cpu(n, w.data(), 0, kKeepAll, all.data());
  CHECK(zeros_in(all, 0, static_cast<int64_t>(n)) == 0);
}

TEST_CASE("prune: global and per-layer magnitude masks reach the sparsity exactly") {
  Context ctx;
  auto net = make_net("resnet20", {32, 32, 3, 10});
  net->build(ctx, 3);
  const std::vector<float> w = host_floats(net->params(), ctx);
  for (const double s : {0.0, 0.1, 0.37, 0.5, 0.9, 1.0})
    for (const bool per_layer : {false, true}) {
      CAPTURE(s);
      CAPTURE(per_layer);
      const std::vector<float> mask = host_floats(magnitude_mask(*net, ctx, s, per_layer), ctx);
      int64_t candidates = 0, pruned = 0;
      float max_pruned = 0, min_kept = INFINITY;
      for (const NamedSlot& slot : net->slots()) {
        const int64_t n = shape_numel(slot.slot.shape);
        if (slot.slot.kind != SlotKind::Parameter) continue;
        const int64_t z = zeros_in(mask, slot.offset, n);
        if (!prunable(slot)) {
          CHECK_MESSAGE(z == 0, slot.name << " is not prunable but masked");
          continue;
        }
        candidates += n;
        pruned += z;
        if (per_layer) CHECK_MESSAGE(z == std::llround(s * static_cast<double>(n)), slot.name);
        for (int64_t i = slot.offset; i < slot.offset + n; ++i) {
          const float a = std::fabs(w[static_cast<size_t>(i)]);
          if (mask[static_cast<size_t>(i)] == 0.0f)
            max_pruned = std::max(max_pruned, a);
          else
            min_kept = std::min(min_kept, a);
        }
        if (per_layer) max_pruned = 0, min_kept = INFINITY;  // smallest within each layer only
      }
      if (!per_layer) {
        CHECK(pruned == std::llround(s * static_cast<double>(candidates)));
        CHECK(max_pruned <= min_kept);
      }
      const MaskStats st = mask_stats(*net, ctx, magnitude_mask(*net, ctx, s, per_layer));
      CHECK(st.pruned == pruned);
      CHECK(st.candidates == candidates);
    }
  CHECK_THROWS_AS(magnitude_mask(*net, ctx, 1.5, false), Error);
}

TEST_CASE("prune: fine-pruning ranks channels and masks the classifier's input columns") {
  const std::vector<double> act = {0.5, 0.1, 0.1, 0.0, 2.0, 0.1};
  CHECK(least_active_channels(act, 0.5) == std::vector<int>{1, 2, 3});  // ties: lower channel first
  CHECK(least_active_channels(act, 0.0).empty());
  CHECK(least_active_channels(act, 1.0).size() == act.size());

  Context ctx;
  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, 3);
  const DataSplits data = load_data({"synthetic", "", 64, 64});
  std::vector<int32_t> idx(40);
  for (int i = 0; i < 40; ++i) idx[static_cast<size_t>(i)] = i;
  const std::vector<double> mean = mean_feature_activation(*net, ctx, data.train, data.norm, idx, 16);
  REQUIRE(mean.size() == 128);          // convnet's last stage
  for (double m : mean) CHECK(m >= 0);  // after ReLU and average pooling
  // The same statistics from the logits' inputs, one record at a time, in double.
  std::vector<double> ref(128, 0.0);
  for (int32_t i : idx) {
    predict(*net, ctx, data.train, data.norm, {i}, 1, [&](Context& c, Tensor& xb, int64_t) {
      const Tensor f = net->forward_features(c, xb);
      for (int ch = 0; ch < 128; ++ch) ref[static_cast<size_t>(ch)] += f.data<float>()[ch];
    });
  }
  for (size_t c = 0; c < 128; ++c) CHECK(mean[c] == doctest::Approx(ref[c] / 40).epsilon(1e-5));

  const std::vector<int> channels = least_active_channels(mean, 0.25);
  CHECK(channels.size() == 32);
  const std::vector<float> mask = host_floats(feature_channel_mask(*net, channels), ctx);
  const NamedSlot& fc = net->slot("fc.weight");
  int64_t z = 0;
  for (size_t i = 0; i < mask.size(); ++i) z += mask[i] == 0.0f;
  CHECK(z == 32 * 10);
  for (int c : channels)
    for (int o = 0; o < 10; ++o) CHECK(mask[static_cast<size_t>(fc.offset + o * 128 + c)] == 0.0f);
}

TEST_CASE("prune: the mask file round trip and its refusals") {
  Context ctx;
  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, 3);
  const test::TempDir dir;
  CHECK(mask_path("a/m.safetensors") == "a/m.mask.safetensors");
  const Tensor mask = magnitude_mask(*net, ctx, 0.3, false);
  save_mask(dir / "m.mask.safetensors", *net, ctx, mask, {{"method", "global"}});
  const Tensor back = load_mask(dir / "m.mask.safetensors", *net);
  CHECK(host_floats(back, ctx) == host_floats(mask, ctx));
  CHECK(mask_violations(*net, ctx, mask) > 0);
  apply_mask(*net, ctx, mask);
  CHECK(mask_violations(*net, ctx, mask) == 0);
  auto other = make_net("resnet20", {32, 32, 3, 10});
  other->build(ctx, 3);
  CHECK_THROWS_WITH_AS(load_mask(dir / "m.mask.safetensors", *other), doctest::Contains("not a resnet20"), Error);
}

TEST_CASE("prune: masked weights stay exactly zero through training, and --resume compares the mask") {
  const DataSplits data = load_data({"synthetic", "", 128, 64});
  const test::TempDir dir;
  const std::string path = dir / "masked.safetensors";
  Context ctx;
  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, 4);
  const Tensor mask = magnitude_mask(*net, ctx, 0.6, true);
  const std::vector<float> m = host_floats(mask, ctx);
  Trainer t(*net, ctx, data, small_config(2));
  t.set_mask(mask);
  t.train_epoch({});
  std::vector<float> w = host_floats(net->params(), ctx);
  int64_t bad = 0, moved = 0;
  for (size_t i = 0; i < w.size(); ++i) bad += m[i] == 0.0f && w[i] != 0.0f;
  CHECK(bad == 0);
  t.save(path, ModelMeta::describe(*net, "synthetic", data.norm));
  t.train_epoch({});
  w = host_floats(net->params(), ctx);
  for (size_t i = 0; i < w.size(); ++i) bad += m[i] == 0.0f && w[i] != 0.0f;
  CHECK(bad == 0);

  {  // resumed with the same mask: bit for bit the same weights
    auto r = make_net("convnet", {32, 32, 3, 10});
    r->build(ctx, 99);
    Trainer c(*r, ctx, data, small_config(2));
    c.set_mask(mask);
    c.resume(path);
    c.train_epoch({});
    const std::vector<float> wr = host_floats(r->params(), ctx);
    for (size_t i = 0; i < w.size(); ++i) moved += wr[i] != w[i];
    CHECK(moved == 0);
  }
  {  // without it, or with another, the resume is refused
    auto r = make_net("convnet", {32, 32, 3, 10});
    r->build(ctx, 4);
    Trainer c(*r, ctx, data, small_config(2));
    CHECK_THROWS_WITH_AS(c.resume(path), doctest::Contains("pruning mask"), Error);
    c.set_mask(magnitude_mask(*r, ctx, 0.5, true));
    CHECK_THROWS_WITH_AS(c.resume(path), doctest::Contains("mask of the checkpoint differs"), Error);
  }
}
