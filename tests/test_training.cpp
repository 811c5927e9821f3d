// Training end to end on the CPU: the schedules, a gradient check of a whole network
// (residual block with option-A shortcut, BN, pooling, linear, loss) against finite
// differences, in training and in eval mode, a small convnet learning `synthetic`, bit-for-bit determinism, and
// --resume continuing exactly where an interrupted run would have gone; sharpness-aware
// (SAM) steps against a step taken by hand at the perturbed weights.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/core/random.h"
#include "engine/nn/layers.h"
#include "engine/nn/loss.h"
#include "engine/nn/ops.h"
#include "engine/train/trainer.h"
#include "nets/nets.h"
#include "tests/test_util.h"
#include "tests/train_test_util.h"

using namespace activeip;

using test::small_config;

namespace {

// SAM's ascent on the CPU from host w and g over net's parameter tensors (ops::sam_ascent).
Tensor sam_ascent_of(const Network& net, const Tensor& w, const Tensor& g, double rho, const Tensor* mask = nullptr) {
  Context ctx;
  const Tensor segments = parameter_segments(net);
  const SamShape s{net.num_parameters(), static_cast<int>(segments.numel() / 2)};
  Tensor norms = Tensor::host({2 * int64_t{s.segments} * 8}, DType::U8), e = Tensor::host({s.n});
  ops::sam_ascent(ctx, s, rho, {w, g, segments, mask, norms, e});
  return e;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.bytes() == b.bytes() && std::memcmp(a.raw(), b.raw(), a.bytes()) == 0;
}

}  // namespace

TEST_CASE("schedules: warm-up, cosine, step and one-cycle values") {
  ScheduleConfig s;
  s.lr = 0.1;
  s.total_steps = 100;
  s.kind = "cosine";
  CHECK(learning_rate(s, 0) == doctest::Approx(0.1));
  CHECK(learning_rate(s, 50) == doctest::Approx(0.05));
  CHECK(learning_rate(s, 100) == doctest::Approx(0.0));
  s.warmup_steps = 10;
  CHECK(learning_rate(s, 0) == doctest::Approx(0.01));
  CHECK(learning_rate(s, 9) == doctest::Approx(0.1));
  CHECK(learning_rate(s, 55) == doctest::Approx(0.05));
  s.kind = "step";
  s.warmup_steps = 0;
  s.milestones = {50, 75};
  CHECK(learning_rate(s, 49) == doctest::Approx(0.1));
  CHECK(learning_rate(s, 50) == doctest::Approx(0.01));
  CHECK(learning_rate(s, 99) == doctest::Approx(0.001));
  s.kind = "onecycle";
  CHECK(learning_rate(s, 0) == doctest::Approx(0.1 / 25));
  CHECK(learning_rate(s, 29) == doctest::Approx(0.1));
  CHECK(learning_rate(s, 99) == doctest::Approx(0.1 / 25 / 1e4));
  s.kind = "bogus";
  CHECK_THROWS_AS(learning_rate(s, 0), Error);
}

TEST_CASE("network gradients match finite differences end to end") {
  auto body = std::make_unique<Sequential>();
  body->add("conv1", std::make_unique<Conv2d>(3, 4, 3, 1, 1, false));
  body->add("bn1", std::make_unique<BatchNorm2d>(4));
  body->add("relu", std::make_unique<ReLU>());
  auto main = std::make_unique<Sequential>();
  main->add("conv1", std::make_unique<Conv2d>(4, 8, 3, 2, 1, false));
  main->add("bn1", std::make_unique<BatchNorm2d>(8));
  main->add("relu", std::make_unique<ReLU>());
  main->add("conv2", std::make_unique<Conv2d>(8, 8, 3, 1, 1, true));
  main->add("bn2", std::make_unique<BatchNorm2d>(8));
  auto block = std::make_unique<Sequential>();
  block->add(std::make_unique<Residual>(std::move(main), std::make_unique<PadShortcut>(2, 2, 2), "shortcut"));
  body->add("layer1", std::move(block));
  body->add("pool", std::make_unique<MaxPool2d>(2, 2));
  body->add("avgpool", std::make_unique<GlobalAvgPool>());
  body->add("fc", std::make_unique<Linear>(8, 3));
  Network net({"tiny", 8, 6, 3, 3, {}, {}}, std::move(body));
  Context ctx;
  net.build(ctx, 9);
  net.set_training(true);
  SUBCASE("batch statistics of every sample") {}
  SUBCASE("clean batch statistics, of the first 2 samples") {
    net.set_stat_samples(2);
  }
  SUBCASE("eval mode: the running statistics, constants of the input") {
    // Running statistics moved away from 0 and 1 by training-mode forwards of other data; the
    // eval backward (batch norm's, and dropout's identity) is what the token inversion uses.
    auto other = test::random_floats(static_cast<size_t>(5 * 8 * 6 * 3), 31, 0.5f, 3.0f);
    for (float& v : other) v += 1.0f;
    for (int k = 0; k < 3; ++k)
      net.forward(ctx, Tensor::borrow(other.data(), net.input_shape(5), DType::F32, Device::cpu()));
    net.set_training(false);
  }

  const int N = 3;
  auto xs = test::random_floats(static_cast<size_t>(N * 8 * 6 * 3), 21);
  const Tensor x = Tensor::borrow(xs.data(), net.input_shape(N), DType::F32, Device::cpu());
  Tensor labels = Tensor::host({N}, DType::I32);
  for (int i = 0; i < N; ++i) labels.data<int32_t>()[i] = i % 3;
  SoftmaxCrossEntropy loss(0.1f);
  auto f = [&] {
    loss.reset(ctx);
    loss.forward(ctx, net.forward(ctx, x), labels);
    return loss.read(ctx).loss;
  };

  net.zero_grad(ctx);
  f();
  const Tensor dx = net.backward(ctx, loss.backward(ctx)).clone(ctx);
  const Tensor grads = net.grads().clone(ctx);

  // Differences in float32: with h = 1e-3 the rounding noise of the loss (~1e-7/h) stays far
  // below the tolerance; a ReLU whose input is within h of 0 is a kink
  // (test::matches_differences).
  const double f0 = f();
  auto check = [&](float* v, float analytic, const std::string& what, int64_t i) {
    const float keep = *v, h = 1e-3f;
    *v = keep + h;
    const double fp = f();
    *v = keep - h;
    const double fm = f();
    *v = keep;
    INFO(what << "[" << i << "]: analytic " << analytic << " central " << (fp - fm) / (2.0 * h) << " one-sided "
              << (f0 - fm) / h << ", " << (fp - f0) / h);
    CHECK(test::matches_differences(analytic, f0, fp, fm, h, 2e-3, 3e-2));
  };
  float* p = net.params().data<float>();
  for (int64_t i = 0; i < net.num_parameters(); i += 7) check(p + i, grads.data<float>()[i], "param", i);
  for (int64_t i = 0; i < x.numel(); i += 11) check(xs.data() + i, dx.data<float>()[i], "x", i);
}

TEST_CASE("training: a convnet learns synthetic, deterministically") {
  DataSpec spec{"synthetic", "", 1024, 256};
  const DataSplits data = load_data(spec);
  auto run = [&](Tensor& params_out) {
    Context ctx;
    auto net = make_net("convnet", {32, 32, 3, 10});
    net->build(ctx, 4);
    Trainer t(*net, ctx, data, small_config(2));
    EpochRecord last;
    while (!t.done()) last = t.train_epoch({});
    params_out = net->params().clone(ctx);
    return last;
  };
  Tensor p1, p2;
  const EpochRecord r = run(p1);
  CHECK(r.test_accuracy >= 0.8);
  CHECK(r.train_loss < 1.0);
  run(p2);
  CHECK(same_bytes(p1, p2));
}

TEST_CASE("training: the running loss is read every log_every steps, and how often changes nothing") {
  const DataSplits data = load_data({"synthetic", "", 256, 64});  // 8 steps of 32 an epoch
  struct Run {
    EpochRecord record;
    std::vector<float> params;
    std::vector<StepInfo> reads;
  };
  auto run = [&](int log_every) {
    Context ctx;
    auto net = make_net("convnet", {32, 32, 3, 10});
    net->build(ctx, 4);
    TrainConfig config = small_config(1);
    config.log_every = log_every;
    Trainer t(*net, ctx, data, config);
    Run r;
    r.record = t.train_epoch([&](const StepInfo& s) { r.reads.push_back(s); });
    r.params = test::host_floats(net->params(), ctx);
    return r;
  };
  const Run every = run(1), third = run(3), once = run(50);
  auto steps = [](const Run& r) {
    std::vector<int64_t> v;
    for (const StepInfo& s : r.reads) v.push_back(s.step);
    return v;
  };
  CHECK(steps(every) == std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(steps(third) == std::vector<int64_t>{3, 6, 8});  // and the epoch's last step
  CHECK(steps(once) == std::vector<int64_t>{8});
  for (const Run* r : {&third, &once}) {
    CHECK(r->params == every.params);
    CHECK(r->record.train_loss == every.record.train_loss);
    CHECK(r->record.train_accuracy == every.record.train_accuracy);
    CHECK(r->record.images == every.record.images);
  }
  CHECK(every.record.images == 256);
  // A read reports the epoch so far: the last one is the epoch's record, and reads at the
  // same step agree whatever the interval.
  CHECK(once.reads.back().loss == once.record.train_loss);
  CHECK(once.reads.back().accuracy == once.record.train_accuracy);
  CHECK(third.reads[0].loss == every.reads[2].loss);
  CHECK(third.reads[1].accuracy == every.reads[5].accuracy);

  TrainConfig bad = small_config(1);
  bad.log_every = 0;
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("--log-every"), Error);
}

TEST_CASE("training: divergence is found at a read of the loss, naming the steps since the last") {
  const DataSplits data = load_data({"synthetic", "", 256, 64});
  Context ctx;
  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, 4);
  TrainConfig config = small_config(1);
  config.lr = 1e30;  // the first update sends the weights to infinity
  config.log_every = 4;
  Trainer t(*net, ctx, data, config);
  CHECK_THROWS_WITH_AS(t.train_epoch({}), doctest::Contains("nan at epoch 1 steps 1-4 (try a lower --lr)"), Error);
}

TEST_CASE("training: --resume continues bit for bit") {
  DataSpec spec{"synthetic", "", 256, 64};
  const DataSplits data = load_data(spec);
  const test::TempDir dir;
  const std::string path = dir / "resume.safetensors";

  Context ctx;
  auto straight = make_net("convnet", {32, 32, 3, 10});
  straight->build(ctx, 4);
  Trainer a(*straight, ctx, data, small_config(3));
  while (!a.done()) a.train_epoch({});

  {  // interrupted after one epoch
    auto net = make_net("convnet", {32, 32, 3, 10});
    net->build(ctx, 4);
    Trainer b(*net, ctx, data, small_config(3));
    b.train_epoch({});
    const ModelMeta meta = ModelMeta::describe(*net, "synthetic", data.norm);
    b.save(path, meta);
  }
  auto resumed = make_net("convnet", {32, 32, 3, 10});
  resumed->build(ctx, 99);  // a different init: everything must come from the files
  TrainConfig reads_more = small_config(3);
  reads_more.log_every = 3;  // how often the loss is read changes no result, so it may differ
  Trainer c(*resumed, ctx, data, reads_more);
  c.resume(path);
  CHECK(c.completed_epochs() == 1);
  while (!c.done()) c.train_epoch({});
  CHECK(same_bytes(straight->params(), resumed->params()));
  CHECK(same_bytes(straight->buffers(), resumed->buffers()));

  SUBCASE("a changed option is refused, naming it") {
    auto other = make_net("convnet", {32, 32, 3, 10});
    other->build(ctx, 4);
    TrainConfig cfg = small_config(3);
    cfg.lr = 0.2;
    Trainer d(*other, ctx, data, cfg);
    CHECK_THROWS_WITH_AS(d.resume(path), doctest::Contains("option lr"), Error);
  }
  SUBCASE("a missing state file is refused") {
    std::filesystem::remove(train_state_path(path));
    auto other = make_net("convnet", {32, 32, 3, 10});
    other->build(ctx, 4);
    Trainer d(*other, ctx, data, small_config(3));
    CHECK_THROWS_WITH_AS(d.resume(path), doctest::Contains("optim.safetensors"), Error);
  }
}

TEST_CASE("training: a save stopped between its steps resumes from a model and state of one epoch") {
  const DataSplits data = load_data({"synthetic", "", 128, 32});
  const test::TempDir dir;
  const std::string path = dir / "m.safetensors";
  Context ctx;
  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, 4);
  {
    Trainer t(*net, ctx, data, small_config(2));
    t.train_epoch({});
    t.save(path, ModelMeta::describe(*net, "synthetic", data.norm));
  }
  // Epoch 2 from the complete pair: what every other way of resuming must give.
  auto ref = make_net("convnet", {32, 32, 3, 10});
  ref->build(ctx, 99);
  Trainer r(*ref, ctx, data, small_config(2));
  r.resume(path);
  r.train_epoch({});

  SUBCASE("killed after the model was renamed: resume finishes the save") {
    std::filesystem::rename(train_state_path(path), pending_path(train_state_path(path)));
    auto other = make_net("convnet", {32, 32, 3, 10});
    other->build(ctx, 99);
    Trainer d(*other, ctx, data, small_config(2));
    d.resume(path);
    CHECK(d.completed_epochs() == 1);
    CHECK(std::filesystem::is_regular_file(train_state_path(path)));
    CHECK(!std::filesystem::exists(pending_path(train_state_path(path))));
    d.train_epoch({});
    CHECK(same_bytes(ref->params(), other->params()));
    CHECK(same_bytes(ref->buffers(), other->buffers()));
  }
  SUBCASE("killed before the model was renamed: the pending state is passed over; as the state it is refused") {
    // The pending state of a save whose model never reached the disk: other weights' digest.
    const SafetensorsReader state(train_state_path(path));
    SafetensorsWriter other_weights;
    for (const std::string& name : state.names()) {
      const SafetensorsView& v = state.get(name);
      other_weights.add(name, v.dtype, v.shape, v.data, v.bytes);
    }
    auto meta = state.metadata();
    REQUIRE(meta.at("model_sha256") == SafetensorsReader(path).data_sha256());
    meta["model_sha256"] = std::string(64, '0');
    other_weights.set_metadata(meta);
    other_weights.write(pending_path(train_state_path(path)));
    auto other = make_net("convnet", {32, 32, 3, 10});
    other->build(ctx, 4);
    Trainer d(*other, ctx, data, small_config(2));
    d.resume(path);
    CHECK(d.completed_epochs() == 1);
    CHECK(std::filesystem::exists(pending_path(train_state_path(path))));  // the next save replaces it
    std::filesystem::rename(pending_path(train_state_path(path)), train_state_path(path));
    Trainer e(*other, ctx, data, small_config(2));
    CHECK_THROWS_WITH_AS(e.resume(path), doctest::Contains("was saved with other weights"), Error);
  }
}

TEST_CASE("SAM: the ascent moves each parameter tensor but batch norm's by rho times its norm along its gradient") {
  Context ctx;
  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, 4);
  const Tensor w = net->params().clone(ctx);
  Tensor g = Tensor::host({net->num_parameters()});
  Rng rng(7);
  for (int64_t i = 0; i < g.numel(); ++i) g.data<float>()[i] = static_cast<float>(rng.normal());
  const NamedSlot* zeroed = nullptr;  // one tensor without gradient: it must not move
  for (const NamedSlot& s : net->slots())
    if (s.slot.kind == SlotKind::Parameter) zeroed = &s;
  REQUIRE(zeroed != nullptr);
  std::fill_n(g.data<float>() + zeroed->offset, shape_numel(zeroed->slot.shape), 0.0f);

  const double rho = 0.05;
  const Tensor e = sam_ascent_of(*net, w, g, rho);
  int moved = 0, norms = 0;
  for (const NamedSlot& s : net->slots()) {
    if (s.slot.kind != SlotKind::Parameter) continue;
    double ee = 0, ww = 0, gg = 0, eg = 0;
    for (int64_t i = s.offset; i < s.offset + shape_numel(s.slot.shape); ++i) {
      const double ei = e.data<float>()[i], wi = w.data<float>()[i], gi = g.data<float>()[i];
      ee += ei * ei, ww += wi * wi, gg += gi * gi, eg += ei * gi;
    }
    INFO(s.name);
    const auto& groups = net->info().filter_groups;  // each conv with its batch norm
    const bool norm = std::any_of(groups.begin(), groups.end(),
                                  [&](const FilterGroup& f) { return s.name.rfind(f.bn + ".", 0) == 0; });
    norms += norm;
    if (&s == zeroed || ww == 0 || norm) {
      CHECK(ee == 0);
      continue;
    }
    ++moved;
    CHECK(std::sqrt(ee) == doctest::Approx(rho * std::sqrt(ww)).epsilon(1e-5));
    CHECK(eg / std::sqrt(ee * gg) == doctest::Approx(1.0).epsilon(1e-5));  // along g, not against it
  }
  CHECK(moved >= 4);
  CHECK(norms >= 4);  // weight and bias of at least two batch norms stayed
  // The pruning mask multiplies the move: pruned weights stay at zero at w + e.
  Tensor mask = Tensor::host({net->num_parameters()});
  for (int64_t i = 0; i < mask.numel(); ++i) mask.data<float>()[i] = i % 3 == 0 ? 0.0f : 1.0f;
  const Tensor masked = sam_ascent_of(*net, w, g, rho, &mask);
  for (int64_t i = 0; i < mask.numel(); ++i) {
    INFO(i);
    CHECK(masked.data<float>()[i] == (i % 3 == 0 ? 0.0f : e.data<float>()[i]));
  }
  Tensor short_g = Tensor::host({3});
  CHECK_THROWS_WITH_AS(sam_ascent_of(*net, w, short_g, rho), doctest::Contains("sam_ascent: argument 'g'"), Error);
}

namespace {

// Four extra samples per batch (the first records again), relabelled to class 0 and left as
// they are: enough for --sam-ascent extra to have rows of its own.
class RelabelComposer final : public BatchComposer {
 public:
  int rows(int batch) const override { return batch + 4; }
  StampStage stage() const override { return StampStage::None; }
  void compose(uint64_t step, const int32_t* records, int batch, const Dataset& train, Rng& draw,
               BatchRows& rows) override {
    plain_.compose(step, records, batch, train, draw, rows);
    for (int i = 0; i < 4; ++i) {
      rows.record.push_back(records[i]);
      rows.label.push_back(0);
      rows.role.push_back(1);
    }
  }
  void stamp(Context&, Tensor&, const BatchRows&) override {}

 private:
  PlainComposer plain_;
};

// lr 1, no momentum or decay: a step subtracts the gradient itself, so it can be read back.
TrainConfig readable_step_config() {
  TrainConfig c = small_config(1);
  c.lr = 1.0;
  c.momentum = 0;
  c.wd = 0;
  c.schedule = "constant";
  return c;
}

// The flat parameters after one training step of convnet (built from seed 4) from `start`
// (the build's own weights when empty); buffers_out gets the running statistics.
std::vector<float> one_step(const DataSplits& data, const TrainConfig& config, BatchComposer* composer,
                            const std::vector<float>& start, std::vector<float>* buffers_out = nullptr) {
  Context ctx;
  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, 4);
  if (!start.empty()) std::copy(start.begin(), start.end(), net->params().data<float>());
  Trainer t(*net, ctx, data, config, composer);
  t.time_steps(1);
  if (buffers_out) *buffers_out = test::host_floats(net->buffers(), ctx);
  return test::host_floats(net->params(), ctx);
}

}  // namespace

TEST_CASE("SAM: a step applies the gradient taken at the perturbed weights, to the unperturbed ones") {
  DataSpec spec{"synthetic", "", 256, 64};
  const DataSplits data = load_data(spec);
  const TrainConfig plain = readable_step_config();
  TrainConfig sam = plain;
  sam.sam_rho = 0.05;

  Context ctx;
  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, 4);
  const std::vector<float> w0 = test::host_floats(net->params(), ctx);
  std::vector<float> plain_buffers, sam_buffers;
  const std::vector<float> w_plain = one_step(data, plain, nullptr, {}, &plain_buffers);
  Tensor g0 = Tensor::host({net->num_parameters()}), w0t = Tensor::host({net->num_parameters()});
  for (size_t i = 0; i < w0.size(); ++i) {
    w0t.data<float>()[i] = w0[i];
    g0.data<float>()[i] = w0[i] - w_plain[i];
  }
  const Tensor e = sam_ascent_of(*net, w0t, g0, sam.sam_rho);
  std::vector<float> w_moved(w0.size());
  for (size_t i = 0; i < w0.size(); ++i) w_moved[i] = w0[i] + e.data<float>()[i];
  const std::vector<float> w_after_moved = one_step(data, plain, nullptr, w_moved);  // w_moved - g(w_moved)

  const std::vector<float> w_sam = one_step(data, sam, nullptr, {}, &sam_buffers);
  double worst = 0, apart = 0;
  for (size_t i = 0; i < w0.size(); ++i) {
    const double g_moved = static_cast<double>(w_moved[i]) - w_after_moved[i];
    worst = std::max(worst, std::fabs(w_sam[i] - (w0[i] - g_moved)));
    apart = std::max(apart, std::fabs(static_cast<double>(w_sam[i]) - w_plain[i]));
  }
  CHECK(worst <= 1e-4);
  CHECK(apart >= 1e-3);  // the perturbed gradient is not the plain one
  // The running statistics come from the first pass only, as in a plain step.
  CHECK(sam_buffers == plain_buffers);

  SUBCASE("ascent on the extra samples only") {
    RelabelComposer mixer;
    TrainConfig extra = sam;
    extra.sam_ascent = "extra";
    std::vector<float> mixed_buffers, extra_buffers;
    const std::vector<float> w_mixed = one_step(data, plain, &mixer, {}, &mixed_buffers);
    const std::vector<float> w_batch = one_step(data, sam, &mixer, {});
    const std::vector<float> w_extra = one_step(data, extra, &mixer, {}, &extra_buffers);
    CHECK(w_extra == one_step(data, extra, &mixer, {}));  // deterministic
    double from_plain = 0, from_batch = 0;
    for (size_t i = 0; i < w0.size(); ++i) {
      from_plain = std::max(from_plain, std::fabs(static_cast<double>(w_extra[i]) - w_mixed[i]));
      from_batch = std::max(from_batch, std::fabs(static_cast<double>(w_extra[i]) - w_batch[i]));
    }
    CHECK(from_plain >= 1e-3);
    CHECK(from_batch >= 1e-3);
    CHECK(extra_buffers == mixed_buffers);
    // With a vanishing move the step is the plain one: the batch's gradient (at w) and the
    // extras' (at w + e) add up to the whole gradient, neither missing nor counted twice.
    TrainConfig tiny = extra;
    tiny.sam_rho = 1e-9;
    const std::vector<float> w_tiny = one_step(data, tiny, &mixer, {});
    double from_mixed = 0;
    for (size_t i = 0; i < w0.size(); ++i)
      from_mixed = std::max(from_mixed, std::fabs(static_cast<double>(w_tiny[i]) - w_mixed[i]));
    CHECK(from_mixed <= 1e-5);
  }
}

TEST_CASE("c-BN: a step takes batch norm's statistics from the clean rows alone") {
  DataSpec spec{"synthetic", "", 256, 64};
  const DataSplits data = load_data(spec);
  RelabelComposer mixer;  // the batch's records, then 4 of them again, relabelled
  const TrainConfig plain = small_config(1);
  TrainConfig clean = plain;
  clean.clean_bn = true;
  std::vector<float> plain_buffers, mixed_buffers, clean_buffers;
  one_step(data, plain, nullptr, {}, &plain_buffers);
  const std::vector<float> w_mixed = one_step(data, plain, &mixer, {}, &mixed_buffers);
  const std::vector<float> w_clean = one_step(data, clean, &mixer, {}, &clean_buffers);
  // The running statistics move as in a step on the clean rows alone; the extra rows moved them.
  const auto apart = [](const std::vector<float>& a, const std::vector<float>& b) {
    double d = 0;
    for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(static_cast<double>(a[i]) - b[i]));
    return d;
  };
  CHECK(apart(clean_buffers, plain_buffers) <= 1e-6);
  CHECK(apart(mixed_buffers, plain_buffers) >= 1e-4);
  CHECK(apart(w_clean, w_mixed) >= 1e-4);  // and the step is another one

  Context ctx;
  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, 4);
  CHECK_THROWS_WITH_AS(Trainer(*net, ctx, data, clean), doctest::Contains("--clean-bn needs extra samples"), Error);
  CHECK(nlohmann::json::parse(clean.to_json()).at("clean_bn") == true);
  CHECK(!nlohmann::json::parse(plain.to_json()).contains("clean_bn"));  // older runs resume as before
}

TEST_CASE("simulated attack: the protected rows' gradient at attacked weights is added, w and statistics restored") {
  DataSpec spec{"synthetic", "", 256, 64};
  const DataSplits data = load_data(spec);
  RelabelComposer mixer;
  const TrainConfig plain = readable_step_config();
  TrainConfig sim = plain;
  sim.attack_every = 1;
  sim.attack_steps = 3;
  TrainConfig twice = sim;
  twice.attack_weight = 2;
  std::vector<float> plain_buffers, sim_buffers;
  const std::vector<float> w_plain = one_step(data, plain, &mixer, {}, &plain_buffers);
  const std::vector<float> w_sim = one_step(data, sim, &mixer, {}, &sim_buffers);
  const std::vector<float> w_twice = one_step(data, twice, &mixer, {});
  CHECK(sim_buffers == plain_buffers);              // the running statistics as the step's own pass left them
  CHECK(w_sim == one_step(data, sim, &mixer, {}));  // the draws are a function of (seed, step)
  // w − g − λ·g_p: linear in λ, so the attack's weights were restored exactly before the step.
  double added = 0, nonlinear = 0;
  for (size_t i = 0; i < w_plain.size(); ++i) {
    const double d1 = static_cast<double>(w_plain[i]) - w_sim[i], d2 = static_cast<double>(w_plain[i]) - w_twice[i];
    added = std::max(added, std::fabs(d1));
    nonlinear = std::max(nonlinear, std::fabs(d2 - 2 * d1));
  }
  CHECK(added >= 1e-4);
  CHECK(nonlinear <= 1e-5);

  Context ctx;
  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, 4);
  CHECK_THROWS_WITH_AS(Trainer(*net, ctx, data, sim), doctest::Contains("--simulate-attack needs extra samples"),
                       Error);
  TrainConfig bad = sim;
  bad.attack_steps = 0;
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("--simulate-steps must be at least 1"), Error);
  const auto j = nlohmann::json::parse(sim.to_json());
  CHECK(j.at("simulated_attack").at("every") == 1);
  CHECK(j.at("simulated_attack").at("steps") == 3);
}

TEST_CASE("SAM: bad settings are refused, and --resume refuses a changed one") {
  DataSpec spec{"synthetic", "", 64, 32};
  const DataSplits data = load_data(spec);
  Context ctx;
  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, 4);
  TrainConfig c = small_config(2);
  c.sam_rho = -0.1;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("--sam must be non-negative"), Error);
  c.sam_rho = 0.05;
  c.sam_ascent = "clean";
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("--sam-ascent 'clean' is unknown"), Error);
  c.sam_ascent = "extra";
  CHECK_THROWS_WITH_AS(Trainer(*net, ctx, data, c), doctest::Contains("needs extra samples"), Error);

  const test::TempDir dir;
  const std::string path = dir / "sam.safetensors";
  c.sam_ascent = "batch";
  {
    Trainer t(*net, ctx, data, c);
    t.train_epoch({});
    t.save(path, ModelMeta::describe(*net, "synthetic", data.norm));
  }
  TrainConfig without = small_config(2);
  Trainer plain(*net, ctx, data, without);
  CHECK_THROWS_WITH_AS(plain.resume(path), doctest::Contains("option sam was"), Error);
  TrainConfig other = c;
  other.sam_rho = 0.1;
  Trainer changed(*net, ctx, data, other);
  CHECK_THROWS_WITH_AS(changed.resume(path), doctest::Contains("option sam was"), Error);
  Trainer same(*net, ctx, data, c);
  same.resume(path);
  CHECK(same.completed_epochs() == 1);
}
