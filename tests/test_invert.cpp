// Token reverse-engineering through the library (attacks/invert.h): the gradient the inversion
// descends — the patch's free variables through the frozen network's eval-mode input gradient —
// against finite differences of its loss; and the inversion on the locked fixture model
// (tests/fixtures/locked): the recovered patches lower the attacker's loss, every accuracy is
// the one a direct evaluation of the stamped images gives, and the weights do not move.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "attacks/finetune.h"
#include "attacks/invert.h"
#include "engine/core/random.h"
#include "fingerprint/lock.h"
#include "nets/model_io.h"
#include "nets/nets.h"
#include "tests/test_util.h"

using namespace activeip;

namespace {

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.bytes() == b.bytes() && std::memcmp(a.raw(), b.raw(), a.bytes()) == 0;
}

// `data` with `pixels` (size×size×C) written over every image at (top, left), on the host: the
// stamp as a plain loop, independent of PatchStamp.
Dataset stamped(const Dataset& data, const PatchPosition& at, int size, const std::vector<uint8_t>& pixels,
                Context& ctx) {
  Dataset out = data;
  out.images = data.images.clone(ctx);
  uint8_t* px = out.images.data<uint8_t>();
  const int64_t H = data.H, W = data.W, C = data.C;
  for (int64_t n = 0; n < data.size(); ++n)
    for (int i = 0; i < size; ++i)
      for (int j = 0; j < size; ++j)
        for (int64_t c = 0; c < C; ++c)
          px[((n * H + at.top + i) * W + at.left + j) * C + c] = pixels[static_cast<size_t>((i * size + j) * C + c)];
  return out;
}

}  // namespace

TEST_CASE("invert: the patch objective's gradient matches finite differences of its loss") {
  Context ctx;
  auto net = make_net("convnet", {16, 16, 3, 4});
  net->build(ctx, 3);
  // Running statistics away from 0 and 1 (training-mode forwards of other data), then eval mode:
  // the batch norms' eval backward is part of what is checked.
  net->set_training(true);
  auto other = test::random_floats(static_cast<size_t>(6 * 16 * 16 * 3), 5, 0.2f, 2.0f);
  for (float& v : other) v += 0.5f;
  for (int k = 0; k < 3; ++k) net->forward(ctx, Tensor::borrow(other.data(), net->input_shape(6), DType::F32, Device::cpu()));
  net->set_training(false);

  const Normalization norm{{0.5f, 0.4f, 0.45f}, {0.25f, 0.2f, 0.3f}};
  const int N = 4, size = 8;
  auto xs = test::random_floats(static_cast<size_t>(N * 16 * 16 * 3), 7);
  const Tensor x = Tensor::borrow(xs.data(), net->input_shape(N), DType::F32, Device::cpu());
  Tensor labels = Tensor::host({N}, DType::I32);
  for (int i = 0; i < N; ++i) labels.data<int32_t>()[i] = (i * 3) % 4;

  for (const PatchPosition& at : {PatchPosition{"top-left", 4, 4}, PatchPosition{"off-centre", 5, 3}}) {
    CAPTURE(at.name);
    PatchObjective objective(*net, ctx, size, norm, at);
    REQUIRE(objective.values() == size * size * 3);
    Rng rng(11);
    std::vector<float> theta(static_cast<size_t>(objective.values())), grad;
    for (float& t : theta) t = static_cast<float>(0.7 * rng.normal());
    const double loss = objective.evaluate(x, labels, theta, &grad);
    REQUIRE(grad.size() == theta.size());
    CHECK(objective.evaluate(x, labels, theta) == loss);  // the batch itself is left as it was

    // Differences in float32 (h = 2e-3 in θ moves a pixel by at most 0.26 of a level): along
    // the gradient itself (a random direction's derivative is a few rounding steps of the loss
    // at this h), and along the coordinates of largest gradient; a ReLU or max-pool kink within
    // h of the point is allowed for (test::matches_differences).
    const float h = 2e-3f;
    auto check = [&](const std::vector<float>& v, double analytic, const std::string& what) {
      std::vector<float> plus = theta, minus = theta;
      for (size_t i = 0; i < v.size(); ++i) plus[i] += h * v[i], minus[i] -= h * v[i];
      const double fp = objective.evaluate(x, labels, plus), fm = objective.evaluate(x, labels, minus);
      INFO(what << ": analytic " << analytic << " central " << (fp - fm) / (2.0 * h) << " one-sided "
                << (loss - fm) / h << ", " << (fp - loss) / h);
      CHECK(test::matches_differences(analytic, loss, fp, fm, h, 1e-5, 3e-2));
    };
    double norm = 0;
    for (const float g : grad) norm += static_cast<double>(g) * g;
    norm = std::sqrt(norm);
    REQUIRE(norm > 1e-3);  // a gradient that is not zero
    std::vector<float> dir(theta.size());
    for (size_t i = 0; i < dir.size(); ++i) dir[i] = static_cast<float>(grad[i] / norm);
    check(dir, norm, "along the gradient");

    std::vector<size_t> order(theta.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::partial_sort(order.begin(), order.begin() + 8, order.end(),
                      [&](size_t a, size_t b) { return std::fabs(grad[a]) > std::fabs(grad[b]); });
    for (size_t k = 0; k < 8; ++k) {
      std::vector<float> e(theta.size(), 0.0f);
      e[order[k]] = 1.0f;
      check(e, grad[order[k]], "theta[" + std::to_string(order[k]) + "]");
    }
  }
}

TEST_CASE("invert: on the locked fixture the recovered patches lower the attacker's loss, as evaluated directly") {
  Context ctx;
  const std::string model = std::string(ACTIVEIP_FIXTURES) + "/locked/m.safetensors";
  check_locked(model);  // the fixture is a locked model
  LoadedModel m = load_model(model, ctx);
  Network& net = *m.net;
  const DataSplits data = load_data({"synthetic", "", -1, -1});
  const Dataset attacker = seeded_subset(data.train, 0.1, 1);
  const Tensor params = net.params().clone(ctx), buffers = net.buffers().clone(ctx);

  InvertConfig config;
  config.steps = 15;
  config.batch = 16;
  config.seed = 2;
  std::vector<std::string> lines;
  net.set_training(true);
  const InvertReport r =
      invert_lock(net, ctx, attacker, data.test, m.meta.norm, config, [&](const std::string& l) { lines.push_back(l); });

  // The weights, the running statistics, the gradient buffer and the mode are as they were.
  CHECK(net.training());
  CHECK(same_bytes(net.params(), params));
  CHECK(same_bytes(net.buffers(), buffers));
  const float* g = net.grads().data<float>();
  CHECK(std::all_of(g, g + net.grads().numel(), [](float v) { return v == 0.0f; }));

  const PatternSpec spec = lock_spec(32, 32, 3, 10);
  CHECK(r.size == spec.size());
  CHECK(r.attacker_records == attacker.size());
  CHECK(r.test_records == data.test.size());
  CHECK(r.chance == doctest::Approx(0.1));
  CHECK(r.clean_accuracy == evaluate(net, ctx, data.test, m.meta.norm).accuracy);
  CHECK(r.clean_accuracy <= 0.15);  // the lock holds without a token
  REQUIRE(r.patches.size() == 5);
  CHECK(lines.size() >= 10);  // progress and a summary per position
  const std::vector<PatchPosition> expected = invert_positions(spec);
  for (size_t p = 0; p < r.patches.size(); ++p) {
    const InvertedPatch& x = r.patches[p];
    CAPTURE(x.position.name);
    CHECK(x.position.name == expected[p].name);
    CHECK(x.position.top == expected[p].top);
    CHECK(x.position.left == expected[p].left);
    REQUIRE(x.pixels.size() == static_cast<size_t>(8 * 8 * 3));
    MESSAGE(x.position.name, ": loss ", x.initial_loss, " -> ", x.loss, ", attacker accuracy ", x.attacker_accuracy,
            ", test accuracy ", x.accuracy);
    CHECK(x.loss < x.initial_loss);
    for (const double a : {x.accuracy, x.attacker_accuracy}) {
      CHECK(a >= 0.0);
      CHECK(a <= 1.0);
    }
    // The figures are those of the rounded patch written into the images themselves.
    const EvalResult own = evaluate(net, ctx, stamped(attacker, x.position, 8, x.pixels, ctx), m.meta.norm);
    CHECK(x.attacker_accuracy == own.accuracy);
    CHECK(x.loss == doctest::Approx(own.loss).epsilon(1e-9));
    CHECK(x.accuracy == evaluate(net, ctx, stamped(data.test, x.position, 8, x.pixels, ctx), m.meta.norm).accuracy);
  }
  for (const InvertedPatch& x : r.patches) CHECK(r.best_patch().attacker_accuracy >= x.attacker_accuracy);
  const nlohmann::json j = r.to_json();
  CHECK(j["best_position"] == r.best_patch().position.name);
  CHECK(j["best_accuracy"].get<double>() == r.best_patch().accuracy);
  CHECK(j["positions"].size() == 5);

  // A chosen position, and an unknown one named.
  config.positions = {"center"};
  config.steps = 2;
  const InvertReport one = invert_lock(net, ctx, attacker, data.test, m.meta.norm, config, [](const std::string&) {});
  REQUIRE(one.patches.size() == 1);
  CHECK(one.patches[0].position.top == 12);
  config.positions = {"middle"};
  CHECK_THROWS_WITH_AS(invert_lock(net, ctx, attacker, data.test, m.meta.norm, config, [](const std::string&) {}),
                       doctest::Contains("'middle'"), Error);
}

TEST_CASE("invert: a model that is not locked is refused, naming the file") {
  const std::string model = std::string(ACTIVEIP_FIXTURES) + "/protected-v2/m.safetensors";
  CHECK_THROWS_WITH_AS(check_locked(model), doctest::Contains("protected-v2/m.safetensors is not a locked model"),
                       Error);
}
