// `bench gemm`: our GEMM against cuBLAS SGEMM on the linear layers' shapes (fprop, dgrad and
// wgrad of every Linear in the chosen nets, for each batch and class count: the same
// GemmShapes kernels/cpu/linear.cpp issues) and on squares. Validation: ours against cuBLAS
// on the GPU, against the float64 reference on the CPU (small shapes only). The best cuBLAS
// rate is the measured fp32 peak that model FLOP utilisation divides by.
#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include "base/error.h"
#include "bench/bench.h"
#include "bench/detail.h"

#ifdef ACTIVEIP_CUDA
#include "kernels/vendor/vendor.h"
#endif

namespace activeip::bench {

namespace {

using nlohmann::json;

struct GemmCase {
  std::string kind, pass, name;  // kind: linear | square
  GemmShape shape;
  std::vector<std::string> layers;  // "resnet18.fc" …
};

// The three GEMMs of a Linear(in → out) on a batch of N (see kernels/cpu/linear.cpp):
// fprop y = x·Wᵀ, dgrad dx = dy·W, wgrad dW += dyᵀ·x.
std::vector<GemmCase> linear_cases(int N, int in, int out) {
  const std::string tag = strfmt("b%d %d->%d", N, in, out);
  return {{"linear", "fprop", tag + " fprop", GemmShape{N, out, in, false, true, in, in, out, 1.0f, 0.0f}, {}},
          {"linear", "dgrad", tag + " dgrad", GemmShape{N, in, out, false, false, out, in, in, 1.0f, 0.0f}, {}},
          {"linear", "wgrad", tag + " wgrad", GemmShape{out, in, N, true, false, out, in, in, 1.0f, 1.0f}, {}}};
}

size_t a_size(const GemmShape& s) {
  return s.trans_a ? size_t(s.K) * s.lda : size_t(s.M) * s.lda;
}
size_t b_size(const GemmShape& s) {
  return s.trans_b ? size_t(s.N) * s.ldb : size_t(s.K) * s.ldb;
}
size_t c_size(const GemmShape& s) {
  return size_t(s.M) * s.ldc;
}

struct GemmSet {
  Tensor a, b, c;
};

void run_gemm_once(Context& ctx, bool vendor, const GemmShape& s, const GemmSet& t) {
  if (!ctx.is_cuda()) {
    ENSURE(!vendor, "cuBLAS needs a CUDA device");
    gemm_cpu(s, t.a.data<float>(), t.b.data<float>(), t.c.data<float>());
    return;
  }
#ifdef ACTIVEIP_CUDA
  if (vendor)
    gemm_cublas(ctx.vendor(), s, t.a.data<float>(), t.b.data<float>(), t.c.data<float>());
  else
    gemm_cuda(s, t.a.data<float>(), t.b.data<float>(), t.c.data<float>(), ctx.stream());
#endif
}

// Largest M·N·K the CPU validates against the float64 triple loop.
constexpr double kCpuReferenceLimit = double(1 << 27);

}  // namespace

json measure_peak(const Device& device, int threads) {
  Context ctx(device, threads);
  const bool gpu = device.is_cuda();
  double best = 0;
  std::string source;
  for (int n : gpu ? std::vector<int>{4096, 8192} : std::vector<int>{1024}) {
    const GemmShape s{n, n, n, false, false, n, n, n, 1.0f, 0.0f};
    GemmSet t{detail::random_tensor(int64_t(n) * n, 1, ctx), detail::random_tensor(int64_t(n) * n, 2, ctx),
              Tensor::empty({int64_t(n) * n}, DType::F32, ctx)};
    const auto ms = detail::time_reps(ctx, gpu ? 5 : 1, gpu ? 20 : 3, [&](int) { run_gemm_once(ctx, gpu, s, t); });
    const double tflops = s.flops() / (summarise_ms(ms).median_ms * 1e-3) / 1e12;
    if (tflops > best) {
      best = tflops;
      source = strfmt("%s %dx%dx%d", gpu ? "cublas sgemm" : "ours gemm_cpu", n, n, n);
    }
  }
  return {{"tflops", best}, {"source", source}, {"precision", "fp32"}};
}

json run_gemm(const GemmConfig& config) {
  ENSURE(config.reps >= 1, "--reps must be at least 1, got %d", config.reps);
  ENSURE(config.warmup >= 0, "--warmup must be non-negative, got %d", config.warmup);
  Context ctx(config.device, config.threads);
  const std::string missing = detail::cublas_missing(config.device);
  const bool have_cublas = missing.empty();
  const int64_t rotate = detail::rotate_bytes(config.device, config.rotate_bytes);

  // Linear shapes from the nets (in → classes), each once however many nets share it.
  std::vector<std::tuple<int, int, int>> linear_shapes;  // batch, in, out; in order of first use
  std::map<std::tuple<int, int, int>, std::vector<std::string>> users;
  for (int classes : config.classes) {
    ENSURE(classes >= 1, "--classes must be at least 1, got %d", classes);
    for (int batch : config.batches) {
      ENSURE(batch >= 1, "--batch must be at least 1, got %d", batch);
      for (const std::string& net : config.nets) {
        NetSpec spec;
        spec.num_classes = classes;
        for (const LinearLayer& l : linear_layers(net, spec)) {
          const auto key = std::make_tuple(batch, l.in_features, l.out_features);
          if (!users.count(key)) linear_shapes.push_back(key);
          users[key].push_back(net + "." + l.name);
        }
      }
    }
  }
  std::vector<GemmCase> cases;
  for (const auto& key : linear_shapes)
    for (GemmCase c : linear_cases(std::get<0>(key), std::get<1>(key), std::get<2>(key))) {
      c.layers = users[key];
      cases.push_back(c);
    }
  for (int n : config.squares) {
    ENSURE(n >= 1, "--squares must be at least 1, got %d", n);
    cases.push_back({"square", "square", strfmt("%dx%dx%d", n, n, n), GemmShape{n, n, n, false, false, n, n, n}, {}});
  }

  json out;
  out["command"] = "gemm";
  out["machine"] = machine_info(config.device, config.threads);
  out["config"] = {{"device", config.device.str()}, {"batches", config.batches}, {"classes", config.classes},
                   {"squares", config.squares},     {"nets", config.nets},       {"warmup", config.warmup},
                   {"reps", config.reps},           {"precisions", {"fp32"}},    {"tolerance", config.tolerance},
                   {"rotate_bytes", rotate}};
  out["comparator"] = {{"name", "cublas"},
                       {"available", have_cublas},
                       {"reason", have_cublas ? json(nullptr) : json(missing)},
                       {"math", "CUBLAS_DEFAULT_MATH (fp32 SGEMM, no TF32)"}};
  out["cases"] = json::array();
  double peak = 0, best_ours = 0;
  std::string peak_case, best_ours_case;
  for (const GemmCase& c : cases) {
    const GemmShape& s = c.shape;
    const int64_t set_bytes = 4 * static_cast<int64_t>(a_size(s) + b_size(s) + c_size(s));
    const int nsets = detail::rotation_sets(set_bytes, rotate);
    std::vector<GemmSet> sets;
    for (int i = 0; i < nsets; ++i) {
      GemmSet t{detail::random_tensor(static_cast<int64_t>(a_size(s)), 3 * i + 1, ctx),
                detail::random_tensor(static_cast<int64_t>(b_size(s)), 3 * i + 2, ctx),
                Tensor::empty({static_cast<int64_t>(c_size(s))}, DType::F32, ctx)};
      t.c.zero(ctx);
      sets.push_back(std::move(t));
    }
    json j = {{"kind", c.kind},
              {"pass", c.pass},
              {"name", c.name},
              {"layers", c.layers},
              {"shape",
               {{"M", s.M}, {"N", s.N}, {"K", s.K}, {"trans_a", s.trans_a}, {"trans_b", s.trans_b}, {"beta", s.beta}}},
              {"precision", "fp32"},
              {"gflops", s.flops() / 1e9},
              {"buffers", nsets}};

    // Validate once (C zeroed before each run, so beta = 1 starts from the same C).
    json v = nullptr;
    sets[0].c.zero(ctx);
    run_gemm_once(ctx, false, s, sets[0]);
    const std::vector<float> ours = detail::host_floats(sets[0].c, ctx);
    if (have_cublas) {
      sets[0].c.zero(ctx);
      run_gemm_once(ctx, true, s, sets[0]);
      const double err = detail::rel_l2(ours, detail::host_floats(sets[0].c, ctx));
      v = {{"against", "cublas"}, {"rel_l2", err}, {"tolerance", config.tolerance}, {"ok", err <= config.tolerance}};
    } else if (s.flops() / 2 <= kCpuReferenceLimit) {
      const std::vector<float> a = detail::host_floats(sets[0].a, ctx), b = detail::host_floats(sets[0].b, ctx);
      const std::vector<double> ad(a.begin(), a.end()), bd(b.begin(), b.end());
      std::vector<double> ref(c_size(s), 0.0);
      gemm_ref(s, ad.data(), bd.data(), ref.data());
      const double err = detail::rel_l2(ours, ref);
      v = {{"against", "float64 reference"},
           {"rel_l2", err},
           {"tolerance", config.tolerance},
           {"ok", err <= config.tolerance}};
    } else {
      v = {{"against", nullptr}, {"ok", nullptr}, {"reason", "too large for the float64 reference on the CPU"}};
    }
    j["validation"] = v;

    const auto run = [&](bool vendor) {
      return detail::time_reps(ctx, config.warmup, config.reps,
                               [&](int i) { run_gemm_once(ctx, vendor, s, sets[static_cast<size_t>(i % nsets)]); });
    };
    j["ours"] = detail::timing_json(run(false), s.flops());
    const double ours_tflops = j["ours"]["tflops"].get<double>();
    if (ours_tflops > best_ours) {
      best_ours = ours_tflops;
      best_ours_case = c.name;
    }
    if (have_cublas) {
      j["cublas"] = detail::timing_json(run(true), s.flops());
      j["ratio"] = j["ours"]["median_ms"].get<double>() / j["cublas"]["median_ms"].get<double>();
      const double t = j["cublas"]["tflops"].get<double>();
      if (t > peak) {
        peak = t;
        peak_case = c.name;
      }
    } else {
      j["cublas"] = nullptr;
      j["ratio"] = nullptr;
      j["reason"] = missing;
    }
    out["cases"].push_back(j);
  }
  std::vector<double> linear_ratios, square_ratios;
  for (const json& j : out["cases"])
    if (j["ratio"].is_number())
      (j["kind"] == "linear" ? linear_ratios : square_ratios).push_back(j["ratio"].get<double>());
  out["summary"] = {{"geomean_ratio_linear", linear_ratios.empty() ? json(nullptr) : json(geomean(linear_ratios))},
                    {"geomean_ratio_square", square_ratios.empty() ? json(nullptr) : json(geomean(square_ratios))},
                    {"best_ours_tflops", best_ours},
                    {"best_ours_case", best_ours_case}};
  if (have_cublas)
    out["peak"] = {{"tflops", peak}, {"source", "cublas sgemm " + peak_case}, {"precision", "fp32"}};
  else
    out["peak"] = {{"tflops", best_ours}, {"source", "ours gemm_cpu " + best_ours_case}, {"precision", "fp32"}};
  out["all_valid"] = all_valid(out["cases"]);
  return out;
}

}  // namespace activeip::bench
