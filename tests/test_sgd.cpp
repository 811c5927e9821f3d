// SGD: several steps of sgd_step_cpu against a double re-implementation of
// torch.optim.SGD.step (dampening 0; the momentum buffer starts as a copy of the first
// gradient) for momentum 0 / 0.9, Nesterov on/off, weight decay on/off; the per-element
// decay multiplier; a pruning mask that keeps pruned weights exactly zero; and the trainable
// flags that leave frozen weights and their momentum untouched.
#include <string>
#include <vector>

#include "kernels/sgd.h"
#include "tests/test_util.h"

using namespace activeip;
using namespace activeip::test;

namespace {

constexpr size_t kN = 1037;
constexpr int kSteps = 5;

// torch.optim.SGD's update for one parameter tensor, in double. `buf` empty means
// "no momentum buffer yet" (PyTorch's first step clones the gradient into it).
struct TorchSgd {
  double lr, momentum, weight_decay;
  bool nesterov;
  std::vector<double> buf;

  void step(std::vector<double>& w, std::vector<double> g, const std::vector<double>& decay) {
    for (size_t i = 0; i < w.size(); ++i) g[i] += weight_decay * decay[i] * w[i];
    if (momentum != 0) {
      if (buf.empty()) {
        buf = g;
      } else {
        for (size_t i = 0; i < w.size(); ++i) buf[i] = momentum * buf[i] + g[i];
      }
      for (size_t i = 0; i < w.size(); ++i) g[i] = nesterov ? g[i] + momentum * buf[i] : buf[i];
    }
    for (size_t i = 0; i < w.size(); ++i) w[i] -= lr * g[i];
  }
};

}  // namespace

TEST_CASE("sgd: several steps match torch.optim.SGD") {
  struct Config {
    float momentum, weight_decay;
    bool nesterov;
  };
  const Config configs[] = {{0.0f, 0.0f, false},  {0.0f, 0.05f, false}, {0.9f, 0.0f, false},
                            {0.9f, 0.05f, false}, {0.9f, 0.0f, true},   {0.9f, 0.05f, true}};
  for (const Config& k : configs) {
    SUBCASE((std::string("momentum ") + std::to_string(k.momentum) + " wd " + std::to_string(k.weight_decay) +
             (k.nesterov ? " nesterov" : ""))
                .c_str()) {
      const SgdParams p{.lr = 0.1f, .momentum = k.momentum, .weight_decay = k.weight_decay, .nesterov = k.nesterov};
      std::vector<float> w = random_floats(kN, 1);
      // The engine starts the buffer at zero: μ·0 + g is PyTorch's clone of the first gradient.
      std::vector<float> v(kN, 0.0f);
      std::vector<double> w_ref = to_double(w);
      TorchSgd torch{p.lr, p.momentum, p.weight_decay, p.nesterov, {}};
      const std::vector<double> ones(kN, 1.0);
      for (int t = 0; t < kSteps; ++t) {
        const std::vector<float> g = random_floats(kN, 100 + t);
        sgd_step_cpu(kN, p, {w.data(), g.data(), k.momentum != 0 ? v.data() : nullptr, nullptr, nullptr});
        torch.step(w_ref, to_double(g), ones);
      }
      expect_close(w, w_ref);
      if (k.momentum != 0) expect_close(v, torch.buf);
    }
  }
}

TEST_CASE("sgd: the decay multiplier exempts parameters from weight decay") {
  const SgdParams p{.lr = 0.05f, .momentum = 0.9f, .weight_decay = 0.1f, .nesterov = true};
  std::vector<float> w = random_floats(kN, 2), v(kN, 0.0f), decay(kN);
  for (size_t i = 0; i < kN; ++i) decay[i] = i % 3 == 0 ? 0.0f : 1.0f;
  std::vector<double> w_ref = to_double(w);
  TorchSgd torch{p.lr, p.momentum, p.weight_decay, p.nesterov, {}};
  for (int t = 0; t < kSteps; ++t) {
    const std::vector<float> g = random_floats(kN, 200 + t);
    sgd_step_cpu(kN, p, {w.data(), g.data(), v.data(), nullptr, decay.data()});
    torch.step(w_ref, to_double(g), to_double(decay));
  }
  expect_close(w, w_ref);
}

TEST_CASE("sgd: the mask keeps pruned weights exactly zero") {
  for (const bool nesterov : {false, true}) {
    SUBCASE(nesterov ? "nesterov" : "momentum") {
      const SgdParams p{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f, .nesterov = nesterov};
      // Pruned entries start non-zero in w and in the momentum buffer: the first step must
      // still leave them at exactly zero, and later steps keep them there.
      std::vector<float> w = random_floats(kN, 3), v = random_floats(kN, 4), mask(kN);
      for (size_t i = 0; i < kN; ++i) mask[i] = i % 4 == 1 ? 0.0f : 1.0f;
      std::vector<double> w_ref = to_double(w);
      TorchSgd torch{p.lr, p.momentum, p.weight_decay, p.nesterov, to_double(v)};
      const std::vector<double> ones(kN, 1.0);
      for (int t = 0; t < kSteps; ++t) {
        const std::vector<float> g = random_floats(kN, 300 + t);
        sgd_step_cpu(kN, p, {w.data(), g.data(), v.data(), mask.data(), nullptr});
        bool pruned_zero = true;
        for (size_t i = 0; i < kN; ++i) pruned_zero = pruned_zero && (mask[i] != 0.0f || w[i] == 0.0f);
        CHECK(pruned_zero);

        // Reference: the masked gradient through torch's update, then the mask on w.
        std::vector<double> gm = to_double(g);
        for (size_t i = 0; i < kN; ++i) gm[i] *= mask[i];
        torch.step(w_ref, gm, ones);
        for (size_t i = 0; i < kN; ++i) w_ref[i] *= mask[i];
      }
      expect_close(w, w_ref);
    }
  }
}

TEST_CASE("sgd: momentum 0 leaves the buffer alone") {
  const SgdParams p{.lr = 0.1f, .momentum = 0.0f, .weight_decay = 0.01f, .nesterov = false};
  std::vector<float> w = random_floats(kN, 5), v = random_floats(kN, 6);
  const std::vector<float> v0 = v, g = random_floats(kN, 7);
  sgd_step_cpu(kN, p, {w.data(), g.data(), v.data(), nullptr, nullptr});
  CHECK(v == v0);
}

TEST_CASE("sgd: frozen elements keep their weight and momentum bit for bit") {
  for (const bool with_mask : {false, true}) {
    SUBCASE(with_mask ? "with a mask" : "without a mask") {
      const SgdParams p{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f, .nesterov = true};
      std::vector<float> w = random_floats(kN, 8), v = random_floats(kN, 9), mask(kN, 1.0f), trainable(kN);
      for (size_t i = 0; i < kN; ++i) trainable[i] = i % 3 == 2 ? 0.0f : 1.0f;
      if (with_mask)
        for (size_t i = 0; i < kN; ++i) mask[i] = i % 5 == 0 ? 0.0f : 1.0f;
      // The trained elements follow the same steps without the flag.
      std::vector<float> w_ref = w, v_ref = v;
      const std::vector<float> w0 = w, v0 = v;
      for (int t = 0; t < kSteps; ++t) {
        const std::vector<float> g = random_floats(kN, 400 + t);
        SgdArgs a{w.data(), g.data(), v.data(), with_mask ? mask.data() : nullptr, nullptr};
        a.trainable = trainable.data();
        sgd_step_cpu(kN, p, a);
        sgd_step_cpu(kN, p, {w_ref.data(), g.data(), v_ref.data(), with_mask ? mask.data() : nullptr, nullptr});
      }
      bool frozen_same = true, trained_same = true;
      for (size_t i = 0; i < kN; ++i) {
        if (trainable[i] == 0.0f) {
          frozen_same = frozen_same && w[i] == w0[i] && v[i] == v0[i];
        } else {
          trained_same = trained_same && w[i] == w_ref[i] && v[i] == v_ref[i];
        }
      }
      CHECK(frozen_same);
      CHECK(trained_same);
    }
  }
}
