// `bench train` and `bench infer`: training (or inference) throughput and device memory per
// net × batch × implementation. Each run gets a fresh Context (so the caching allocator's
// peak is that run's alone), builds the net, and times Trainer::time_steps — the real step:
// batch gathered and augmented on the device from the resident dataset, forward, loss,
// backward, SGD — or, for inference, eval-mode forward passes of one batch loaded once (as
// `eval` runs them, without the loading), reporting the median of the timed repetitions
// after the warm-up ones. Model FLOPs per image count every convolution and linear layer
// three times in training (forward, backward-data, backward-weight), once in inference;
// MFU divides the achieved rate by the measured fp32 peak.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "base/error.h"
#include "bench/bench.h"
#include "bench/detail.h"
#include "engine/core/profile.h"
#include "engine/train/batch.h"
#include "engine/train/trainer.h"

#ifdef ACTIVEIP_CUDA
#include <cuda_runtime_api.h>

#include "engine/core/cuda_memory.h"
#endif

namespace activeip::bench {

namespace {

using nlohmann::json;

// Seconds of each of `reps` eval-mode forward passes of one batch, after `warmup` untimed
// ones: the first `batch` records of the training split, normalised, loaded once (inference
// times the network, not the loader). The timed passes record into `profile` when given.
std::vector<double> time_forward(Context& ctx, Network& net, const DataSplits& data, int batch, int warmup, int reps,
                                 Profile* profile) {
  const Tensor images = data.train.images.to(ctx.device(), ctx);
  BatchLoader loader(ctx, data.train, images, data.norm);
  const int b = static_cast<int>(std::min<int64_t>(batch, data.train.size()));
  std::vector<int32_t> order(static_cast<size_t>(b));
  std::iota(order.begin(), order.end(), 0);
  BatchRows rows;
  plain_rows(order.data(), b, data.train, rows);
  const Tensor x = loader.load(rows, nullptr);
  net.set_training(false);
  for (int i = 0; i < warmup; ++i) net.forward(ctx, x);
  ctx.synchronize();
  ctx.set_profile(profile);
  std::vector<double> seconds;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    net.forward(ctx, x);
    ctx.synchronize();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  ctx.set_profile(nullptr);
  return seconds;
}

// The profile as rows sorted by time: ms per step, share of the timed steps' whole time, and
// calls per step; what no scope covered is "other".
json profile_rows(const Profile& profile, double step_seconds, int steps) {
  std::vector<Profile::Entry> entries = profile.entries();
  entries.push_back({"other", "step", std::max(0.0, step_seconds - profile.total_seconds()), steps});
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.seconds > b.seconds; });
  json rows = json::array();
  for (const Profile::Entry& e : entries)
    rows.push_back({{"what", e.what},
                    {"phase", e.phase},
                    {"ms_per_step", e.seconds * 1e3 / steps},
                    {"share", step_seconds > 0 ? e.seconds / step_seconds : 0.0},
                    {"calls_per_step", static_cast<double>(e.calls) / steps}});
  return rows;
}

json one_run(const TrainBenchConfig& config, const DataSplits& data, const std::string& net_name, int batch,
             const std::string& conv_impl, const std::string& precision, double peak_tflops) {
  const std::string gemm_impl = conv_impl == "cudnn" ? "cublas" : "custom";
  NetSpec spec{data.train.H, data.train.W, data.train.C, data.train.num_classes};
  const double flops = (config.inference ? 1 : 3) * forward_flops_per_image(net_name, spec);
  json r = {{"net", net_name},        {"batch", batch},         {"conv_impl", conv_impl},
            {"gemm_impl", gemm_impl}, {"precision", precision}, {"model_gflops_per_image", flops / 1e9}};
  if (conv_impl == "cudnn") {
    const std::string missing = detail::cudnn_missing(config.device);
    if (!missing.empty()) {
      r["images_per_s"] = nullptr;
      r["reason"] = missing;
      return r;
    }
  }
  try {
    Context ctx(config.device, config.threads);
    ctx.use(parse_conv_impl(conv_impl), parse_gemm_impl(gemm_impl));
    ctx.set_precision(parse_precision(precision));
    std::unique_ptr<Network> net = make_net(net_name, spec);
    net->build(ctx, config.seed);
    TrainConfig tc;
    tc.epochs = 1;
    tc.batch = batch;
    tc.lr = 0.01;  // small and constant: the step costs the same at any rate
    tc.schedule = "constant";
    tc.seed = config.seed;
    Profile profile;
    Profile* const into = config.profile ? &profile : nullptr;
    std::vector<double> seconds;
    if (config.inference) {
      seconds = time_forward(ctx, *net, data, batch, config.warmup, config.reps, into);
    } else {
      Trainer trainer(*net, ctx, data, tc);
      trainer.time_steps(config.warmup);
      ctx.set_profile(into);
      seconds = trainer.time_steps(config.reps);
      ctx.set_profile(nullptr);
    }
    std::vector<double> ms;
    for (double sec : seconds) ms.push_back(sec * 1e3);
    if (config.profile)
      r["profile"] = profile_rows(profile, std::accumulate(seconds.begin(), seconds.end(), 0.0), config.reps);
    const TimeStats t = summarise_ms(ms);
    const int images = static_cast<int>(std::min<int64_t>(batch, data.train.size()));
    const double ips = images / (t.median_ms * 1e-3);
    const double achieved = flops * ips / 1e12;
    r["images_per_batch"] = images;
    r["step_ms"] = {{"median", t.median_ms}, {"min", t.min_ms}, {"max", t.max_ms}, {"steps", t.reps}};
    r["images_per_s"] = ips;
    r["achieved_tflops"] = achieved;
    r["mfu"] = peak_tflops > 0 && precision == "fp32" ? json(achieved / peak_tflops) : json(nullptr);  // an fp32 peak
    json mem = {{"dataset_bytes", data.train.images.bytes()}};
#ifdef ACTIVEIP_CUDA
    if (ctx.is_cuda()) {
      ctx.synchronize();
      if (auto* a = dynamic_cast<cuda::CachingAllocator*>(&ctx.allocator())) {
        mem["peak_allocated_bytes"] = a->peak_bytes();
        mem["driver_allocations"] = a->driver_allocations();
      }
      size_t free_bytes = 0, total_bytes = 0;
      CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
      mem["device_used_bytes"] = total_bytes - free_bytes;
    }
#endif
    if (!mem.contains("peak_allocated_bytes")) {
      mem["peak_allocated_bytes"] = nullptr;
      mem["reason"] = "device memory statistics exist only on CUDA";
    }
    r["memory"] = mem;
  } catch (const Error& e) {
    r["images_per_s"] = nullptr;
    r["reason"] = e.what();
  }
  return r;
}

}  // namespace

json run_train(const TrainBenchConfig& config) {
  const char* command = config.inference ? "infer" : "train";
  ENSURE(config.reps >= 1, "--steps must be at least 1, got %d", config.reps);
  ENSURE(config.warmup >= 0, "--warmup must be non-negative, got %d", config.warmup);
  for (int b : config.batches) ENSURE(b >= 2, "--batch must be at least 2 (batch norm needs two samples), got %d", b);
  for (const std::string& impl : config.conv_impls)
    ENSURE(impl == "custom" || impl == "cudnn", "--conv-impl: unknown implementation '%s' (custom or cudnn)",
           impl.c_str());
  const DataSplits data = load_data(DataSpec{config.data, config.data_dir, config.limit_train, 0});  // no test split

  json out;
  out["command"] = command;
  out["machine"] = machine_info(config.device, config.threads);
  out["config"] = {{"device", config.device.str()},
                   {"data", config.data},
                   {"train_records", data.train.size()},
                   {"nets", config.nets},
                   {"batches", config.batches},
                   {"conv_impls", config.conv_impls},
                   {"warmup_steps", config.warmup},
                   {"timed_steps", config.reps},
                   {"seed", config.seed},
                   {"precisions", config.precisions},
                   {"timing", "wall clock per step, device synchronised at the end of each step"},
                   {"profile", config.profile}};
  if (config.inference) {
    out["config"]["input"] = "the first records of the training split, normalised, loaded once";
  } else {
    out["config"]["augment"] = "random crop (pad 4) + horizontal flip + normalisation, on the device";
    out["config"]["optimizer"] = "SGD momentum 0.9, weight decay 5e-4, constant lr 0.01";
  }
  const json peak = config.peak_tflops > 0
                        ? json{{"tflops", config.peak_tflops}, {"source", "--peak-tflops"}, {"precision", "fp32"}}
                        : measure_peak(config.device, config.threads);
  out["peak"] = peak;
  const double peak_tflops = peak["tflops"].get<double>();
  out["runs"] = json::array();
  for (const std::string& net : config.nets)
    for (int batch : config.batches)
      for (const std::string& impl : config.conv_impls)
        for (const std::string& precision : config.precisions)
          out["runs"].push_back(one_run(config, data, net, batch, impl, precision, peak_tflops));
  // The best images/s per net, whichever batch, implementation and precision gave it.
  json best = json::object();
  for (const json& r : out["runs"]) {
    if (!r["images_per_s"].is_number()) continue;
    const std::string net = r["net"];
    if (!best.contains(net) || r["images_per_s"].get<double>() > best[net]["images_per_s"].get<double>())
      best[net] = {{"images_per_s", r["images_per_s"]},
                   {"batch", r["batch"]},
                   {"conv_impl", r["conv_impl"]},
                   {"precision", r["precision"]},
                   {"mfu", r["mfu"]}};
  }
  out["best"] = best;
  return out;
}

}  // namespace activeip::bench
