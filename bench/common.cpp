// Timing, buffers, errors and machine description shared by the benchmarks.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>

#include "base/error.h"
#include "bench/bench.h"
#include "bench/detail.h"
#include "engine/core/context.h"

#ifdef ACTIVEIP_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "engine/core/cuda_memory.h"
#include "kernels/cuda_check.h"
#ifdef ACTIVEIP_CUDNN
#include <cudnn.h>
#endif
#endif

namespace activeip::bench {

TimeStats summarise_ms(std::vector<double> ms) {
  ENSURE(!ms.empty(), "no timed repetitions to summarise");
  std::sort(ms.begin(), ms.end());
  TimeStats t;
  const size_t n = ms.size();
  t.median_ms = n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
  t.min_ms = ms.front();
  t.max_ms = ms.back();
  t.reps = static_cast<int>(n);
  return t;
}

double geomean(const std::vector<double>& v) {
  if (v.empty()) return std::nan("");
  double log_sum = 0;
  for (double x : v) log_sum += std::log(x);
  return std::exp(log_sum / static_cast<double>(v.size()));
}

namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "unknown";
}

#ifdef ACTIVEIP_CUDA
std::string cuda_version(int v) {  // 13000 → "13.0"
  return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
}
#endif

}  // namespace

nlohmann::json machine_info(const Device& device, int threads) {
  nlohmann::json m;
  m["device"] = device.str();
  m["activeip"] = "0.1.0";
#ifdef ACTIVEIP_CUDA
  const bool built_cuda = true;
#else
  const bool built_cuda = false;
#endif
#ifdef ACTIVEIP_CUDNN
  const bool built_cudnn = true;
#else
  const bool built_cudnn = false;
#endif
  m["build"] = {{"cuda", built_cuda}, {"cudnn", built_cudnn}};
  m["cpu"] = cpu_model();
  m["threads"] = cpu_threads(threads);
  if (!device.is_cuda()) return m;
#ifdef ACTIVEIP_CUDA
  cudaDeviceProp p{};
  CUDA_CHECK(cudaGetDeviceProperties(&p, device.index));
  int driver = 0, runtime = 0;
  CUDA_CHECK(cudaDriverGetVersion(&driver));
  CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  m["gpu"] = p.name;
  m["compute_capability"] = std::to_string(p.major) + "." + std::to_string(p.minor);
  m["sm_count"] = p.multiProcessorCount;
  m["memory_bytes"] = p.totalGlobalMem;
  m["l2_bytes"] = p.l2CacheSize;
  m["driver"] = cuda_version(driver);  // the CUDA version the driver supports
  m["cuda_runtime"] = cuda_version(runtime);
  int major = 0, minor = 0, patch = 0;
  cublasGetProperty(MAJOR_VERSION, &major);
  cublasGetProperty(MINOR_VERSION, &minor);
  cublasGetProperty(PATCH_LEVEL, &patch);
  m["cublas"] = strfmt("%d.%d.%d", major, minor, patch);
#ifdef ACTIVEIP_CUDNN
  const size_t v = cudnnGetVersion();  // 9.19.0 → 91900
  m["cudnn"] = strfmt("%zu.%zu.%zu", v / 10000, v % 10000 / 100, v % 100);
#else
  m["cudnn"] = nullptr;
#endif
#endif
  return m;
}

bool all_valid(const nlohmann::json& result) {
  if (result.is_object()) {
    if (result.contains("validation") && result["validation"].is_object() && result["validation"].contains("ok") &&
        result["validation"]["ok"].is_boolean() && !result["validation"]["ok"].get<bool>())
      return false;
    for (const auto& [key, value] : result.items())
      if (!all_valid(value)) return false;
  } else if (result.is_array()) {
    for (const auto& value : result)
      if (!all_valid(value)) return false;
  }
  return true;
}

}  // namespace activeip::bench

namespace activeip::bench::detail {

std::vector<double> time_reps(Context& ctx, int warmup, int reps, const std::function<void(int)>& fn) {
  ENSURE(reps >= 1, "at least one timed repetition is needed, got %d", reps);
  for (int i = 0; i < warmup; ++i) fn(i);
  std::vector<double> ms(static_cast<size_t>(reps));
  if (!ctx.is_cuda()) {
    for (int i = 0; i < reps; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      fn(warmup + i);
      ms[static_cast<size_t>(i)] =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    return ms;
  }
#ifdef ACTIVEIP_CUDA
  // Two events per repetition, all queued before the one wait: the host runs ahead, so the
  // GPU sees the repetitions back to back and each pair times exactly one call's kernels.
  std::vector<cudaEvent_t> events(2 * static_cast<size_t>(reps), nullptr);
  try {
    for (auto& e : events) CUDA_CHECK(cudaEventCreate(&e));
    ctx.synchronize();
    for (int i = 0; i < reps; ++i) {
      CUDA_CHECK(cudaEventRecord(events[2 * static_cast<size_t>(i)], ctx.stream()));
      fn(warmup + i);
      CUDA_CHECK(cudaEventRecord(events[2 * static_cast<size_t>(i) + 1], ctx.stream()));
    }
    CUDA_CHECK(cudaEventSynchronize(events.back()));
    for (int i = 0; i < reps; ++i) {
      float t = 0;
      CUDA_CHECK(cudaEventElapsedTime(&t, events[2 * static_cast<size_t>(i)], events[2 * static_cast<size_t>(i) + 1]));
      ms[static_cast<size_t>(i)] = t;
    }
  } catch (...) {
    for (auto e : events)
      if (e) cudaEventDestroy(e);
    throw;
  }
  for (auto e : events) cudaEventDestroy(e);
#endif
  return ms;
}

namespace {

// A fixed pattern of 2^20 floats, tiled: buffers of hundreds of MiB fill without generating
// that many random numbers.
const std::vector<float>& pattern() {
  static const std::vector<float> p = [] {
    std::vector<float> v(size_t(1) << 20);
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (auto& x : v) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      const float mag = 0.1f + 0.9f * static_cast<float>((s >> 11) & 0xffffff) / float(1 << 24);
      x = (s & 1) ? mag : -mag;
    }
    return v;
  }();
  return p;
}

}  // namespace

Tensor random_tensor(int64_t n, uint64_t salt, Context& ctx) {
  const std::vector<float>& p = pattern();
  Tensor host = Tensor::host({n});
  float* d = host.data<float>();
  const size_t shift = static_cast<size_t>(salt * 7919u) % p.size();
  for (int64_t i = 0; i < n; ++i) d[i] = p[(static_cast<size_t>(i) + shift) % p.size()];
  if (!ctx.is_cuda()) return host;
  Tensor t = Tensor::empty({n}, DType::F32, ctx);
  t.copy_from(host, ctx);
  ctx.synchronize();
  return t;
}

std::vector<float> host_floats(const Tensor& t, Context& ctx) {
  const Tensor h = t.to(Device::cpu(), ctx);
  ctx.synchronize();
  const float* d = h.data<float>();
  return std::vector<float>(d, d + h.numel());
}

double rel_l2(const std::vector<float>& got, const std::vector<float>& ref) {
  ENSURE(got.size() == ref.size(), "compared buffers differ in size: %zu and %zu", got.size(), ref.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = double(got[i]) - double(ref[i]);
    num += d * d;
    den += double(ref[i]) * double(ref[i]);
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

double rel_l2(const std::vector<float>& got, const std::vector<double>& ref) {
  ENSURE(got.size() == ref.size(), "compared buffers differ in size: %zu and %zu", got.size(), ref.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = double(got[i]) - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

int64_t rotate_bytes(const Device& device, int64_t requested) {
  if (requested > 0) return requested;
  if (!device.is_cuda()) return 0;
#ifdef ACTIVEIP_CUDA
  int l2 = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device.index));
  return 2 * static_cast<int64_t>(l2);
#else
  return 0;
#endif
}

int rotation_sets(int64_t set_bytes, int64_t bytes) {
  if (set_bytes <= 0 || bytes <= set_bytes) return 1;
  return static_cast<int>(std::min<int64_t>(64, (bytes + set_bytes - 1) / set_bytes));
}

std::string cudnn_missing(const Device& device) {
  if (!device.is_cuda()) return "cuDNN runs only on a CUDA device (this run is on the CPU)";
#ifdef ACTIVEIP_CUDNN
  return "";
#else
  return "this build has no cuDNN (configure with -DACTIVEIP_CUDNN_ROOT=DIR)";
#endif
}

std::string cublas_missing(const Device& device) {
  if (!device.is_cuda()) return "cuBLAS runs only on a CUDA device (this run is on the CPU)";
  return "";
}

nlohmann::json timing_json(const std::vector<double>& ms, double flops) {
  const TimeStats t = summarise_ms(ms);
  return {{"median_ms", t.median_ms},
          {"min_ms", t.min_ms},
          {"max_ms", t.max_ms},
          {"reps", t.reps},
          {"tflops", t.median_ms > 0 ? flops / (t.median_ms * 1e-3) / 1e12 : 0.0}};
}

}  // namespace activeip::bench::detail
