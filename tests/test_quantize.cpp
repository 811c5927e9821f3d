// The quantization attack (attacks/quantize.h) on a convnet: per output channel every weight is
// an integer multiple of its channel's scale within ±(2^(B−1) − 1), the channel's largest
// magnitude is kept, biases and batch norms are untouched; per tensor one scale serves the whole
// tensor; fewer bits cost more error; and bits outside 2 … 16 are refused.
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include "attacks/quantize.h"
#include "engine/train/mask.h"
#include "nets/nets.h"
#include "tests/train_test_util.h"

using namespace activeip;

namespace {

// The distinct integer levels round(w / scale) of weights w[0, n) with scale = max|w| / qmax,
// and whether each weight sits on its level (within float rounding).
std::set<long> levels(const float* w, int64_t n, int bits, bool* on_grid) {
  const double qmax = std::ldexp(1.0, bits - 1) - 1;
  double amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(static_cast<double>(w[i])));
  std::set<long> out;
  *on_grid = amax > 0;
  for (int64_t i = 0; i < n; ++i) {
    const double q = w[i] / (amax / qmax);
    out.insert(std::lround(q));
    *on_grid = *on_grid && std::fabs(q - std::round(q)) < 1e-3 && std::fabs(q) <= qmax + 1e-3;
  }
  return out;
}

}  // namespace

TEST_CASE("quantize: weights on a B-bit grid per channel or per tensor, the rest untouched") {
  Context ctx;
  auto make = [&] {
    auto net = make_net("convnet", {32, 32, 3, 10});
    net->build(ctx, 5);
    return net;
  };
  auto original = make();
  const std::vector<float> w0 = test::host_floats(original->params(), ctx);
  double error8 = 0;
  for (const int bits : {8, 4}) {
    for (const auto granularity : {QuantizeGranularity::Channel, QuantizeGranularity::Tensor}) {
      auto net = make();
      const QuantizeStats st = quantize_weights(*net, ctx, {bits, granularity});
      const std::vector<float> w = test::host_floats(net->params(), ctx);
      CHECK(st.tensors == 4);  // three convs and the classifier
      INFO(bits << " bits, per " << (granularity == QuantizeGranularity::Channel ? "channel" : "tensor"));
      for (const NamedSlot& s : net->slots()) {
        if (s.slot.kind != SlotKind::Parameter) continue;
        INFO(s.name);
        const int64_t n = shape_numel(s.slot.shape);
        if (!prunable(s)) {  // biases, batch norms
          CHECK(std::equal(w.begin() + s.offset, w.begin() + s.offset + n, w0.begin() + s.offset));
          continue;
        }
        const int64_t group = granularity == QuantizeGranularity::Channel ? n / s.slot.shape[0] : n;
        for (int64_t g = 0; g < n; g += group) {
          bool on_grid = false;
          const std::set<long> l = levels(w.data() + s.offset + g, group, bits, &on_grid);
          CHECK(on_grid);
          CHECK(static_cast<double>(l.size()) <= std::ldexp(1.0, bits) - 1);
          double before = 0, after = 0;  // the group's largest magnitude is a level of its own
          for (int64_t i = g; i < g + group; ++i) {
            before = std::max(before, std::fabs(static_cast<double>(w0[s.offset + i])));
            after = std::max(after, std::fabs(static_cast<double>(w[s.offset + i])));
          }
          CHECK(after == doctest::Approx(before).epsilon(1e-6));
        }
      }
      if (bits == 8 && granularity == QuantizeGranularity::Channel) error8 = st.relative_error;
      if (bits == 4 && granularity == QuantizeGranularity::Channel) CHECK(st.relative_error > 4 * error8);
      CHECK(st.relative_error > 0);
    }
  }
  CHECK_THROWS_WITH_AS(quantize_weights(*original, ctx, {1, QuantizeGranularity::Channel}),
                       doctest::Contains("--bits must be in 2"), Error);
  CHECK_THROWS_WITH_AS(parse_quantize_granularity("row"), doctest::Contains("'row' is unknown"), Error);
}
