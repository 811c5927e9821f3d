// activeip: the command line. One file per command family registers its subcommands;
// main parses, runs the chosen handler and turns errors into "error: …" on stderr with
// exit status 1 (runtime) or 2 (usage).
#include <CLI/CLI.hpp>

#include <cstdio>

#include "cli/commands.h"
#include "kernels/error.h"

int main(int argc, char** argv) {
  CLI::App app{"ActiveIP: train image classifiers with backdoor-based user fingerprints, and attack them"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "activeip 0.1.0");
  activeip::cli::Handler handler;
  activeip::cli::add_train(app, handler);
  activeip::cli::add_eval(app, handler);
  activeip::cli::add_data(app, handler);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    std::fprintf(stderr, "run '%s --help' for usage\n", argv[0]);
    return 2;
  }
  try {
    return handler ? handler() : 0;
  } catch (const activeip::cli::UsageError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
