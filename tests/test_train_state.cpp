// The training step's economy and the training state as one value: after warm-up a CPU step
// (plain, protected, SAM) allocates no tensor storage and makes the host wait only where
// time_steps itself synchronises, the running loss costing one wait per read (every
// log_every steps); a snapshot restored repeats the same steps bit for bit.
#include <doctest/doctest.h>

#include <array>

#include "engine/core/random.h"
#include "fingerprint/protect.h"
#include "fingerprint/scheme.h"
#include "nets/nets.h"
#include "tests/fingerprint_util.h"
#include "tests/train_test_util.h"

using namespace activeip;

namespace {

OwnerKey key() {
  std::array<uint8_t, OwnerKey::kBytes> b{};
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(7 * i + 3);
  return OwnerKey(b);
}

struct Variant {
  const char* name;
  double sam_rho;
  const char* ascent;
  bool protect;
};

}  // namespace

TEST_CASE("training step: after warm-up a CPU step allocates nothing and waits only to be timed and read") {
  const DataSplits data = load_data({"synthetic", "", 256, 32});
  for (const Variant v : {Variant{"plain", 0, "batch", false}, Variant{"protected", 0, "batch", true},
                          Variant{"sam", 0.05, "batch", false}, Variant{"sam extra, protected", 0.05, "extra", true}}) {
    CAPTURE(v.name);
    Context ctx(Device::cpu(), 1);
    auto net = make_net("convnet", {32, 32, 3, 10});
    net->build(ctx, 4);
    TrainConfig config = test::small_config(1);  // 256 records: 8 steps of 32 an epoch
    config.sam_rho = v.sam_rho;
    config.sam_ascent = v.ascent;
    config.log_every = 4;  // reads after steps 4 and 8 (time_steps starts at step 1 each call)
    ProtectConfig pc;
    pc.seed = config.seed;
    const Scheme& scheme = default_scheme();
    ProtectComposer composer(scheme, key(), test::named({"alice", "bob"}), scheme.spec(32, 32, 3, 10, 2), data.norm,
                             pc);
    Trainer t(*net, ctx, data, config, v.protect ? &composer : nullptr);
    t.time_steps(4);  // warm-up: every buffer planned for the batch, the loss read once
    const int64_t allocations = tensor_allocations(), syncs = ctx.host_syncs();
    t.time_steps(3);  // steps 1-3: no read
    CHECK(tensor_allocations() - allocations == 0);
    CHECK(ctx.host_syncs() - syncs == 3);  // time_steps' own wait at the end of each step
    t.time_steps(4);                       // steps 1-4: one read after step 4
    CHECK(tensor_allocations() - allocations == 0);
    CHECK(ctx.host_syncs() - syncs == 3 + 4 + 1);
  }
}

TEST_CASE("training state: a restored snapshot repeats the same steps bit for bit") {
  const DataSplits data = load_data({"synthetic", "", 256, 32});
  Context ctx(Device::cpu(), 1);
  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, 4);
  Trainer t(*net, ctx, data, test::small_config(2));
  t.time_steps(1);  // momentum and running statistics away from their initial values
  TrainState state;
  t.snapshot(state);
  const std::vector<float> w0 = test::host_floats(net->params(), ctx);
  const std::vector<int64_t> counters0 = state.net.counters;
  REQUIRE(!counters0.empty());

  t.time_steps(2);
  const std::vector<float> w1 = test::host_floats(net->params(), ctx), b1 = test::host_floats(net->buffers(), ctx);
  TrainState after;
  t.snapshot(after);
  const std::vector<float> m1 = test::host_floats(after.momentum, ctx);
  CHECK(w1 != w0);
  CHECK(*net->counters().front().value == counters0.front() + 2);

  t.restore(state);
  CHECK(test::host_floats(net->params(), ctx) == w0);
  CHECK(*net->counters().front().value == counters0.front());
  t.time_steps(2);
  CHECK(test::host_floats(net->params(), ctx) == w1);
  CHECK(test::host_floats(net->buffers(), ctx) == b1);
  t.snapshot(after);
  CHECK(test::host_floats(after.momentum, ctx) == m1);

  // The state is a value: the snapshot did not move with the training after it.
  CHECK(test::host_floats(state.net.params, ctx) == w0);

  // Another network's state is refused.
  auto other = make_net("resnet20", {32, 32, 3, 10});
  other->build(ctx, 4);
  NetworkState foreign;
  other->snapshot(ctx, foreign);
  CHECK_THROWS_WITH_AS(net->restore(ctx, foreign), doctest::Contains("another network"), Error);
}
