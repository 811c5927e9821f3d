// Pruning on the CPU: the magnitude keys order ties by position, so every method zeroes
// exactly round(S·n) weights (globally, or per layer) and exactly the smallest ones; the mask
// file round trip, and a pruned model and its mask written as one unit; fine-pruning's channel ranking and
// classifier-column mask; and a masked training run (Trainer::set_mask) keeping the pruned weights at exactly zero,
// with --resume comparing the mask; filter pruning's L1 ranking, the narrower net it copies into (same outputs when the
// removed filters were dead) and its widths in the model file.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "attacks/prune.h"
#include "attacks/runner.h"
#include "engine/io/checkpoint.h"
#include "engine/train/trainer.h"
#include "kernels/prune.h"
#include "nets/model_io.h"
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

namespace {

// Logits of `net` in eval mode for a fixed random batch of 3.
std::vector<float> eval_logits(Network& net, Context& ctx) {
  const auto x = test::random_floats(static_cast<size_t>(3 * net.info().H * net.info().W * net.info().C), 21, -1, 1);
  net.set_training(false);
  const Tensor y =
      net.forward(ctx, Tensor::borrow(const_cast<float*>(x.data()), net.input_shape(3), DType::F32, Device::cpu()));
  return host_floats(y, ctx);
}

}  // namespace

TEST_CASE("prune: filter pruning removes the smallest-L1 filters, and removing dead filters keeps the outputs") {
  for (const char* name : {"convnet", "resnet20", "vgg11"}) {
    CAPTURE(name);
    Context ctx;
    auto net = make_net(name, {32, 32, 3, 10});
    net->build(ctx, 7);
    {  // running statistics away from their initial values, so that their gathering shows
      const auto x = test::random_floats(static_cast<size_t>(4 * 32 * 32 * 3), 11);
      net->set_training(true);
      net->forward(ctx, Tensor::borrow(const_cast<float*>(x.data()), net->input_shape(4), DType::F32, Device::cpu()));
    }
    // In each group, kill round(0.4·K) filters spread over the conv: zero weights (and bias),
    // and zero BN scale and shift, so the channel is exactly 0 after the batch norm.
    const double sparsity = 0.4;
    std::map<std::string, std::vector<int>> alive;
    float* p = net->params().data<float>();
    for (const FilterGroup& g : net->info().filter_groups) {
      const NamedSlot& w = net->slot(g.conv + ".weight");
      const int K = static_cast<int>(w.slot.shape[0]);
      const int64_t per = shape_numel(w.slot.shape) / K;
      const int dead = static_cast<int>(std::llround(sparsity * K));
      for (int k = 0; k < K; ++k) {
        if ((k * 7) % K >= dead) {  // a permutation of 0..K-1 when gcd(7, K) = 1
          alive[g.conv].push_back(k);
          continue;
        }
        std::fill_n(p + w.offset + k * per, per, 0.0f);
        for (const std::string& slot : {g.conv + ".bias", g.bn + ".weight", g.bn + ".bias"}) {
          const auto& slots = net->slots();
          if (std::any_of(slots.begin(), slots.end(), [&](const NamedSlot& s) { return s.name == slot; }))
            p[net->slot(slot).offset + k] = 0.0f;
        }
      }
      REQUIRE(static_cast<int>(alive[g.conv].size()) == K - dead);
    }
    const auto keep = filters_to_keep(*net, ctx, sparsity);
    CHECK(keep == alive);

    auto narrow = make_net(name, {32, 32, 3, 10, kept_widths(keep)});
    narrow->build(ctx, 1);
    copy_kept_filters(*net, ctx, keep, *narrow);
    CHECK(narrow->num_parameters() < net->num_parameters());
    CHECK(narrow->info().channels == kept_widths(keep));
    const std::vector<float> wide_y = eval_logits(*net, ctx), narrow_y = eval_logits(*narrow, ctx);
    REQUIRE(wide_y.size() == narrow_y.size());
    double scale = 0;
    for (float v : wide_y) scale = std::max(scale, std::fabs(static_cast<double>(v)));
    for (size_t i = 0; i < wide_y.size(); ++i)
      CHECK(narrow_y[i] == doctest::Approx(wide_y[i]).epsilon(1e-4).scale(scale));

    // Sparsity 0 keeps every filter (the copy is the identity); 1 keeps one per group.
    const auto all = filters_to_keep(*net, ctx, 0.0);
    for (const FilterGroup& g : net->info().filter_groups)
      CHECK(static_cast<int64_t>(all.at(g.conv).size()) == net->slot(g.conv + ".weight").slot.shape[0]);
    for (const auto& [conv, kept] : filters_to_keep(*net, ctx, 1.0)) CHECK(kept.size() == 1);
  }
}

TEST_CASE("prune: a filter-pruned model saves its widths and loads back, and bad widths are refused") {
  Context ctx;
  auto net = make_net("resnet20", {32, 32, 3, 10});
  net->build(ctx, 5);
  const auto keep = filters_to_keep(*net, ctx, 0.5);
  auto narrow = make_net("resnet20", {32, 32, 3, 10, kept_widths(keep)});
  narrow->build(ctx, 1);
  copy_kept_filters(*net, ctx, keep, *narrow);
  CHECK(narrow->slot("layer3.2.conv1.weight").slot.shape == Shape{32, 3, 3, 64});
  CHECK(narrow->slot("layer3.2.conv2.weight").slot.shape == Shape{64, 3, 3, 32});
  auto bad = keep;
  bad["layer1.0.conv1"].back() = 16;  // layer1's convs have 16 filters
  CHECK_THROWS_WITH_AS(copy_kept_filters(*net, ctx, bad, *narrow), doctest::Contains("outside its 16 channels"), Error);
  const test::TempDir dir;
  const std::string path = dir / "narrow.safetensors";
  save_model(path, *narrow, ctx, ModelMeta::describe(*narrow, "synthetic", Normalization{{0, 0, 0}, {1, 1, 1}}));
  LoadedModel back = load_model(path, ctx);
  CHECK(back.meta.channels == kept_widths(keep));
  CHECK(eval_logits(*back.net, ctx) == eval_logits(*narrow, ctx));

  CHECK_THROWS_WITH_AS(make_net("resnet20", {32, 32, 3, 10, {{"layer1.0.conv2", 8}}}),
                       doctest::Contains("no prunable conv 'layer1.0.conv2'"), Error);
  CHECK_THROWS_WITH_AS(make_net("resnet20", {32, 32, 3, 10, {{"layer1.0.conv1", 17}}}),
                       doctest::Contains("must be 1 to 16"), Error);
  CHECK_THROWS_WITH_AS(make_net("vgg11", {32, 32, 3, 10, {{"features.0", 0}}}), doctest::Contains("features.0"), Error);
  std::map<std::string, std::string> m =
      ModelMeta::describe(*narrow, "synthetic", {{0, 0, 0}, {1, 1, 1}}).to_metadata();
  m["channels"] = R"({"layer1.0.conv1": "eight"})";
  CHECK_THROWS_WITH_AS(ModelMeta::from_metadata(m, "x.safetensors"), doctest::Contains("channels[layer1.0.conv1]"),
                       Error);
  m["channels"] = "[8]";
  CHECK_THROWS_WITH_AS(ModelMeta::from_metadata(m, "x.safetensors"), doctest::Contains("x.safetensors"), Error);
}

TEST_CASE("prune: the mask file round trip and its refusals") {
  Context ctx;
  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, 3);
  const test::TempDir dir;
  CHECK(mask_path("a/m.safetensors") == "a/m.mask.safetensors");
  const Tensor mask = magnitude_mask(*net, ctx, 0.3, false);
  mask_writer(*net, ctx, mask, {{"method", "global"}}).write(dir / "m.mask.safetensors");
  const Tensor back = load_mask(dir / "m.mask.safetensors", *net);
  CHECK(host_floats(back, ctx) == host_floats(mask, ctx));
  CHECK(mask_violations(*net, ctx, mask) > 0);
  apply_mask(*net, ctx, mask);
  CHECK(mask_violations(*net, ctx, mask) == 0);
  auto other = make_net("resnet20", {32, 32, 3, 10});
  other->build(ctx, 3);
  CHECK_THROWS_WITH_AS(load_mask(dir / "m.mask.safetensors", *other), doctest::Contains("not a resnet20"), Error);
}

TEST_CASE("prune: the filter mask zeroes each convolution's smallest-L1 filters") {
  Context ctx;
  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, 3);
  const Tensor mask = filter_mask(*net, ctx, 0.4);
  const std::vector<float> w = host_floats(net->params(), ctx), m = host_floats(mask, ctx);
  int convs = 0;
  for (const NamedSlot& s : net->slots()) {
    if (s.slot.kind != SlotKind::Parameter) continue;
    const int64_t n = shape_numel(s.slot.shape);
    if (!prunable(s) || s.slot.shape.size() != 4) {  // every other parameter is kept
      CHECK(std::all_of(m.begin() + s.offset, m.begin() + s.offset + n, [](float v) { return v == 1.0f; }));
      continue;
    }
    ++convs;
    const int64_t K = s.slot.shape[0], per = n / K;
    double kept_min = 1e30, removed_max = 0;
    int64_t removed = 0;
    for (int64_t k = 0; k < K; ++k) {
      const float* mk = m.data() + s.offset + k * per;
      const bool gone = mk[0] == 0.0f;
      CHECK(std::all_of(mk, mk + per, [&](float v) { return v == (gone ? 0.0f : 1.0f); }));  // whole filters
      double l1 = 0;
      for (int64_t i = 0; i < per; ++i) l1 += std::fabs(w[s.offset + k * per + i]);
      removed += gone;
      (gone ? removed_max : kept_min) = gone ? std::max(removed_max, l1) : std::min(kept_min, l1);
    }
    INFO(s.name);
    CHECK(removed == std::llround(0.4 * static_cast<double>(K)));
    CHECK(removed_max <= kept_min);
  }
  CHECK(convs == 3);
}

TEST_CASE("prune: a pruned model and its mask change as one unit, wherever the write stops") {
  Context ctx;
  const test::TempDir dir;
  const std::string out = dir / "p.safetensors", mpath = mask_path(out);
  // Two pruned copies of one convnet, A then B written to `out`, each with its mask.
  const auto pruned = [&](double sparsity) {
    auto net = make_net("convnet", {32, 32, 3, 10});
    net->build(ctx, 3);
    const Tensor mask = magnitude_mask(*net, ctx, sparsity, false);
    apply_mask(*net, ctx, mask);
    return std::pair{std::move(net), mask};
  };
  auto [a, mask_a] = pruned(0.3);
  auto [b, mask_b] = pruned(0.6);
  const ModelMeta meta = ModelMeta::describe(*a, "synthetic", {{0, 0, 0}, {1, 1, 1}});
  const nlohmann::json attack = {{"kind", "prune"}};
  write_attacked(out, *a, ctx, mask_a, meta, attack);
  CHECK(!std::filesystem::exists(pending_path(mpath)));
  CHECK(host_floats(mask_beside(out, *a, ctx), ctx) == host_floats(mask_a, ctx));
  const std::string a_model = dir / "a.safetensors", a_mask = dir / "a.mask";
  std::filesystem::copy_file(out, a_model);
  std::filesystem::copy_file(mpath, a_mask);
  write_attacked(out, *b, ctx, mask_b, meta, attack);
  const std::string b_mask = dir / "b.mask";
  std::filesystem::copy_file(mpath, b_mask);
  const auto restore = [&](const std::string& model, const std::string& mask, const std::string& to) {
    std::filesystem::copy_file(model, out, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::remove(mpath);
    std::filesystem::copy_file(mask, to, std::filesystem::copy_options::overwrite_existing);
  };

  SUBCASE("stopped before the model was written: A and its mask, B's pending mask passed over") {
    restore(a_model, a_mask, mpath);
    std::filesystem::copy_file(b_mask, pending_path(mpath));
    CHECK(host_floats(mask_beside(out, *a, ctx), ctx) == host_floats(mask_a, ctx));
    CHECK(std::filesystem::exists(pending_path(mpath)));  // the next write replaces it
  }
  SUBCASE("stopped after the model was written: B and its pending mask, which is put in place") {
    std::filesystem::rename(mpath, pending_path(mpath));
    CHECK(host_floats(mask_beside(out, *b, ctx), ctx) == host_floats(mask_b, ctx));
    CHECK(!std::filesystem::exists(pending_path(mpath)));
    CHECK(std::filesystem::is_regular_file(mpath));
  }
  SUBCASE("a mask beside weights it was not written with is refused, naming both files") {
    restore(a_model, b_mask, mpath);
    CHECK_THROWS_WITH_AS(mask_beside(out, *a, ctx),
                         doctest::Contains((mpath + " was written with other weights than " + out).c_str()), Error);
  }
  SUBCASE("without a mask the model is written first, then the old mask removed") {
    write_attacked(out, *b, ctx, Tensor(), meta, attack);
    CHECK(!std::filesystem::exists(mpath));
    CHECK(!mask_beside(out, *b, ctx).defined());
  }
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
