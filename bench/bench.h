// activeip_bench: the benchmarks behind `activeip bench conv|gemm|train`. Each validates
// once against its comparator (cuDNN / cuBLAS on CUDA, the double reference on the CPU),
// warms up, then times many repetitions — CUDA events per repetition on the GPU, the steady
// clock on the CPU — with inputs rotated among enough buffers to exceed the L2 cache, and
// reports the median. Results are JSON objects (the CLI prints them or a table of them);
// a comparator that cannot run is null, with the reason beside it. fp32, except that `train`
// and `infer` also time --precision bf16 on the CPU.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/core/tensor.h"
#include "kernels/conv2d.h"
#include "kernels/gemm.h"
#include "nets/nets.h"

namespace activeip::bench {

// ---- Shapes, read off the nets themselves ----------------------------------------------

// One distinct convolution of a net: the shape at batch N, whether it has a bias, and the
// layers (PyTorch names) that use it, in execution order.
struct ConvCase {
  std::string net;
  Conv2dShape shape;
  bool bias = false;
  std::vector<std::string> layers;
};

struct LinearLayer {
  std::string name;  // "fc", "classifier"
  int in_features = 0, out_features = 0;
};

// Walks the net's layer tree for a batch of `batch` images of spec's size (CIFAR: 32×32×3)
// and returns its distinct convolutions (shape + bias), in order of first use.
std::vector<ConvCase> conv_cases(const std::string& net, int batch, const NetSpec& spec = {});
std::vector<LinearLayer> linear_layers(const std::string& net, const NetSpec& spec = {});
// Forward FLOPs of one image through every convolution and linear layer (2 per
// multiply-add; batch norm, pooling and activations are not counted). Training counts
// three times this (forward, backward-data, backward-weight).
double forward_flops_per_image(const std::string& net, const NetSpec& spec = {});

// ---- Timing ----------------------------------------------------------------------------

struct TimeStats {
  double median_ms = 0, min_ms = 0, max_ms = 0;
  int reps = 0;
};
// Median/min/max of per-repetition times in milliseconds (reps ≥ 1).
TimeStats summarise_ms(std::vector<double> ms);
// Geometric mean of positive values; NaN for an empty list.
double geomean(const std::vector<double>& v);

// What the numbers were measured on: {"device", "gpu", "compute_capability", "sm_count",
// "memory_bytes", "l2_bytes", "driver", "cuda_runtime", "cudnn", "cublas"} on CUDA; {"device",
// "cpu", "threads"} on the CPU; always {"activeip", "build": {"cuda", "cudnn"}}. "threads" is
// the count the benchmark's Contexts run with: `threads` when positive (as Context sets it),
// else OpenMP's default — not the count of whatever ran before (it may be asked before any
// Context exists).
nlohmann::json machine_info(const Device& device, int threads);

// ---- The three benchmarks --------------------------------------------------------------

struct CommonConfig {
  Device device = Device::cuda();
  int threads = 0;  // CPU threads (0: OpenMP's default)
  int warmup = 5;   // untimed repetitions after validation
  int reps = 50;    // timed repetitions, summarised by their median
};

struct ConvConfig : CommonConfig {
  int batch = 256;
  std::vector<std::string> nets = {"resnet18", "vgg16"};
  std::vector<std::string> passes = {"fprop", "dgrad", "wgrad"};
  double tolerance = 1e-4;   // relative L2 of ours against the comparator (or reference)
  int64_t rotate_bytes = 0;  // bytes of inputs to rotate through; 0: 2×L2 on CUDA, none on the CPU
};

struct GemmConfig : CommonConfig {
  std::vector<int> batches = {128, 256, 512};
  std::vector<int> classes = {10, 100};
  std::vector<int> squares = {1024, 2048, 4096};
  std::vector<std::string> nets = {"resnet18", "vgg16"};  // where the linear shapes come from
  double tolerance = 1e-4;
  int64_t rotate_bytes = 0;
};

struct TrainBenchConfig : CommonConfig {
  std::vector<std::string> nets = {"resnet18", "resnet20", "vgg16"};
  std::vector<int> batches = {128, 256, 512};
  std::vector<std::string> conv_impls = {"custom", "cudnn"};  // cudnn runs the GEMMs on cuBLAS
  std::vector<std::string> precisions = {"fp32"};             // fp32, bf16 (engine/core/context.h)
  std::string data = "synthetic", data_dir;
  int64_t limit_train = -1;
  uint64_t seed = 1;
  double peak_tflops = 0;  // fp32 peak for MFU; 0: measure (best cuBLAS SGEMM, or gemm_cpu)
  bool inference = false;  // eval-mode forward passes of one batch instead of training steps
  bool profile = false;    // time per layer kind and pass over the timed steps ("profile" in each run)
  TrainBenchConfig() {
    warmup = 10;
    reps = 50;
  }
};

// Each returns one JSON object: {"command", "machine", "config", …, and every figure}.
// conv: "layers" (one entry per distinct shape and net, with per-pass "ours", "cudnn",
// "ratio", "validation") and "summary" (per net: geometric means of ours/cuDNN).
nlohmann::json run_conv(const ConvConfig& config);
// gemm: "cases" (linear fprop/dgrad/wgrad and squares: "ours", "cublas", "ratio",
// "validation") and "peak" (the best cuBLAS SGEMM TFLOP/s, the MFU denominator).
nlohmann::json run_gemm(const GemmConfig& config);
// train: "peak" and "runs" (net × batch × implementation × precision: images/s, step times, device
// memory, model FLOPs per image, achieved TFLOP/s and MFU). With config.inference the
// command is "infer": eval-mode forward passes of one normalised batch of the training
// split, each run counting forward FLOPs only.
nlohmann::json run_train(const TrainBenchConfig& config);

// The fp32 peak used for MFU on `device`: {"tflops", "source"} (cuBLAS SGEMM on squares up
// to 8192 on CUDA; gemm_cpu on 1024² on the CPU).
nlohmann::json measure_peak(const Device& device, int threads);

// Whether every validation in a result passed (true when nothing was validated).
bool all_valid(const nlohmann::json& result);
// Human-readable table of a result (the CLI's output without --json).
std::string format_table(const nlohmann::json& result);

}  // namespace activeip::bench
