// activeip data check: read and validate every file of a dataset, report per-file record
// counts and per-split label histograms and pixel statistics. Exit 1 when anything is wrong.
#include <cstdio>
#include <memory>

#include "cli/commands.h"

namespace activeip::cli {

namespace {

struct DataCheckOptions {
  DataOptions data;
  bool json = false;
};

int run_check(const DataCheckOptions& o) {
  const DataReport r = inspect_data(o.data.spec());
  if (o.json)
    std::printf("%s\n", data_report_json(r).c_str());
  else
    std::fputs(format_data_report(r).c_str(), stdout);
  if (!r.ok()) {
    std::fprintf(stderr, "error: %s in %s is not usable (see above)\n", o.data.name.c_str(),
                 r.dir.empty() ? "(generated)" : r.dir.c_str());
    return 1;
  }
  return 0;
}

}  // namespace

void add_data(CLI::App& app, Handler& handler) {
  CLI::App* data = app.add_subcommand("data", "Dataset tools");
  data->require_subcommand(1);
  auto o = std::make_shared<DataCheckOptions>();
  CLI::App* check = data->add_subcommand("check", "Validate a dataset's files and print their statistics");
  o->data.add_to(check, false);
  check->add_flag("--json", o->json, "Print one JSON object");
  check->callback([o, &handler] { handler = [o] { return run_check(*o); }; });
}

}  // namespace activeip::cli
