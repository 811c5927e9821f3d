// Times the CPU conv2d passes (fprop, dgrad, wgrad) on ResNet-18 CIFAR layer shapes. Each
// shape is first checked against the double reference on a batch of 2, then every pass is
// warmed up and timed; prints the median ms and GFLOP/s (Conv2dShape::flops()) per pass, or
// with --json one JSON object. Threads: OMP_NUM_THREADS.
//   bench_conv_cpu [--json] [--reps N] [--batch N]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "bench/conv_cases.h"
#include "kernels/conv2d.h"

namespace {

using activeip::Conv2dShape;

std::vector<float> random_floats(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> mag(0.1f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = (rng() & 1 ? 1.0f : -1.0f) * mag(rng);
  return v;
}

double rel_l2(const std::vector<float>& got, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += (got[i] - ref[i]) * (got[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / den);  // NaN in got makes this NaN, which fails the check below
}

// Worst relative L2 error of the three fast passes against the reference (wgrad from zero).
double check_against_reference(Conv2dShape s) {
  s.N = 2;
  const auto x = random_floats(s.x_size(), 1), w = random_floats(s.w_size(), 2), dy = random_floats(s.y_size(), 3);
  const std::vector<double> xd(x.begin(), x.end()), wd(w.begin(), w.end()), dyd(dy.begin(), dy.end());
  std::vector<float> y(s.y_size()), dx(s.x_size()), dw(s.w_size(), 0.0f);
  std::vector<double> y_ref(y.size()), dx_ref(dx.size()), dw_ref(dw.size(), 0.0);
  activeip::conv2d_fprop_cpu(s, x.data(), w.data(), nullptr, y.data());
  activeip::conv2d_fprop_ref(s, xd.data(), wd.data(), nullptr, y_ref.data());
  activeip::conv2d_dgrad_cpu(s, dy.data(), w.data(), dx.data());
  activeip::conv2d_dgrad_ref(s, dyd.data(), wd.data(), dx_ref.data());
  activeip::conv2d_wgrad_cpu(s, x.data(), dy.data(), dw.data(), nullptr);
  activeip::conv2d_wgrad_ref(s, xd.data(), dyd.data(), dw_ref.data(), nullptr);
  const double errs[] = {rel_l2(y, y_ref), rel_l2(dx, dx_ref), rel_l2(dw, dw_ref)};
  double worst = 0;
  for (const double e : errs) worst = std::isnan(e) ? e : std::isnan(worst) ? worst : std::max(worst, e);
  return worst;
}

// Median wall time in ms of `reps` runs after two warm-up runs.
double median_ms(const std::function<void()>& run, int reps) {
  run();
  run();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

int run(int argc, char** argv) {
  bool json = false;
  int reps = 10, batch = 32;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json")
      json = true;
    else if (a == "--reps" && i + 1 < argc)
      reps = std::stoi(argv[++i]);
    else if (a == "--batch" && i + 1 < argc)
      batch = std::stoi(argv[++i]);
    else
      ENSURE(false, "unknown argument '%s' (usage: bench_conv_cpu [--json] [--reps N] [--batch N])", a.c_str());
  }
  ENSURE(reps >= 1 && batch >= 1, "--reps %d and --batch %d must be positive", reps, batch);

  nlohmann::json results = nlohmann::json::array();
  if (!json)
    std::printf("CPU conv2d, %s, %d threads, batch %d, median of %d\n", cpu_name().c_str(), omp_get_max_threads(),
                batch, reps);
  for (const activeip::ConvShapeCase& layer : activeip::kResNetConvLayers) {
    Conv2dShape s = layer.s;
    const double err = check_against_reference(s);
    ENSURE(err <= 1e-5, "%s: fast conv2d differs from the reference (relative error %g)", layer.name, err);
    s.N = batch;
    const auto x = random_floats(s.x_size(), 4), w = random_floats(s.w_size(), 5), dy = random_floats(s.y_size(), 6);
    std::vector<float> y(s.y_size()), dx(s.x_size()), dw(s.w_size(), 0.0f);
    const struct {
      const char* pass;
      std::function<void()> fn;
    } passes[] = {
        {"fprop", [&] { activeip::conv2d_fprop_cpu(s, x.data(), w.data(), nullptr, y.data()); }},
        {"dgrad", [&] { activeip::conv2d_dgrad_cpu(s, dy.data(), w.data(), dx.data()); }},
        {"wgrad", [&] { activeip::conv2d_wgrad_cpu(s, x.data(), dy.data(), dw.data(), nullptr); }},
    };
    for (const auto& p : passes) {
      const double ms = median_ms(p.fn, reps), gflops = s.flops() / (ms * 1e6);
      if (json)
        results.push_back({{"layer", layer.name},
                           {"pass", p.pass},
                           {"N", s.N},
                           {"H", s.H},
                           {"W", s.W},
                           {"C", s.C},
                           {"K", s.K},
                           {"R", s.R},
                           {"S", s.S},
                           {"stride", s.stride},
                           {"pad", s.pad},
                           {"ms", ms},
                           {"gflops", gflops},
                           {"check_rel_err", err}});
      else
        std::printf("%-28s %-6s %9.3f ms %8.1f GFLOP/s   (check %.1e)\n", layer.name, p.pass, ms, gflops, err);
    }
  }
  if (json) {
    const nlohmann::json out = {{"bench", "conv_cpu"}, {"cpu", cpu_name()}, {"threads", omp_get_max_threads()},
                                {"batch", batch},      {"reps", reps},      {"results", results}};
    std::cout << out.dump(2) << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
