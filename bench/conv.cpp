// `bench conv`: every distinct convolution of the chosen nets, fprop / dgrad / wgrad, our
// kernels against cuDNN (the algorithm cudnnFind* picked, cached per shape by VendorHandles).
// Per shape: one validation (ours against cuDNN on the whole batch; without cuDNN, ours at
// N = 1 against the float64 reference), warm-up, then `reps` timed calls rotating through
// copies of the tensors so that the inputs of consecutive calls are not in L2.
#include <cmath>
#include <map>

#include "base/error.h"
#include "bench/bench.h"
#include "bench/detail.h"

#ifdef ACTIVEIP_CUDA
#include "kernels/vendor/vendor.h"
#endif

namespace activeip::bench {

namespace {

using nlohmann::json;

// One copy of everything a pass reads or writes.
struct ConvSet {
  Tensor x, w, bias, dy;    // inputs
  Tensor y, dx, dw, dbias;  // outputs
};

ConvSet make_set(const Conv2dShape& s, bool bias, uint64_t salt, Context& ctx) {
  ConvSet t;
  t.x = detail::random_tensor(static_cast<int64_t>(s.x_size()), salt * 8 + 1, ctx);
  t.w = detail::random_tensor(static_cast<int64_t>(s.w_size()), salt * 8 + 2, ctx);
  t.dy = detail::random_tensor(static_cast<int64_t>(s.y_size()), salt * 8 + 3, ctx);
  t.y = Tensor::empty({static_cast<int64_t>(s.y_size())}, DType::F32, ctx);
  t.dx = Tensor::empty({static_cast<int64_t>(s.x_size())}, DType::F32, ctx);
  t.dw = Tensor::empty({static_cast<int64_t>(s.w_size())}, DType::F32, ctx);
  t.dw.zero(ctx);
  if (bias) {
    t.bias = detail::random_tensor(s.K, salt * 8 + 4, ctx);
    t.dbias = Tensor::empty({s.K}, DType::F32, ctx);
    t.dbias.zero(ctx);
  }
  return t;
}

// A default Tensor has shape {} (one element) and no storage: tell "no bias" by the storage.
bool has(const Tensor& t) {
  return t.raw() != nullptr;
}

float* f(const Tensor& t) {
  return has(t) ? t.data<float>() : nullptr;
}

// One call of `pass`, ours or cuDNN's, on tensors t for shape s.
void run_pass(Context& ctx, const std::string& pass, bool cudnn, const Conv2dShape& s, const ConvSet& t) {
  const float* bias = f(t.bias);
  float* dbias = f(t.dbias);
  if (!ctx.is_cuda()) {
    ENSURE(!cudnn, "cuDNN needs a CUDA device");
    if (pass == "fprop") conv2d_fprop_cpu(s, f(t.x), f(t.w), bias, f(t.y));
    if (pass == "dgrad") conv2d_dgrad_cpu(s, f(t.dy), f(t.w), f(t.dx));
    if (pass == "wgrad") conv2d_wgrad_cpu(s, f(t.x), f(t.dy), f(t.dw), dbias);
    return;
  }
#ifdef ACTIVEIP_CUDA
  if (!cudnn) {
    if (pass == "fprop") conv2d_fprop_cuda(s, f(t.x), f(t.w), bias, f(t.y), ctx.stream());
    if (pass == "dgrad") conv2d_dgrad_cuda(s, f(t.dy), f(t.w), f(t.dx), ctx.stream());
    if (pass == "wgrad") conv2d_wgrad_cuda(s, f(t.x), f(t.dy), f(t.dw), dbias, ctx.stream());
    return;
  }
#ifdef ACTIVEIP_CUDNN
  if (pass == "fprop") conv2d_fprop_cudnn(ctx.vendor(), s, f(t.x), f(t.w), bias, f(t.y));
  if (pass == "dgrad") conv2d_dgrad_cudnn(ctx.vendor(), s, f(t.dy), f(t.w), f(t.dx));
  if (pass == "wgrad") conv2d_wgrad_cudnn(ctx.vendor(), s, f(t.x), f(t.dy), f(t.dw), dbias);
  return;
#endif
#endif
  ENSURE(false, "cuDNN is not in this build");
}

// What a pass writes, on the host (wgrad: dw then dbias). wgrad adds, so its outputs are
// zeroed first; the others overwrite.
std::vector<float> pass_output(Context& ctx, const std::string& pass, const ConvSet& t) {
  if (pass == "fprop") return detail::host_floats(t.y, ctx);
  if (pass == "dgrad") return detail::host_floats(t.dx, ctx);
  std::vector<float> out = detail::host_floats(t.dw, ctx);
  if (has(t.dbias)) {
    const std::vector<float> db = detail::host_floats(t.dbias, ctx);
    out.insert(out.end(), db.begin(), db.end());
  }
  return out;
}

void clear_outputs(Context& ctx, ConvSet& t) {
  t.dw.zero(ctx);
  if (has(t.dbias)) t.dbias.zero(ctx);
}

std::vector<double> as_double(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// Ours at N = 1 (the first image of set t) against the float64 reference.
double error_against_reference(Context& ctx, const std::string& pass, Conv2dShape s, const ConvSet& t) {
  s.N = 1;
  ConvSet one;
  one.x = t.x.slice(0, static_cast<int64_t>(s.x_size()));
  one.dy = t.dy.slice(0, static_cast<int64_t>(s.y_size()));
  one.w = t.w;
  one.bias = t.bias;
  one.y = t.y.slice(0, static_cast<int64_t>(s.y_size()));
  one.dx = t.dx.slice(0, static_cast<int64_t>(s.x_size()));
  one.dw = t.dw;
  one.dbias = t.dbias;
  clear_outputs(ctx, one);
  run_pass(ctx, pass, false, s, one);
  const std::vector<float> got = pass_output(ctx, pass, one);

  const std::vector<double> x = as_double(detail::host_floats(one.x, ctx)),
                            w = as_double(detail::host_floats(one.w, ctx)),
                            dy = as_double(detail::host_floats(one.dy, ctx));
  const std::vector<double> bias = has(t.bias) ? as_double(detail::host_floats(t.bias, ctx)) : std::vector<double>();
  std::vector<double> ref;
  if (pass == "fprop") {
    ref.assign(s.y_size(), 0.0);
    conv2d_fprop_ref(s, x.data(), w.data(), bias.empty() ? nullptr : bias.data(), ref.data());
  } else if (pass == "dgrad") {
    ref.assign(s.x_size(), 0.0);
    conv2d_dgrad_ref(s, dy.data(), w.data(), ref.data());
  } else {
    ref.assign(s.w_size() + (has(t.dbias) ? size_t(s.K) : 0), 0.0);
    conv2d_wgrad_ref(s, x.data(), dy.data(), ref.data(), has(t.dbias) ? ref.data() + s.w_size() : nullptr);
  }
  return detail::rel_l2(got, ref);
}

json shape_json(const Conv2dShape& s) {
  return {{"N", s.N}, {"H", s.H},           {"W", s.W},     {"C", s.C},   {"K", s.K},  {"R", s.R},
          {"S", s.S}, {"stride", s.stride}, {"pad", s.pad}, {"P", s.P()}, {"Q", s.Q()}};
}

std::string case_name(const ConvCase& c) {
  const Conv2dShape& s = c.shape;
  return strfmt("%dx%dx%d %dx%d %d->%d s%d", s.H, s.W, s.C, s.R, s.S, s.C, s.K, s.stride);
}

}  // namespace

json run_conv(const ConvConfig& config) {
  ENSURE(config.batch >= 1, "--batch must be at least 1, got %d", config.batch);
  ENSURE(config.reps >= 1, "--reps must be at least 1, got %d", config.reps);
  ENSURE(config.warmup >= 0, "--warmup must be non-negative, got %d", config.warmup);
  for (const std::string& p : config.passes)
    ENSURE(p == "fprop" || p == "dgrad" || p == "wgrad", "--passes: unknown pass '%s' (known: fprop, dgrad, wgrad)",
           p.c_str());
  Context ctx(config.device, config.threads);
  const std::string missing = detail::cudnn_missing(config.device);
  const bool have_cudnn = missing.empty();
  const int64_t rotate = detail::rotate_bytes(config.device, config.rotate_bytes);

  json out;
  out["command"] = "conv";
  out["machine"] = machine_info(config.device, config.threads);
  out["config"] = {{"device", config.device.str()},
                   {"batch", config.batch},
                   {"nets", config.nets},
                   {"passes", config.passes},
                   {"warmup", config.warmup},
                   {"reps", config.reps},
                   {"precisions", {"fp32"}},
                   {"tolerance", config.tolerance},
                   {"rotate_bytes", rotate},
                   {"timing", ctx.is_cuda() ? "cuda events, median per call" : "steady clock, median per call"}};
  out["comparator"] = {{"name", "cudnn"},
                       {"available", have_cudnn},
                       {"reason", have_cudnn ? json(nullptr) : json(missing)},
                       {"algorithms", "cudnnFind*, best per shape and pass, FMA math (no TF32)"}};
  out["layers"] = json::array();
  json summary = json::object();

  for (const std::string& net : config.nets) {
    const std::vector<ConvCase> cases = conv_cases(net, config.batch);
    std::map<std::string, std::vector<double>> ratios;  // per pass
    std::vector<double> all_ratios;
    double net_ours_ms = 0, net_cudnn_ms = 0, net_flops = 0;
    for (const ConvCase& c : cases) {
      const Conv2dShape& s = c.shape;
      const int64_t set_bytes = 4 * static_cast<int64_t>(2 * s.x_size() + 2 * s.w_size() + 2 * s.y_size());
      const int nsets = detail::rotation_sets(set_bytes, rotate);
      std::vector<ConvSet> sets;
      for (int i = 0; i < nsets; ++i) sets.push_back(make_set(s, c.bias, static_cast<uint64_t>(i), ctx));

      json layer = {{"net", net},
                    {"name", case_name(c)},
                    {"layers", c.layers},
                    {"uses", c.layers.size()},
                    {"shape", shape_json(s)},
                    {"bias", c.bias},
                    {"precision", "fp32"},
                    {"gflops", s.flops() / 1e9},
                    {"buffers", nsets}};
      json passes = json::object();
      for (const std::string& pass : config.passes) {
        json p;
        // Validate once, before any timing.
        double err = 0;
        std::string against;
        if (have_cudnn) {
          clear_outputs(ctx, sets[0]);
          run_pass(ctx, pass, false, s, sets[0]);
          const std::vector<float> ours = pass_output(ctx, pass, sets[0]);
          clear_outputs(ctx, sets[0]);
          run_pass(ctx, pass, true, s, sets[0]);
          err = detail::rel_l2(ours, pass_output(ctx, pass, sets[0]));
          against = "cudnn";
        } else {
          err = error_against_reference(ctx, pass, s, sets[0]);
          against = "float64 reference at N=1";
        }
        const bool valid = std::isfinite(err) && err <= config.tolerance;
        p["validation"] = {{"against", against}, {"rel_l2", err}, {"tolerance", config.tolerance}, {"ok", valid}};

        const auto run = [&](bool vendor) {
          return detail::time_reps(ctx, config.warmup, config.reps, [&](int i) {
            run_pass(ctx, pass, vendor, s, sets[static_cast<size_t>(i % nsets)]);
          });
        };
        const std::vector<double> ours_ms = run(false);
        p["ours"] = detail::timing_json(ours_ms, s.flops());
        const double ours_med = p["ours"]["median_ms"].get<double>();
        net_ours_ms += ours_med * static_cast<double>(c.layers.size());
        net_flops += s.flops() * static_cast<double>(c.layers.size());
        if (have_cudnn) {
          p["cudnn"] = detail::timing_json(run(true), s.flops());
          const double cudnn_med = p["cudnn"]["median_ms"].get<double>();
          const double ratio = ours_med / cudnn_med;
          p["ratio"] = ratio;
          ratios[pass].push_back(ratio);
          all_ratios.push_back(ratio);
          net_cudnn_ms += cudnn_med * static_cast<double>(c.layers.size());
        } else {
          p["cudnn"] = nullptr;
          p["ratio"] = nullptr;
          p["reason"] = missing;
        }
        passes[pass] = p;
      }
      layer["passes"] = passes;
      out["layers"].push_back(layer);
    }
    json by_pass = json::object();
    for (const std::string& pass : config.passes)
      by_pass[pass] = ratios[pass].empty() ? json(nullptr) : json(geomean(ratios[pass]));
    // One training step's convolutions: every layer that uses a shape counts.
    json s = {{"distinct_shapes", cases.size()},
              {"conv_layers",
               [&] {
                 size_t n = 0;
                 for (const ConvCase& c : cases) n += c.layers.size();
                 return n;
               }()},
              {"geomean_ratio", all_ratios.empty() ? json(nullptr) : json(geomean(all_ratios))},
              {"geomean_ratio_by_pass", by_pass},
              {"step_ms_ours", net_ours_ms},
              {"step_ms_cudnn", have_cudnn ? json(net_cudnn_ms) : json(nullptr)},
              {"step_ratio", have_cudnn && net_cudnn_ms > 0 ? json(net_ours_ms / net_cudnn_ms) : json(nullptr)},
              {"step_tflops_ours", net_ours_ms > 0 ? net_flops / (net_ours_ms * 1e-3) / 1e12 : 0.0}};
    summary[net] = s;
  }
  out["summary"] = summary;
  out["all_valid"] = all_valid(out["layers"]);
  return out;
}

}  // namespace activeip::bench
