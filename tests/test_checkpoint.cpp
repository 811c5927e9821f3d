// Checkpoints: bit-exact round trip (parameters, BN statistics, counters), PyTorch OIHW
// layout on disk, and clean errors — with the network left untouched — for a checkpoint
// of another net, another class count, a truncated file or missing metadata.
#include <doctest/doctest.h>

#include <cstring>

#include "engine/core/file_io.h"
#include "engine/io/checkpoint.h"
#include "nets/model_io.h"
#include "tests/test_util.h"

using namespace activeip;

namespace {

ModelMeta meta_for(const Network& net) {
  ModelMeta m = ModelMeta::describe(net, "synthetic", {{0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}});
  m.epoch = 3;
  return m;
}

// Moves the BN running statistics and counters away from their initial values.
void train_mode_forward(Network& net, Context& ctx) {
  const auto x = test::random_floats(static_cast<size_t>(4 * net.info().H * net.info().W * net.info().C), 11);
  net.set_training(true);
  net.forward(ctx, Tensor::borrow(const_cast<float*>(x.data()), net.input_shape(4), DType::F32, Device::cpu()));
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.bytes() == b.bytes() && std::memcmp(a.raw(), b.raw(), a.bytes()) == 0;
}

}  // namespace

TEST_CASE("checkpoint: round trip is bit-exact") {
  Context ctx;
  auto a = make_net("resnet20", {32, 32, 3, 10});
  a->build(ctx, 3);
  train_mode_forward(*a, ctx);
  const test::TempDir dir;
  const std::string path = dir / "roundtrip.safetensors";
  save_model(path, *a, ctx, meta_for(*a));

  LoadedModel b = load_model(path, ctx);
  CHECK(b.meta.net == "resnet20");
  CHECK(b.meta.epoch == 3);
  CHECK(b.meta.norm.std[2] == 0.25f);
  CHECK(same_bytes(a->params(), b.net->params()));
  CHECK(same_bytes(a->buffers(), b.net->buffers()));
  REQUIRE(a->counters().size() == b.net->counters().size());
  CHECK(*b.net->counters()[0].value == 1);
  for (size_t i = 0; i < a->counters().size(); ++i) CHECK(*a->counters()[i].value == *b.net->counters()[i].value);
}

TEST_CASE("checkpoint: conv weights are stored OIHW with torchvision names") {
  Context ctx;
  auto net = make_net("resnet18", {32, 32, 3, 10});
  net->build(ctx, 5);
  const test::TempDir dir;
  const std::string path = dir / "oihw.safetensors";
  save_model(path, *net, ctx, meta_for(*net));
  const SafetensorsReader file(path);
  const SafetensorsView& w = file.get("layer1.0.conv2.weight");
  CHECK(w.shape == Shape({64, 64, 3, 3}));
  CHECK(file.get("layer1.0.bn1.num_batches_tracked").dtype == "I64");
  CHECK(file.get("fc.bias").shape == Shape({10}));
  const NamedSlot& s = net->slot("layer1.0.conv2.weight");
  const float* krsc = net->params().data<float>() + s.offset;
  const int K = 64, R = 3, S = 3, C = 64;
  for (int k : {0, 17, 63})
    for (int c : {0, 5, 63})
      for (int r = 0; r < R; ++r)
        for (int q = 0; q < S; ++q) {
          float on_disk;
          std::memcpy(&on_disk, w.data + sizeof(float) * static_cast<size_t>(((k * C + c) * R + r) * S + q),
                      sizeof on_disk);
          CHECK(on_disk == krsc[((k * R + r) * S + q) * C + c]);
        }
  (void)K;
}

TEST_CASE("checkpoint: mismatched, truncated or foreign files are clean errors") {
  Context ctx;
  auto r20 = make_net("resnet20", {32, 32, 3, 10});
  r20->build(ctx, 1);
  const test::TempDir dir;
  const std::string path = dir / "r20.safetensors";
  save_model(path, *r20, ctx, meta_for(*r20));

  SUBCASE("another net") {
    auto r32 = make_net("resnet32", {32, 32, 3, 10});
    r32->build(ctx, 2);
    const Tensor before = r32->params().clone(ctx);
    CHECK_THROWS_WITH_AS(load_weights(SafetensorsReader(path), *r32, ctx), doctest::Contains("no tensor 'layer1.3"),
                         Error);
    CHECK(same_bytes(before, r32->params()));  // nothing half-loaded
  }
  SUBCASE("another class count") {
    auto r20c = make_net("resnet20", {32, 32, 3, 100});
    r20c->build(ctx, 2);
    CHECK_THROWS_WITH_AS(load_weights(SafetensorsReader(path), *r20c, ctx), doctest::Contains("fc.weight"), Error);
  }
  SUBCASE("a smaller net finds unexpected tensors") {
    auto conv = make_net("convnet", {32, 32, 3, 10});
    conv->build(ctx, 2);
    CHECK_THROWS_AS(load_weights(SafetensorsReader(path), *conv, ctx), Error);
  }
  SUBCASE("truncated") {
    const auto bytes = read_file(path);
    for (size_t keep : {size_t{0}, size_t{7}, size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
      const std::string cut = dir / "cut.safetensors";
      write_file_atomic(cut, {{bytes.data(), keep}});
      CHECK_THROWS_WITH_AS(load_model(cut, ctx), doctest::Contains("cut.safetensors"), Error);
    }
  }
  SUBCASE("not an activeip model") {
    SafetensorsWriter w;
    const float x[2] = {1, 2};
    w.add("weight", "F32", {2}, x, sizeof x);
    const std::string foreign = dir / "foreign.safetensors";
    w.write(foreign);
    CHECK_THROWS_WITH_AS(load_model(foreign, ctx), doctest::Contains("metadata has no 'format'"), Error);
  }
  SUBCASE("metadata naming an unknown net") {
    ModelMeta m = meta_for(*r20);
    m.net = "resnet999";
    const std::string odd = dir / "odd.safetensors";
    save_model(odd, *r20, ctx, m);
    CHECK_THROWS_WITH_AS(load_model(odd, ctx), doctest::Contains("unknown net 'resnet999'"), Error);
  }
}
