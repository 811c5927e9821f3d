// Running the real `activeip` binary from tests: the CLI spawned in a test's directory
// (posix_spawn, stdin from /dev/null) with stdout and stderr captured separately, and how
// it ended — exit status or the signal that killed it; `ok` and `rejected` check how a
// command must end.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <filesystem>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

extern char** environ;

namespace activeip::test {

struct CliRun {
  int status = -1;  // the exit status; -1 when a signal ended the process
  int signal = 0;   // the signal that ended it, 0 when it exited
  std::string out, err;
};

// Starts `binary args…` with `cwd` as its working directory, stdin from /dev/null and
// stdout and stderr written to `out_path` and `err_path` (created, or /dev/null); returns its pid.
inline pid_t spawn_cli(const std::string& binary, const std::vector<std::string>& args,
                       const std::filesystem::path& cwd, const std::string& out_path, const std::string& err_path) {
  std::vector<std::string> words = {binary};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  REQUIRE(posix_spawn_file_actions_init(&actions) == 0);
  REQUIRE(posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0) == 0);
  REQUIRE(posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600) == 0);
  REQUIRE(posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600) == 0);
  REQUIRE(posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str()) == 0);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE_MESSAGE(spawned == 0, "cannot run " << binary);
  return pid;
}

// Runs `binary args…` with `cwd` as its working directory and waits for it. The captured
// streams go to a directory of their own so that `cwd` sees only what the command writes.
inline CliRun run_cli(const std::string& binary, const std::vector<std::string>& args,
                      const std::filesystem::path& cwd) {
  const TempDir capture;
  const std::string out_path = capture / "stdout", err_path = capture / "stderr";
  const pid_t pid = spawn_cli(binary, args, cwd, out_path, err_path);
  int wstatus = 0;
  REQUIRE(waitpid(pid, &wstatus, 0) == pid);

  CliRun r;
  if (WIFEXITED(wstatus)) r.status = WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) r.signal = WTERMSIG(wstatus);
  r.out = read_text(out_path);
  r.err = read_text(err_path);
  return r;
}

// The `activeip` under test, run in `dir`.
inline CliRun cli(const TempDir& dir, const std::vector<std::string>& args) {
  return test::run_cli(ACTIVEIP_CLI_PATH, args, dir.path());
}

inline std::string describe(const std::vector<std::string>& args, const CliRun& r) {
  std::ostringstream s;
  s << "activeip";
  for (const std::string& a : args) s << " " << a;
  s << "\nexit status " << r.status << ", signal " << r.signal << "\nstdout:\n" << r.out << "stderr:\n" << r.err;
  return s.str();
}

// The one JSON object a command printed on stdout (--json); fails the test when it is not one.
inline nlohmann::json json_of(const CliRun& r) {
  const nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  REQUIRE_MESSAGE(j.is_object(), "stdout is not one JSON object: " << r.out);
  return j;
}

// Runs a command that must succeed.
inline CliRun ok(const TempDir& dir, const std::vector<std::string>& args) {
  const CliRun r = cli(dir, args);
  INFO(describe(args, r));
  REQUIRE(r.signal == 0);
  REQUIRE(r.status == 0);
  return r;
}

// Runs a command that must fail cleanly with `status`: no signal, stderr opening with
// "error: " and naming every needle, and the directory exactly as it was before.
inline CliRun rejected(const TempDir& dir, const std::vector<std::string>& args, int status,
                       std::initializer_list<std::string> needles) {
  const auto before = dir.listing();
  const CliRun r = cli(dir, args);
  INFO(describe(args, r));
  CHECK(r.signal == 0);
  CHECK(r.status == status);
  CHECK(r.err.rfind("error: ", 0) == 0);
  for (const std::string& n : needles) {
    INFO("stderr should name: " << n);
    CHECK(r.err.find(n) != std::string::npos);
  }
  CHECK(dir.listing() == before);
  return r;
}

// args followed by more.
inline std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// Runs a protected training (train --protect, enroll) that must write its model but may fall
// short of embedding every pattern: exit status 0, or 3 (trained, protection incomplete).
inline CliRun protected_training(const TempDir& dir, const std::vector<std::string>& args) {
  const CliRun r = cli(dir, args);
  INFO(describe(args, r));
  REQUIRE(r.signal == 0);
  REQUIRE((r.status == 0 || r.status == 3));
  return r;
}

// A small protected model that embeds its users, copied from tests/fixtures/protected: the
// owner key, a registry with alice and bob, and m.safetensors, a convnet trained on synthetic
// with the demo's recipe (scripts/demo.sh) for alice and bob, which the end of training
// measured and recorded as embedded (owner and both users at detection 1.000, so on any
// probe subset). Plumbing tests use it instead of training one of their own; being a file
// written by an earlier build, it also checks that such files keep loading.
// `fixture` "protected-v2" is the same recipe under scheme v2 (the default since), for alice,
// bob and carol (codes 0, 1, 2; code length 2), every pattern recorded as embedded.
inline void protected_model(const TempDir& dir, const std::string& fixture = "protected") {
  namespace fs = std::filesystem;
  const fs::path from = fs::path(ACTIVEIP_FIXTURES) / fixture;
  for (const char* name : {"owner.key", "users.db", "m.safetensors"})
    fs::copy_file(from / name, dir.path() / name, fs::copy_options::overwrite_existing);
  fs::permissions(dir.path() / "owner.key", fs::perms::owner_read | fs::perms::owner_write);  // git keeps no 0600
  fs::permissions(dir.path() / "users.db", fs::perms::owner_read | fs::perms::owner_write);
}

}  // namespace activeip::test
