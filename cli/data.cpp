// activeip data check: read and validate every file of a dataset, report per-file record
// counts and per-split label histograms and pixel statistics, as text (several lines) or one
// JSON object. Exit 1 when anything is wrong.
#include <algorithm>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"

namespace activeip::cli {

namespace {

std::string join_numbers(const std::vector<double>& v, const char* fmt) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + strfmt(fmt, v[i]);
  return s;
}
std::string format_data_report(const DataReport& report) {
  const DataShape& s = report.shape;
  std::string out = strfmt("%s (%d×%d×%d, %d classes)%s%s: %s\n", report.name.c_str(), s.H, s.W, s.C, s.num_classes,
                           report.dir.empty() ? "" : " in ", report.dir.c_str(), report.ok() ? "OK" : "ERRORS");
  for (const DataFileReport& f : report.files) {
    if (f.error.empty())
      out += strfmt("  ok     %s: %lld records\n", f.path.c_str(), static_cast<long long>(f.records));
    else
      out += strfmt("  ERROR  %s\n", f.error.c_str());
  }
  for (const DataSplitReport& r : report.splits) {
    if (!r.error.empty()) out += strfmt("  ERROR  %s: %s\n", r.split.c_str(), r.error.c_str());
    if (!r.ok) {
      out += strfmt("  %s: not checked (bad files)\n", r.split.c_str());
      continue;
    }
    const auto [lo, hi] = std::minmax_element(r.label_histogram.begin(), r.label_histogram.end());
    out += strfmt("  %s: %lld images, %lld-%lld per class; pixel mean (%s), std (%s)\n", r.split.c_str(),
                  static_cast<long long>(r.count), static_cast<long long>(*lo), static_cast<long long>(*hi),
                  join_numbers(r.pixel_mean, "%.4f").c_str(), join_numbers(r.pixel_std, "%.4f").c_str());
  }
  return out;
}

std::string data_report_json(const DataReport& report) {
  nlohmann::ordered_json j;
  j["dataset"] = report.name;
  j["dir"] = report.dir;
  j["ok"] = report.ok();
  j["shape"] = {
      {"H", report.shape.H}, {"W", report.shape.W}, {"C", report.shape.C}, {"num_classes", report.shape.num_classes}};
  j["files"] = nlohmann::ordered_json::array();
  for (const DataFileReport& f : report.files) {
    nlohmann::ordered_json jf = {{"path", f.path}, {"records", f.records}, {"ok", f.error.empty()}};
    if (!f.error.empty()) jf["error"] = f.error;
    j["files"].push_back(jf);
  }
  j["splits"] = nlohmann::ordered_json::object();
  for (const DataSplitReport& r : report.splits) {
    nlohmann::ordered_json js = {{"ok", r.ok}, {"count", r.count}};
    if (r.ok) {
      js["label_histogram"] = r.label_histogram;
      js["pixel_mean"] = r.pixel_mean;
      js["pixel_std"] = r.pixel_std;
    }
    if (!r.error.empty()) js["error"] = r.error;
    j["splits"][r.split] = js;
  }
  // Error messages quote file contents only through escaped paths, but a path itself may be
  // any bytes: replace what is not UTF-8 rather than fail.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

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
