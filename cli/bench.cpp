// `activeip bench conv|gemm|train|infer`: option parsing around the benchmarks in bench/ (which
// hold the logic). --json prints the one result object on stdout; otherwise a table. A
// failed validation still prints the result, then ends with exit status 1.
#include <cstdio>
#include <iostream>
#include <memory>

#include "bench/bench.h"
#include "cli/commands.h"
#include "nets/nets.h"

namespace activeip::cli {

namespace {

struct BenchCommon {
  std::string device = "cuda";
  int threads = 0;
  bool json = false;

  void add_to(CLI::App* cmd, bench::CommonConfig& c, const char* reps_name) {
    cmd->add_option("--device", device, "cpu, cuda or cuda:N")->capture_default_str();
    cmd->add_option("--threads", threads, "CPU threads (default: all cores)")->check(non_negative_number());
    cmd->add_option("--warmup", c.warmup, "Untimed repetitions before timing")
        ->capture_default_str()
        ->check(non_negative_number());
    cmd->add_option(reps_name, c.reps, "Timed repetitions (the median is reported)")
        ->capture_default_str()
        ->check(positive_number());
    cmd->add_flag("--json", json, "Print one JSON object");
  }
  void apply(bench::CommonConfig& c) const {
    try {
      c.device = Device::parse(device);
    } catch (const Error& e) {
      throw UsageError(std::string("--device: ") + e.what());
    }
    c.threads = threads;
  }
  int print(const nlohmann::json& result) const {
    if (json)
      std::cout << result.dump() << "\n";
    else
      std::cout << bench::format_table(result);
    std::cout.flush();
    if (!bench::all_valid(result)) {
      std::fprintf(stderr, "error: a validation against the comparator failed (see \"validation\" in the result)\n");
      return 1;
    }
    return 0;
  }
};

// Integer lists are given as "128,256,512" or repeated options.
template <class T>
CLI::Option* add_list(CLI::App* cmd, const std::string& name, std::vector<T>& v, const std::string& help) {
  return cmd->add_option(name, v, help)->delimiter(',')->capture_default_str();
}

}  // namespace

void add_bench(CLI::App& app, Handler& handler) {
  CLI::App* bench = app.add_subcommand("bench", "GPU benchmarks: our kernels and training against cuDNN / cuBLAS");
  bench->require_subcommand(1);

  {
    auto config = std::make_shared<bench::ConvConfig>();
    auto common = std::make_shared<BenchCommon>();
    CLI::App* cmd = bench->add_subcommand(
        "conv", "Every distinct convolution of the nets: fprop, dgrad, wgrad, ours against cuDNN (fp32)");
    common->add_to(cmd, *config, "--reps");
    cmd->add_option("--batch", config->batch, "Batch size N")->capture_default_str()->check(positive_number());
    add_list(cmd, "--nets", config->nets, "Nets whose convolutions are timed")->check(CLI::IsMember(net_names()));
    add_list(cmd, "--passes", config->passes, "Passes to time")->check(CLI::IsMember({"fprop", "dgrad", "wgrad"}));
    cmd->add_option("--tol", config->tolerance, "Largest relative L2 error of ours against the comparator")
        ->capture_default_str()
        ->check(positive_number());
    cmd->add_option("--rotate-mb", config->rotate_bytes,
                    "MiB of tensors to rotate through between calls (default: twice the L2 cache on CUDA)")
        ->check(non_negative_number());
    cmd->callback([&handler, config, common] {
      handler = [config, common] {
        common->apply(*config);
        config->rotate_bytes *= 1 << 20;
        return common->print(bench::run_conv(*config));
      };
    });
  }
  {
    auto config = std::make_shared<bench::GemmConfig>();
    auto common = std::make_shared<BenchCommon>();
    CLI::App* cmd =
        bench->add_subcommand("gemm", "Our GEMM against cuBLAS SGEMM on linear-layer and square shapes (fp32)");
    common->add_to(cmd, *config, "--reps");
    add_list(cmd, "--batch", config->batches, "Batch sizes of the linear-layer shapes")->check(positive_number());
    add_list(cmd, "--classes", config->classes, "Class counts (output features)")->check(positive_number());
    add_list(cmd, "--squares", config->squares, "Square GEMM sizes M = N = K")->check(positive_number());
    add_list(cmd, "--nets", config->nets, "Nets whose linear layers give the shapes")
        ->check(CLI::IsMember(net_names()));
    cmd->add_option("--tol", config->tolerance, "Largest relative L2 error of ours against the comparator")
        ->capture_default_str()
        ->check(positive_number());
    cmd->add_option("--rotate-mb", config->rotate_bytes,
                    "MiB of operands to rotate through (default: twice the L2 cache on CUDA)")
        ->check(non_negative_number());
    cmd->callback([&handler, config, common] {
      handler = [config, common] {
        common->apply(*config);
        config->rotate_bytes *= 1 << 20;
        return common->print(bench::run_gemm(*config));
      };
    });
  }
  for (const bool inference : {false, true}) {
    auto config = std::make_shared<bench::TrainBenchConfig>();
    auto common = std::make_shared<BenchCommon>();
    config->inference = inference;
    if (inference) config->batches = {256};
    CLI::App* cmd =
        inference
            ? bench->add_subcommand("infer",
                                    "Inference images/s (eval-mode forward passes of one loaded batch) per net, batch, "
                                    "implementation and precision")
            : bench->add_subcommand(
                  "train", "Training images/s, device memory and MFU per net, batch, implementation and precision");
    common->add_to(cmd, *config, inference ? "--reps" : "--steps");
    add_list(cmd, "--nets", config->nets, inference ? "Nets to run" : "Nets to train")
        ->check(CLI::IsMember(net_names()));
    add_list(cmd, "--batch", config->batches, "Batch sizes")->check(number_in(2, 1 << 20));
    add_list(cmd, "--conv-impl", config->conv_impls, "custom, cudnn or both (cudnn also runs the GEMMs on cuBLAS)")
        ->check(CLI::IsMember({"custom", "cudnn"}));
    add_list(cmd, "--precision", config->precisions,
             "fp32, bf16 or both (bf16: convolutions and linear layers on bf16 operands, CPUs with AVX512-BF16)")
        ->check(CLI::IsMember({"fp32", "bf16"}));
    cmd->add_option("--data", config->data, "Dataset (its training split, resident on the device)")
        ->capture_default_str()
        ->check(CLI::IsMember(dataset_names()));
    cmd->add_option("--data-dir", config->data_dir,
                    "Folder holding the official files (default: data/<official folder name>)");
    cmd->add_option("--limit-train", config->limit_train, "Use only the first N training records")
        ->check(positive_number());
    cmd->add_option("--seed", config->seed, "Seed of the weights and batches")->capture_default_str();
    cmd->add_option("--peak-tflops", config->peak_tflops, "fp32 peak for MFU (default: measure the best cuBLAS SGEMM)")
        ->check(positive_number());
    cmd->add_flag("--profile", config->profile,
                  "Also time each layer kind and pass over the timed steps (on CUDA each layer then waits for the "
                  "device, so the step is slower)");
    cmd->callback([&handler, config, common] {
      handler = [config, common] {
        common->apply(*config);
        return common->print(bench::run_train(*config));
      };
    });
  }
}

}  // namespace activeip::cli
