// GPU suite: fingerprint stamping on the device against the CPU. The stamp op on batches of
// awkward sizes (N = 1, 7 and 300; 28×28×1 and 32×32×3; samples left clean; patterns in all
// four corners) must agree bit for bit — it is a copy — and the Stamper and the protected
// training mixer must stamp a device batch exactly as they stamp a host one.
#ifdef ACTIVEIP_CUDA

#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "engine/core/context.h"
#include "fingerprint/protect.h"
#include "fingerprint/scheme.h"
#include "tests/fingerprint_util.h"
#include "tests/test_util.h"

namespace activeip {
namespace {

OwnerKey test_key() {
  std::array<uint8_t, OwnerKey::kBytes> b{};
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(3 * i + 1);
  return OwnerKey(b);
}

// The v1 fingerprint of `name`: v1 gives one pattern per user.
Fingerprint v1_fingerprint(const OwnerKey& key, const std::string& name, const PatternSpec& spec) {
  return scheme_for("v1").patterns(key, {name}, spec).front();
}

Tensor host_copy(const std::vector<float>& v, const Shape& shape) {
  Tensor t = Tensor::host(shape);
  std::memcpy(t.data<float>(), v.data(), v.size() * sizeof(float));
  return t;
}

std::vector<float> floats_of(const Tensor& t, Context& ctx) {
  const Tensor h = t.to(Device::cpu(), ctx);
  ctx.synchronize();
  return {h.data<float>(), h.data<float>() + h.numel()};
}

struct Case {
  int N, H, W, C;
};

}  // namespace

TEST_CASE("stamp: the CUDA Stamper matches the CPU bit for bit") {
  for (const Case c : {Case{1, 32, 32, 3}, Case{7, 28, 28, 1}, Case{300, 32, 32, 3}}) {
    CAPTURE(c.N);
    CAPTURE(c.C);
    Context cpu, gpu(Device::cuda());
    const PatternSpec spec = scheme_for("v1").spec(c.H, c.W, c.C, 10, 1);
    Normalization norm;
    for (int k = 0; k < c.C; ++k) {
      norm.mean.push_back(0.3f + 0.1f * k);
      norm.std.push_back(0.25f);
    }
    std::vector<Fingerprint> fps;
    for (const char* name : {"owner", "u1", "u2", "u3", "u4", "u5", "u6", "u7"})
      fps.push_back(v1_fingerprint(test_key(), name, spec));
    std::vector<int32_t> ids(static_cast<size_t>(c.N));
    for (int n = 0; n < c.N; ++n) ids[static_cast<size_t>(n)] = n % 5 == 2 ? -1 : n % 8;
    const Shape shape = {c.N, c.H, c.W, c.C};
    const std::vector<float> x0 = test::random_floats(static_cast<size_t>(shape_numel(shape)), 17);

    Tensor xc = host_copy(x0, shape);
    Stamper sc(spec, norm);
    sc.set_patterns(cpu, fps);
    sc.stamp(cpu, xc, 0, ids.data(), c.N);

    Tensor xg = host_copy(x0, shape).to(gpu.device(), gpu);
    Stamper sg(spec, norm);
    sg.set_patterns(gpu, fps);
    sg.stamp(gpu, xg, 0, ids.data(), c.N);
    const std::vector<float> got = floats_of(xg, gpu);
    const std::vector<float> want(xc.data<float>(), xc.data<float>() + xc.numel());
    CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
    CHECK(got != x0);  // something was stamped

    // The pixel bank (no normalisation) on uint8 images, as stamping before augmentation uses it.
    const std::vector<uint8_t> u0 = test::random_bytes(static_cast<size_t>(shape_numel(shape)), 19);
    Tensor uc = Tensor::host(shape, DType::U8);
    std::memcpy(uc.raw(), u0.data(), u0.size());
    Tensor ug = uc.to(gpu.device(), gpu);
    Stamper pc(spec, std::nullopt), pg(spec, std::nullopt);
    pc.set_patterns(cpu, fps);
    pc.stamp(cpu, uc, 0, ids.data(), c.N);
    pg.set_patterns(gpu, fps);
    pg.stamp(gpu, ug, 0, ids.data(), c.N);
    const Tensor back = ug.to(Device::cpu(), gpu);
    gpu.synchronize();
    CHECK(std::memcmp(back.raw(), uc.raw(), u0.size()) == 0);
    CHECK(std::memcmp(uc.raw(), u0.data(), u0.size()) != 0);
  }
}

TEST_CASE("stamp: the training mixer alters a device batch as it alters a host one") {
  const PatternSpec spec = scheme_for("v1").spec(32, 32, 3, 10, 1);
  const Normalization norm{{0.49f, 0.48f, 0.45f}, {0.25f, 0.24f, 0.26f}};
  ProtectConfig pc;
  pc.seed = 5;
  const int batch = 37;
  Context cpu, gpu(Device::cuda());
  ProtectComposer mc(scheme_for("v1"), test_key(), test::named({"a", "b", "c"}), spec, norm, pc),
      mg(scheme_for("v1"), test_key(), test::named({"a", "b", "c"}), spec, norm, pc);
  const int extra = mc.extra(batch);
  std::vector<int32_t> lc(static_cast<size_t>(extra), 0), lg(static_cast<size_t>(extra), 0);
  mc.relabel(9, batch, lc.data());
  mg.relabel(9, batch, lg.data());
  CHECK(lc == lg);
  const Shape shape = {batch + extra, 32, 32, 3};
  const std::vector<float> x0 = test::random_floats(static_cast<size_t>(shape_numel(shape)), 23);
  Tensor xc = host_copy(x0, shape);
  Tensor xg = host_copy(x0, shape).to(gpu.device(), gpu);
  mc.alter(cpu, xc, batch, extra);
  mg.alter(gpu, xg, batch, extra);
  const std::vector<float> got = floats_of(xg, gpu);
  CHECK(std::memcmp(got.data(), xc.data<float>(), got.size() * sizeof(float)) == 0);
}

}  // namespace activeip

#endif  // ACTIVEIP_CUDA
