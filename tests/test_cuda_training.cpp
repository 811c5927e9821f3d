// GPU suite, whole networks: one training step (forward, loss, backward, SGD) of ResNet-18,
// ResNet-20 and VGG-16 on CUDA against the same step on the CPU backend from the same
// weights and batch — logits, loss, every gradient and every updated parameter — with the
// custom kernels and, where the build has them, with cuDNN / cuBLAS; and a short training
// run on `synthetic` whose CUDA losses stay within tolerance of the CPU's.
// A sharpness-aware (SAM) step on CUDA against the same step on the CPU. After warm-up a
// step (plain or SAM) allocates no tensor and makes the host wait only where time_steps
// synchronises; the running loss costs one wait per read (every log_every steps).
// A whole-network gradient can sit next to a kink (a ReLU or a near-constant BN channel)
// where a 1e-6 change of the input moves it by 1e-2 on the CPU alone; comparing devices
// there measures the kink, not the kernels. So each case first checks on the CPU that its
// batch is well conditioned, and the batches are chosen so.
#ifdef ACTIVEIP_CUDA

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/nn/loss.h"
#include "engine/train/optimizer.h"
#include "engine/train/trainer.h"
#include "nets/nets.h"
#include "tests/test_util.h"
#include "tests/train_test_util.h"

namespace activeip {
namespace {

struct StepResult {
  std::vector<float> logits, grads, params, dx;
  double loss = 0;
};

// One SGD step of `net` on ctx's device from seed-`seed` weights on batch xs.
StepResult train_step(Context& ctx, const std::string& name, const NetSpec& in, const std::vector<float>& xs,
                      const std::vector<int32_t>& ys) {
  const int N = static_cast<int>(ys.size());
  auto net = make_net(name, in);
  net->build(ctx, 7);
  net->set_training(true);
  net->begin_step(0);
  Tensor x_host = Tensor::borrow(const_cast<float*>(xs.data()), net->input_shape(N), DType::F32, Device::cpu());
  Tensor labels_host = Tensor::borrow(const_cast<int32_t*>(ys.data()), {N}, DType::I32, Device::cpu());
  const Tensor x = x_host.to(ctx.device(), ctx), labels = labels_host.to(ctx.device(), ctx);

  SoftmaxCrossEntropy loss(0.1f);
  Sgd sgd(*net, ctx, SgdParams{.lr = 0.05f, .momentum = 0.9f, .weight_decay = 5e-4f, .nesterov = true});
  net->zero_grad(ctx);
  const Tensor logits = net->forward(ctx, x);
  StepResult r;
  r.logits = test::host_floats(logits, ctx);
  loss.forward(ctx, logits, labels);
  r.loss = loss.read(ctx).loss;
  r.dx = test::host_floats(net->backward(ctx, loss.backward(ctx)), ctx);
  r.grads = test::host_floats(net->grads(), ctx);
  sgd.step(ctx, 0.05f);
  r.params = test::host_floats(net->params(), ctx);
  return r;
}

}  // namespace

TEST_CASE("a whole training step on CUDA matches the CPU backend") {
  struct Case {
    const char* net;
    NetSpec in;
    int N;
    uint64_t seed;  // of the input batch
  };
  // N = 4 keeps the CPU side quick; BN's last stage of ResNet-18 still sees 4·4·4 rows.
  const Case cases[] = {{"resnet18", {32, 32, 3, 10}, 4, 6},
                        {"resnet18", {28, 28, 1, 10}, 3, 5},
                        {"resnet20", {32, 32, 3, 100}, 5, 5},
                        {"vgg16", {32, 32, 3, 10}, 4, 5}};
  struct Impl {
    ConvImpl conv;
    GemmImpl gemm;
  };
  std::vector<Impl> impls = {{ConvImpl::Custom, GemmImpl::Custom}};
#ifdef ACTIVEIP_CUDNN
  impls.push_back({ConvImpl::Cudnn, GemmImpl::Cublas});
#endif
  for (const Case& c : cases) {
    const size_t pixels = static_cast<size_t>(c.N) * c.in.H * c.in.W * c.in.C;
    const std::vector<float> xs = test::random_floats(pixels, c.seed, -2.0f, 2.0f);
    std::vector<int32_t> ys(c.N);
    for (int i = 0; i < c.N; ++i) ys[i] = (3 * i + 1) % c.in.num_classes;
    Context cpu;
    const StepResult ref = train_step(cpu, c.net, c.in, xs, ys);
    {
      // Conditioning: the CPU's own gradients under a ±1e-6 relative change of the input.
      std::vector<float> nudged = xs;
      for (size_t i = 0; i < nudged.size(); ++i) nudged[i] *= i % 2 ? 1.0f + 1e-6f : 1.0f - 1e-6f;
      const StepResult moved = train_step(cpu, c.net, c.in, nudged, ys);
      INFO(c.net << " seed " << c.seed << ": the batch sits at a kink of the gradient; pick another seed");
      test::expect_close(moved.grads, ref.grads, {.rel = 2e-5});
    }
    for (const Impl& impl : impls) {
      const std::string name = std::string(c.net) + " " + std::to_string(c.in.C) + "x" + std::to_string(c.in.H) +
                               " conv=" + impl_name(impl.conv) + " gemm=" + impl_name(impl.gemm);
      SUBCASE(name.c_str()) {
        Context gpu(Device::cuda());
        gpu.use(impl.conv, impl.gemm);
        const StepResult got = train_step(gpu, c.net, c.in, xs, ys);
        // The forward pass is a chain of fp32 reductions in another order: 1e-5 per op
        // compounds over ~20 layers to a few 1e-5; gradients pass through BN's backward,
        // which divides by the batch's standard deviation, so they get 1e-4.
        test::expect_close(got.logits, ref.logits, {.rel = 1e-4});
        CHECK(std::fabs(got.loss - ref.loss) <= 1e-4 * std::fabs(ref.loss));
        test::expect_close(got.dx, ref.dx, {.rel = 1e-4});
        test::expect_close(got.grads, ref.grads, {.rel = 1e-4});
        test::expect_close(got.params, ref.params, {.rel = 1e-6});
      }
    }
  }
}

TEST_CASE("training on CUDA follows the CPU's losses on synthetic") {
  const DataSplits data = load_data(DataSpec{"synthetic", "", 512, 256});
  TrainConfig config;
  config.epochs = 2;
  config.batch = 32;
  config.lr = 0.05;
  config.seed = 3;
  config.eval_batch = 64;
  auto run = [&](Device device) {
    Context ctx(device);
    auto net = make_net("convnet", {32, 32, 3, 10});
    net->build(ctx, 3);
    Trainer t(*net, ctx, data, config);
    std::vector<EpochRecord> records;
    while (!t.done()) records.push_back(t.train_epoch({}));
    return records;
  };
  const std::vector<EpochRecord> cpu = run(Device::cpu()), gpu = run(Device::cuda());
  REQUIRE(cpu.size() == gpu.size());
  for (size_t e = 0; e < cpu.size(); ++e) {
    INFO("epoch " << e + 1 << ": CPU train loss " << cpu[e].train_loss << ", CUDA " << gpu[e].train_loss);
    // Same batches, crops and flips (planned on the host); only summation order differs,
    // and after 32 steps of SGD that drifts the loss by far less than 1%.
    CHECK(std::fabs(gpu[e].train_loss - cpu[e].train_loss) <= 0.01 * cpu[e].train_loss);
    CHECK(std::fabs(gpu[e].test_loss - cpu[e].test_loss) <= 0.01 * cpu[e].test_loss + 1e-3);
    CHECK(std::fabs(gpu[e].test_accuracy - cpu[e].test_accuracy) <= 0.02);
  }
}

TEST_CASE("a SAM step on CUDA matches the CPU's") {
  const DataSplits data = load_data(DataSpec{"synthetic", "", 256, 64});
  TrainConfig config = test::small_config(1);
  config.sam_rho = 0.05;
  auto step = [&](Device device, std::vector<float>& buffers) {
    Context ctx(device);
    auto net = make_net("convnet", {32, 32, 3, 10});
    net->build(ctx, 4);
    Trainer t(*net, ctx, data, config);
    t.time_steps(1);
    buffers = test::host_floats(net->buffers(), ctx);
    return test::host_floats(net->params(), ctx);
  };
  std::vector<float> cpu_buffers, gpu_buffers;
  const std::vector<float> cpu = step(Device::cpu(), cpu_buffers), gpu = step(Device::cuda(), gpu_buffers);
  REQUIRE(cpu.size() == gpu.size());
  double worst = 0;
  for (size_t i = 0; i < cpu.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(cpu[i]) - gpu[i]));
  CHECK(worst <= 1e-5);  // one step at lr 0.05: the summation order moves weights by ~1e-7
  double worst_buffer = 0;
  for (size_t i = 0; i < cpu_buffers.size(); ++i)
    worst_buffer = std::max(worst_buffer, std::fabs(static_cast<double>(cpu_buffers[i]) - gpu_buffers[i]));
  CHECK(worst_buffer <= 1e-5);
}

TEST_CASE("after warm-up a CUDA step allocates nothing and waits only to be timed and read") {
  const DataSplits data = load_data(DataSpec{"synthetic", "", 256, 64});
  for (const double rho : {0.0, 0.05}) {
    CAPTURE(rho);
    TrainConfig config = test::small_config(1);  // 256 records: 8 steps of 32 an epoch
    config.sam_rho = rho;
    config.log_every = 4;  // reads after steps 4 and 8 (time_steps starts at step 1 each call)
    Context ctx(Device::cuda());
    auto net = make_net("convnet", {32, 32, 3, 10});
    net->build(ctx, 4);
    Trainer t(*net, ctx, data, config);
    t.time_steps(4);  // warm-up, the loss read once (its host staging made)
    const int64_t allocations = tensor_allocations(), syncs = ctx.host_syncs();
    t.time_steps(3);  // steps 1-3: no read; SAM's ascent stays on the device
    CHECK(tensor_allocations() - allocations == 0);
    CHECK(ctx.host_syncs() - syncs == 3);  // time_steps' own wait at the end of each step
    t.time_steps(4);  // steps 1-4: one read after step 4, one wait
    CHECK(tensor_allocations() - allocations == 0);
    CHECK(ctx.host_syncs() - syncs == 3 + 4 + 1);
  }
}

}  // namespace activeip

#endif  // ACTIVEIP_CUDA
