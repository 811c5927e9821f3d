// Running the real `activeip` binary from tests: the CLI spawned in a test's directory
// (posix_spawn, stdin from /dev/null) with stdout and stderr captured separately, and how
// it ended — exit status or the signal that killed it.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <filesystem>
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

// Runs `binary args…` with `cwd` as its working directory and waits for it. The captured
// streams go to a directory of their own so that `cwd` sees only what the command writes.
inline CliRun run_cli(const std::string& binary, const std::vector<std::string>& args,
                      const std::filesystem::path& cwd) {
  const TempDir capture;
  const std::string out_path = capture / "stdout", err_path = capture / "stderr";
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
  int wstatus = 0;
  REQUIRE(waitpid(pid, &wstatus, 0) == pid);

  CliRun r;
  if (WIFEXITED(wstatus)) r.status = WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) r.signal = WTERMSIG(wstatus);
  r.out = read_text(out_path);
  r.err = read_text(err_path);
  return r;
}

}  // namespace activeip::test
