// Passes that coexist: two forwards of one network into two passes, then both backwards,
// give bit for bit what two networks of the same weights give; a pass's arenas are laid
// out once for the largest batch and serve smaller ones without allocating; a pass is
// bound to the network that planned it.
#include <doctest/doctest.h>

#include <cstring>

#include "engine/core/random.h"
#include "nets/nets.h"

using namespace activeip;

namespace {

Tensor random_tensor(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::host(shape);
  Rng rng(seed);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(rng.normal());
  return t;
}

bool same(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.bytes()) == 0;
}

struct Result {
  Tensor logits, dx, grads;
};

// One forward and backward of a freshly built copy of the network, in its own pass.
Result alone(Context& ctx, const char* arch, const Tensor& x, const Tensor& dlogits) {
  auto net = make_net(arch, {32, 32, 3, 10});
  net->build(ctx, 11);
  Result r;
  r.logits = net->forward(ctx, x).clone(ctx);
  net->zero_grad(ctx);
  r.dx = net->backward(ctx, dlogits).clone(ctx);
  r.grads = net->grads().clone(ctx);
  return r;
}

}  // namespace

TEST_CASE("passes: two passes alive at once give what two networks give") {
  for (const char* arch : {"resnet20", "vgg11"}) {
    CAPTURE(arch);
    Context ctx(Device::cpu(), 1);
    const Tensor x1 = random_tensor({5, 32, 32, 3}, 1), x2 = random_tensor({3, 32, 32, 3}, 2);
    const Tensor d1 = random_tensor({5, 10}, 3), d2 = random_tensor({3, 10}, 4);
    const Result r1 = alone(ctx, arch, x1, d1), r2 = alone(ctx, arch, x2, d2);

    auto net = make_net(arch, {32, 32, 3, 10});
    net->build(ctx, 11);
    Pass a, b;
    const Tensor la = net->forward(ctx, a, x1);
    const Tensor lb = net->forward(ctx, b, x2);  // must leave pass a's activations alone
    CHECK(same(la, r1.logits));
    CHECK(same(lb, r2.logits));
    net->zero_grad(ctx);
    const Tensor dxa = net->backward(ctx, a, d1);
    const Tensor ga = net->grads().clone(ctx);
    net->zero_grad(ctx);
    const Tensor dxb = net->backward(ctx, b, d2);
    CHECK(same(dxa, r1.dx));
    CHECK(same(ga, r1.grads));
    CHECK(same(dxb, r2.dx));
    CHECK(same(net->grads(), r2.grads));
    CHECK(same(la, r1.logits));  // still: the other pass's backward wrote elsewhere too
  }
}

TEST_CASE("passes: an arena is laid out for the largest batch and serves smaller ones without allocating") {
  Context ctx(Device::cpu(), 1);
  auto net = make_net("resnet20", {32, 32, 3, 10});
  net->build(ctx, 5);
  Pass pass;
  const Tensor x = random_tensor({8, 32, 32, 3}, 6), d = random_tensor({8, 10}, 7);
  net->forward(ctx, pass, x);
  net->backward(ctx, pass, d);
  const size_t fwd = pass.bytes(Phase::Forward), bwd = pass.bytes(Phase::Backward);
  CHECK(pass.rows(Phase::Forward) == 8);
  CHECK(fwd > 0);
  CHECK(bwd > 0);

  const int64_t before = tensor_allocations();
  const Tensor small = net->forward(ctx, pass, x.slice(0, 3));
  CHECK(small.shape() == Shape({3, 10}));
  net->backward(ctx, pass, d.slice(0, 3));
  net->forward(ctx, pass, x);
  CHECK(tensor_allocations() == before);
  CHECK(pass.bytes(Phase::Forward) == fwd);
  CHECK(pass.bytes(Phase::Backward) == bwd);

  // A larger batch lays the arena out again, once.
  const Tensor big = random_tensor({12, 32, 32, 3}, 8);
  net->forward(ctx, pass, big);
  CHECK(pass.rows(Phase::Forward) == 12);
  CHECK(pass.bytes(Phase::Forward) > fwd);
  CHECK(pass.rows(Phase::Backward) == 8);  // the backward arena grows at its own next use
}

TEST_CASE("passes: a pass belongs to the network that planned it, and a backward must match its forward") {
  Context ctx(Device::cpu(), 1);
  auto one = make_net("resnet20", {32, 32, 3, 10}), other = make_net("resnet20", {32, 32, 3, 10});
  one->build(ctx, 1);
  other->build(ctx, 1);
  const Tensor x = random_tensor({4, 32, 32, 3}, 9);
  Pass pass;
  CHECK_THROWS_WITH_AS(one->backward(ctx, pass, random_tensor({4, 10}, 1)),
                       doctest::Contains("a pass it has not run forward in"), Error);
  one->forward(ctx, pass, x);
  CHECK_THROWS_WITH_AS(other->forward(ctx, pass, x), doctest::Contains("a pass of another network"), Error);
  CHECK_THROWS_WITH_AS(one->backward(ctx, pass, random_tensor({3, 10}, 1)),
                       doctest::Contains("after a forward of 4 rows"), Error);
}
