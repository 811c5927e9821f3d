// Training end to end on the CPU: the schedules, a gradient check of a whole network
// (residual block with option-A shortcut, BN, pooling, linear, loss) against finite
// differences, a small convnet learning `synthetic`, bit-for-bit determinism, and
// --resume continuing exactly where an interrupted run would have gone.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "engine/layers.h"
#include "engine/loss.h"
#include "engine/trainer.h"
#include "nets/nets.h"
#include "tests/test_util.h"
#include "tests/train_test_util.h"

using namespace activeip;

using test::small_config;

namespace {

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

  const int N = 3;
  auto xs = test::random_floats(static_cast<size_t>(N * 8 * 6 * 3), 21);
  const Tensor x = Tensor::borrow(xs.data(), net.input_shape(N), DType::F32, Device::cpu());
  Tensor labels = Tensor::host({N}, DType::I32);
  for (int i = 0; i < N; ++i) labels.data<int32_t>()[i] = i % 3;
  SoftmaxCrossEntropy loss(0.1f);
  auto f = [&] { return loss.forward(ctx, net.forward(ctx, x), labels).loss; };

  net.zero_grad(ctx);
  f();
  const Tensor dx = net.backward(ctx, loss.backward(ctx)).clone(ctx);
  const Tensor grads = net.grads().clone(ctx);

  // Central differences in float32: with h = 1e-3 the rounding noise of the loss (~1e-7/h)
  // stays far below the tolerance, and a ReLU or max-pool kink is rarely crossed.
  auto check = [&](float* v, float analytic, const std::string& what, int64_t i) {
    const float keep = *v, h = 1e-3f;
    *v = keep + h;
    const double fp = f();
    *v = keep - h;
    const double fm = f();
    *v = keep;
    const double numeric = (fp - fm) / (2.0 * h);
    INFO(what << "[" << i << "]: analytic " << analytic << " numeric " << numeric);
    CHECK(std::fabs(numeric - analytic) <= 2e-3 + 3e-2 * std::fabs(numeric));
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
  Trainer c(*resumed, ctx, data, small_config(3));
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
