// Option groups shared by several commands.
#include <unistd.h>

#include "cli/commands.h"
#include "nets/nets.h"

namespace activeip::cli {

void DataOptions::add_to(CLI::App* cmd, bool with_limits) {
  cmd->add_option("--data", name, "Dataset")->required()->check(CLI::IsMember(dataset_names()));
  cmd->add_option("--data-dir", dir, "Folder holding the official files (default: data/<official folder name>)");
  if (with_limits) {
    cmd->add_option("--limit-train", limit_train, "Use only the first N training records")->check(CLI::PositiveNumber);
    cmd->add_option("--limit-test", limit_test, "Use only the first N test records")->check(CLI::PositiveNumber);
  }
}

DataSpec DataOptions::spec() const { return DataSpec{name, dir, limit_train, limit_test}; }

void DeviceOptions::add_to(CLI::App* cmd) {
  cmd->add_option("--device", device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--threads", threads, "CPU threads (default: all cores)")->check(CLI::NonNegativeNumber);
}

Device DeviceOptions::parsed() const {
  Device d;
  as_usage([&] { d = Device::parse(device); });
  return d;
}

bool stderr_is_tty() { return isatty(STDERR_FILENO) == 1; }

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
