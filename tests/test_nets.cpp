// Every net of the registry: output shape for 1- and 3-channel, 28×28 and 32×32 inputs,
// parameter counts against the published/torchvision figures, torchvision tensor names,
// and deterministic initialisation under a seed.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "engine/nn/layers.h"
#include "nets/nets.h"
#include "tests/test_util.h"

using namespace activeip;

TEST_CASE("nets: parameter counts match torchvision / He et al.") {
  struct Case {
    const char* name;
    int classes;
    int64_t params;
  };
  // resnet18: the CIFAR ResNet-18 (3×3 stem), 11,173,962 for 10 classes; resnet20/32/56
  // with option-A shortcuts as in He et al. (0.27M / 0.46M / 0.85M).
  const Case cases[] = {{"resnet18", 10, 11173962},
                        {"resnet20", 10, 269722},
                        {"resnet32", 10, 464154},
                        {"resnet56", 10, 853018},
                        {"resnet18", 100, 11220132}};
  Context ctx;
  for (const Case& c : cases) {
    SUBCASE(c.name) {
      auto net = make_net(c.name, {32, 32, 3, c.classes});
      net->build(ctx, 0);
      CHECK(net->num_parameters() == c.params);
    }
  }
}

TEST_CASE("nets: every net maps 1/3-channel 28×28 and 32×32 inputs to N×classes") {
  struct Input {
    int H, C;
  };
  const Input inputs[] = {{32, 3}, {28, 1}};
  for (const std::string& name : net_names()) {
    if (name == "resnet34" || name == "resnet56" || name == "vgg19") continue;  // same code paths, slower
    for (const Input& in : inputs) {
      SUBCASE((name + " " + std::to_string(in.C) + "x" + std::to_string(in.H)).c_str()) {
        Context ctx;
        auto net = make_net(name, {in.H, in.H, in.C, 7});
        net->build(ctx, 1);
        const auto x = test::random_floats(2 * in.H * in.H * in.C, 3);
        Tensor t = Tensor::borrow(const_cast<float*>(x.data()), {2, in.H, in.H, in.C}, DType::F32, Device::cpu());
        net->set_training(false);
        const Tensor y = net->forward(ctx, t);
        CHECK(y.shape() == Shape({2, 7}));
        for (int i = 0; i < 14; ++i) CHECK(std::isfinite(y.data<float>()[i]));
      }
    }
  }
}

TEST_CASE("nets: torchvision names and shapes") {
  Context ctx;
  auto r18 = make_net("resnet18", {32, 32, 3, 10});
  r18->build(ctx, 0);
  CHECK(r18->slot("conv1.weight").slot.shape == Shape({64, 3, 3, 3}));  // KRSC here, OIHW on disk
  CHECK(r18->slot("layer1.0.bn1.running_mean").slot.kind == SlotKind::Buffer);
  CHECK(r18->slot("layer2.0.downsample.0.weight").slot.shape == Shape({128, 1, 1, 64}));
  CHECK(r18->slot("layer4.1.bn2.bias").slot.shape == Shape({512}));
  CHECK(r18->slot("fc.weight").slot.shape == Shape({10, 512}));
  CHECK(r18->counters().size() == 20);  // one num_batches_tracked per BN

  auto vgg = make_net("vgg16", {32, 32, 3, 10});
  vgg->build(ctx, 0);
  CHECK(vgg->slot("features.0.weight").slot.shape == Shape({64, 3, 3, 3}));
  CHECK(vgg->slot("features.1.running_var").slot.kind == SlotKind::Buffer);
  CHECK(vgg->slot("classifier.weight").slot.shape == Shape({10, 512}));
  CHECK_THROWS_AS(vgg->slot("fc.weight"), Error);
}

TEST_CASE("nets: initialisation is deterministic under the seed and follows torchvision") {
  Context ctx;
  auto a = make_net("resnet20", {32, 32, 3, 10});
  auto b = make_net("resnet20", {32, 32, 3, 10});
  auto c = make_net("resnet20", {32, 32, 3, 10});
  a->build(ctx, 7);
  b->build(ctx, 7);
  c->build(ctx, 8);
  CHECK(std::memcmp(a->params().raw(), b->params().raw(), a->params().bytes()) == 0);
  CHECK(std::memcmp(a->params().raw(), c->params().raw(), a->params().bytes()) != 0);

  // Conv weights ~ N(0, 2/fan_out): layer3's 3×3 64→64 convs have fan_out 576.
  const NamedSlot& w = a->slot("layer3.1.conv1.weight");
  const float* p = a->params().data<float>() + w.offset;
  const int64_t n = shape_numel(w.slot.shape);
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < n; ++i) sum += p[i], sq += double{p[i]} * p[i];
  const double std = std::sqrt(sq / n - (sum / n) * (sum / n));
  CHECK(std == doctest::Approx(std::sqrt(2.0 / 576)).epsilon(0.03));
  // BN: weight 1, bias 0, running_var 1; fc bias within ±1/sqrt(64).
  CHECK(a->params().data<float>()[a->slot("bn1.weight").offset] == 1.0f);
  CHECK(a->params().data<float>()[a->slot("bn1.bias").offset] == 0.0f);
  CHECK(a->buffers().data<float>()[a->slot("bn1.running_var").offset] == 1.0f);
  const NamedSlot& fb = a->slot("fc.bias");
  for (int i = 0; i < 10; ++i) CHECK(std::fabs(a->params().data<float>()[fb.offset + i]) <= 0.125f);
}

TEST_CASE("nets: unknown names and impossible inputs are errors") {
  CHECK_THROWS_WITH_AS(make_net("resnet19", {32, 32, 3, 10}), doctest::Contains("unknown net 'resnet19'"), Error);
  CHECK_THROWS_AS(make_net("resnet18", {32, 32, 3, 0}), Error);
  CHECK_THROWS_AS(make_net("vgg16", {8, 8, 3, 10}), Error);  // pools shrink 8×8 to nothing
}
