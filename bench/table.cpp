// The human-readable form of a benchmark result: one table per command, every variant of a
// case on one line (ours, the comparator, their ratio), then the summary lines.
#include <sstream>

#include "base/error.h"
#include "bench/bench.h"

namespace activeip::bench {

namespace {

using nlohmann::json;

std::string num(const json& v, const char* fmt = "%.3f") {
  return v.is_number() ? strfmt(fmt, v.get<double>()) : std::string("-");
}

std::string machine_line(const json& m) {
  if (m.contains("gpu"))
    return strfmt("%s (driver CUDA %s, runtime %s, cuDNN %s, cuBLAS %s)", m["gpu"].get<std::string>().c_str(),
                  m["driver"].get<std::string>().c_str(), m["cuda_runtime"].get<std::string>().c_str(),
                  m["cudnn"].is_string() ? m["cudnn"].get<std::string>().c_str() : "none",
                  m["cublas"].get<std::string>().c_str());
  const int threads = m["threads"].get<int>();
  return strfmt("CPU %s, %d thread%s", m["cpu"].get<std::string>().c_str(), threads, threads == 1 ? "" : "s");
}

std::string conv_table(const json& r) {
  std::ostringstream o;
  o << "bench conv on " << machine_line(r["machine"]) << ", batch " << r["config"]["batch"].get<int>()
    << ", fp32, median of " << r["config"]["reps"].get<int>() << " calls\n";
  if (!r["comparator"]["available"].get<bool>()) o << "cuDNN: " << r["comparator"]["reason"].get<std::string>() << "\n";
  o << strfmt("%-9s %-26s %4s %-6s %10s %8s %10s %8s %7s %9s\n", "net", "shape", "uses", "pass", "ours ms", "TFLOP/s",
              "cuDNN ms", "TFLOP/s", "ratio", "rel err");
  for (const json& l : r["layers"])
    for (const std::string pass : {"fprop", "dgrad", "wgrad"}) {
      if (!l["passes"].contains(pass)) continue;
      const json& p = l["passes"][pass];
      o << strfmt("%-9s %-26s %4d %-6s %10s %8s %10s %8s %7s %9s%s\n", l["net"].get<std::string>().c_str(),
                  l["name"].get<std::string>().c_str(), l["uses"].get<int>(), pass.c_str(),
                  num(p["ours"]["median_ms"], "%.4f").c_str(), num(p["ours"]["tflops"], "%.2f").c_str(),
                  p["cudnn"].is_object() ? num(p["cudnn"]["median_ms"], "%.4f").c_str() : "-",
                  p["cudnn"].is_object() ? num(p["cudnn"]["tflops"], "%.2f").c_str() : "-",
                  num(p["ratio"], "%.2f").c_str(), num(p["validation"]["rel_l2"], "%.1e").c_str(),
                  p["validation"]["ok"].get<bool>() ? "" : "  FAILED");
    }
  for (const auto& [net, s] : r["summary"].items())
    o << strfmt(
        "%s: %d conv layers, %d distinct shapes; ours/cuDNN geometric mean %s (fprop %s, dgrad %s, wgrad %s); "
        "one step's convolutions %s ms ours, %s ms cuDNN\n",
        net.c_str(), s["conv_layers"].get<int>(), s["distinct_shapes"].get<int>(),
        num(s["geomean_ratio"], "%.2f").c_str(), num(s["geomean_ratio_by_pass"].value("fprop", json()), "%.2f").c_str(),
        num(s["geomean_ratio_by_pass"].value("dgrad", json()), "%.2f").c_str(),
        num(s["geomean_ratio_by_pass"].value("wgrad", json()), "%.2f").c_str(), num(s["step_ms_ours"], "%.2f").c_str(),
        num(s["step_ms_cudnn"], "%.2f").c_str());
  return o.str();
}

std::string gemm_table(const json& r) {
  std::ostringstream o;
  o << "bench gemm on " << machine_line(r["machine"]) << ", fp32, median of " << r["config"]["reps"].get<int>()
    << " calls\n";
  if (!r["comparator"]["available"].get<bool>())
    o << "cuBLAS: " << r["comparator"]["reason"].get<std::string>() << "\n";
  o << strfmt("%-24s %6s %6s %6s %10s %8s %10s %8s %7s %9s\n", "case", "M", "N", "K", "ours ms", "TFLOP/s", "cuBLAS ms",
              "TFLOP/s", "ratio", "rel err");
  for (const json& c : r["cases"])
    o << strfmt("%-24s %6d %6d %6d %10s %8s %10s %8s %7s %9s\n", c["name"].get<std::string>().c_str(),
                c["shape"]["M"].get<int>(), c["shape"]["N"].get<int>(), c["shape"]["K"].get<int>(),
                num(c["ours"]["median_ms"], "%.4f").c_str(), num(c["ours"]["tflops"], "%.2f").c_str(),
                c["cublas"].is_object() ? num(c["cublas"]["median_ms"], "%.4f").c_str() : "-",
                c["cublas"].is_object() ? num(c["cublas"]["tflops"], "%.2f").c_str() : "-",
                num(c["ratio"], "%.2f").c_str(), num(c["validation"].value("rel_l2", json()), "%.1e").c_str());
  o << strfmt("measured fp32 peak: %s TFLOP/s (%s)\n", num(r["peak"]["tflops"], "%.2f").c_str(),
              r["peak"]["source"].get<std::string>().c_str());
  return o.str();
}

std::string train_table(const json& r) {
  std::ostringstream o;
  const bool infer = r["command"] == "infer";
  o << "bench " << r["command"].get<std::string>() << " on " << machine_line(r["machine"]) << ", "
    << r["config"]["data"].get<std::string>() << ", median of " << r["config"]["timed_steps"].get<int>()
    << (infer ? " forward passes after " : " steps after ") << r["config"]["warmup_steps"].get<int>() << "\n";
  o << strfmt("%-9s %6s %-7s %-5s %10s %10s %9s %8s %7s %12s\n", "net", "batch", "impl", "prec", "images/s", "step ms",
              "GFLOP/img", "TFLOP/s", "MFU", "peak MiB");
  for (const json& x : r["runs"]) {
    const json mem = x.value("memory", json::object());
    const json peak = mem.value("peak_allocated_bytes", json());
    o << strfmt("%-9s %6d %-7s %-5s %10s %10s %9s %8s %7s %12s", x["net"].get<std::string>().c_str(),
                x["batch"].get<int>(), x["conv_impl"].get<std::string>().c_str(),
                x.value("precision", std::string("fp32")).c_str(), num(x["images_per_s"], "%.1f").c_str(),
                x.contains("step_ms") ? num(x["step_ms"]["median"], "%.2f").c_str() : "-",
                num(x["model_gflops_per_image"], "%.3f").c_str(),
                num(x.value("achieved_tflops", json()), "%.2f").c_str(), num(x.value("mfu", json()), "%.3f").c_str(),
                peak.is_number() ? strfmt("%.0f", peak.get<double>() / 1048576.0).c_str() : "-");
    if (x.contains("reason") && x["reason"].is_string()) o << "  (" << x["reason"].get<std::string>() << ")";
    o << "\n";
    if (!x.contains("profile")) continue;
    o << strfmt("  %-30s %-9s %10s %7s %8s\n", "profile: layer or stage", "pass", "ms/step", "share", "calls");
    for (const json& p : x["profile"])
      o << strfmt("  %-30s %-9s %10.2f %6.1f%% %8.0f\n", p["what"].get<std::string>().c_str(),
                  p["phase"].get<std::string>().c_str(), p["ms_per_step"].get<double>(), 100 * p["share"].get<double>(),
                  p["calls_per_step"].get<double>());
  }
  o << strfmt("MFU against the measured fp32 peak %s TFLOP/s (%s)\n", num(r["peak"]["tflops"], "%.2f").c_str(),
              r["peak"]["source"].get<std::string>().c_str());
  return o.str();
}

}  // namespace

std::string format_table(const json& result) {
  const std::string command = result.value("command", "");
  if (command == "conv") return conv_table(result);
  if (command == "gemm") return gemm_table(result);
  if (command == "train" || command == "infer") return train_table(result);
  ENSURE(false, "not a benchmark result: command '%s'", command.c_str());
  return {};
}

}  // namespace activeip::bench
