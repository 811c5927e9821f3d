// Option groups shared by several commands.
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <optional>

#include "cli/commands.h"
#include "nets/nets.h"

namespace activeip::cli {

namespace {

// The whole of `s` as a finite number, or nothing.
std::optional<double> as_number(const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// CLI11 prefixes the message with the option's name.
CLI::Validator number_check(const std::string& desc, std::function<bool(double)> ok, const std::string& wanted) {
  return CLI::Validator(
      [ok = std::move(ok), wanted](std::string& s) -> std::string {
        const std::optional<double> v = as_number(s);
        if (!v) return "'" + s + "' is not a number";
        return ok(*v) ? std::string() : "must be " + wanted + ", got " + s;
      },
      desc);
}

}  // namespace

CLI::Validator positive_number() {
  return number_check(
      "POSITIVE", [](double v) { return v > 0; }, "positive");
}

CLI::Validator non_negative_number() {
  return number_check(
      "NONNEGATIVE", [](double v) { return v >= 0; }, "non-negative");
}

CLI::Validator number_in(double lo, double hi) {
  const std::string range = strfmt("[%g, %g]", lo, hi);
  return number_check(
      range, [lo, hi](double v) { return v >= lo && v <= hi; }, "in " + range);
}

CLI::Validator fraction_check() {
  return number_check(
      "(0, 1]", [](double v) { return v > 0 && v <= 1; }, "in (0, 1]");
}

void DataOptions::add_to(CLI::App* cmd, bool with_limits) {
  cmd->add_option("--data", name, "Dataset")->required()->check(CLI::IsMember(dataset_names()));
  cmd->add_option("--data-dir", dir, "Folder holding the official files (default: data/<official folder name>)");
  if (with_limits) {
    cmd->add_option("--limit-train", limit_train, "Use only the first N training records")->check(positive_number());
    cmd->add_option("--limit-test", limit_test, "Use only the first N test records")->check(positive_number());
  }
}

DataSpec DataOptions::spec() const {
  return DataSpec{name, dir, limit_train, limit_test};
}

void DeviceOptions::add_to(CLI::App* cmd) {
  cmd->add_option("--device", device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--threads", threads, "CPU threads (default: all cores)")->check(non_negative_number());
  cmd->add_option("--conv-impl", conv_impl, "Convolutions on CUDA: custom kernels or cuDNN")
      ->capture_default_str()
      ->check(CLI::IsMember({"custom", "cudnn"}));
  cmd->add_option("--gemm-impl", gemm_impl, "Linear layers on CUDA: custom GEMM or cuBLAS")
      ->capture_default_str()
      ->check(CLI::IsMember({"custom", "cublas"}));
  cmd->add_option("--precision", precision,
                  "Convolutions and linear layers: fp32, or bf16 operands with fp32 accumulation (CPUs with "
                  "AVX512-BF16)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));
}

void DeviceOptions::configure(Context& ctx) const {
  as_usage([&] { ctx.use(parse_conv_impl(conv_impl), parse_gemm_impl(gemm_impl)); });
  Precision p = Precision::F32;
  as_usage([&] { p = parse_precision(precision); });
  ctx.set_precision(p);
}

Device DeviceOptions::parsed() const {
  Device d;
  as_usage([&] { d = Device::parse(device); });
  return d;
}

bool stderr_is_tty() {
  return isatty(STDERR_FILENO) == 1;
}

void as_usage(const std::function<void()>& f) {
  try {
    f();
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

}  // namespace activeip::cli
