// activeip: the command line. One file per command family registers its subcommands;
// main parses, runs the chosen handler and turns errors into "error: …" on stderr with
// exit status 1 (runtime) or 2 (usage).
#include <CLI/CLI.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.h"
#include "cli/commands.h"

namespace {

// CLI11 reports an unknown command word as "A subcommand is required"; name the word and
// the commands that exist at that level instead.
std::string parse_error_message(const CLI::App& app, const CLI::ParseError& e) {
  const CLI::App* at = &app;
  while (!at->get_subcommands().empty()) at = at->get_subcommands().front();
  const std::vector<std::string> left = at->remaining();
  const auto commands = at->get_subcommands([](const CLI::App*) { return true; });
  if (commands.empty() || left.empty() || left.front().rfind('-', 0) == 0) return e.what();
  const std::string prefix = at == &app ? "" : at->get_name() + " ";
  std::string known;
  for (const CLI::App* c : commands) known += (known.empty() ? "" : ", ") + prefix + c->get_name();
  return "unknown command '" + prefix + left.front() + "' (commands: " + known + ")";
}

// What the command printed must have reached its destination: a report redirected to a file
// on a full disk is an error, not a truncated file and exit status 0.
int finish_stdout(int status) {
  const int flushed = std::fflush(stdout), err = errno;
  if (flushed == 0 && !std::ferror(stdout)) return status;
  std::fprintf(stderr, "error: cannot write standard output: %s\n", std::strerror(flushed != 0 ? err : EIO));
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ActiveIP: train image classifiers with backdoor-based user fingerprints, and attack them"};
  app.require_subcommand(1);
  // A file over the size limit (ulimit -f) is a write error with EFBIG, reported like a full
  // disk, instead of a signal that ends the process mid-write.
  std::signal(SIGXFSZ, SIG_IGN);
  app.set_version_flag("--version", "activeip 0.1.0");
  activeip::cli::Handler handler;
  activeip::cli::add_train(app, handler);
  activeip::cli::add_eval(app, handler);
  activeip::cli::add_predict(app, handler);
  activeip::cli::add_data(app, handler);
  activeip::cli::add_fingerprint(app, handler);
  activeip::cli::add_attack(app, handler);
  activeip::cli::add_bench(app, handler);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s\n", parse_error_message(app, e).c_str());
    std::fprintf(stderr, "run '%s --help' for usage\n", argv[0]);
    return 2;
  }
  try {
    return finish_stdout(handler ? handler() : 0);
  } catch (const activeip::cli::UsageError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
