// What the command files share: the handler slot main runs, the usage error (exit 2),
// and the option groups several commands take (data, device).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

#include "base/error.h"
#include "engine/core/context.h"
#include "engine/data/dataset.h"
#include "engine/io/checkpoint.h"

namespace activeip::cli {

// The chosen subcommand's action; returns the exit status.
using Handler = std::function<int()>;

// A bad option value found after parsing: printed like a parse error, exit status 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

struct DataOptions {
  std::string name, dir;
  int64_t limit_train = -1, limit_test = -1;
  // --data (required) and --data-dir; with_limits adds --limit-train/--limit-test.
  void add_to(CLI::App* cmd, bool with_limits);
  DataSpec spec() const;
};

struct DeviceOptions {
  std::string device = "cpu";
  int threads = 0;
  std::string conv_impl = "custom", gemm_impl = "custom";
  std::string precision = "fp32";
  void add_to(CLI::App* cmd);
  // Throws UsageError for a malformed device name.
  Device parsed() const;
  // Puts the chosen convolution / GEMM implementations and the precision into ctx; a vendor
  // implementation on the CPU, or cuDNN in a build without it, is a usage error; bf16 where
  // the device cannot run it (a CPU without AVX512-BF16, CUDA) is a runtime Error.
  void configure(Context& ctx) const;
};

// Numeric option checks whose messages say what is wrong: CLI11 2.1's Range calls a value
// that is not a number "not in range" and prints PositiveNumber's bounds as 0.000000 to a
// 309-digit integer.
CLI::Validator positive_number();
CLI::Validator non_negative_number();
CLI::Validator number_in(double lo, double hi);  // lo ≤ v ≤ hi
CLI::Validator fraction_check();                 // 0 < v ≤ 1: a share of a dataset

bool stderr_is_tty();
// Runs f; an activeip::Error it throws becomes a UsageError (for option validation).
void as_usage(const std::function<void()>& f);

void add_train(CLI::App& app, Handler& handler);
void add_eval(CLI::App& app, Handler& handler);         // eval, info
void add_predict(CLI::App& app, Handler& handler);      // predict
void add_data(CLI::App& app, Handler& handler);         // data check
void add_fingerprint(CLI::App& app, Handler& handler);  // key, users, verify, auth, forge, report
void add_attack(CLI::App& app, Handler& handler);       // prune, finetune
void add_bench(CLI::App& app, Handler& handler);        // bench conv, gemm, train

}  // namespace activeip::cli
