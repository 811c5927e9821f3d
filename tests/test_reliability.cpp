// Reliability under faults and load: registry writers killed (SIGKILL) at random moments, four
// processes writing one registry at once, and a disk that fills (`ulimit -f`) while a model, a
// registry or a report is written. What must hold after each: the registry passes SQLite's
// integrity check, every recorded change has its audit event and every event its change, and
// a failed write names its file and leaves nothing behind.
#include <doctest/doctest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "engine/data/dataset.h"
#include "engine/io/safetensors.h"
#include "fingerprint/registry.h"
#include "tests/cli_util.h"
#include "tests/data_files.h"
#include "tests/test_util.h"

using namespace activeip;
namespace fs = std::filesystem;

namespace {

// One integer from a query on the registry file, opened read-only with its own connection.
int64_t count(sqlite3* db, const char* sql) {
  sqlite3_stmt* s = nullptr;
  REQUIRE_MESSAGE(sqlite3_prepare_v2(db, sql, -1, &s, nullptr) == SQLITE_OK, sqlite3_errmsg(db));
  REQUIRE(sqlite3_step(s) == SQLITE_ROW);
  const int64_t n = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return n;
}

std::string text(sqlite3* db, const char* sql) {
  sqlite3_stmt* s = nullptr;
  REQUIRE_MESSAGE(sqlite3_prepare_v2(db, sql, -1, &s, nullptr) == SQLITE_OK, sqlite3_errmsg(db));
  REQUIRE(sqlite3_step(s) == SQLITE_ROW);
  std::string t = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  return t;
}

// The registry at `path` is intact (PRAGMA integrity_check, foreign keys) and its audit log
// matches its tables both ways: users ↔ user.add, revoked users ↔ user.revoke, models ↔
// model.add. Opening it through Registry first recovers what a killed writer left (SQLite's
// hot journal or WAL), as any next command would.
void check_consistent(const std::string& path) {
  Registry::open(path, false);
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  CHECK(text(db, "PRAGMA integrity_check") == "ok");
  CHECK(count(db, "SELECT count(*) FROM pragma_foreign_key_check") == 0);
  const char* unmatched[] = {
      "SELECT count(*) FROM users u WHERE (SELECT count(*) FROM events e WHERE e.kind = 'user.add' AND "
      "e.subject = u.name) != 1",
      "SELECT count(*) FROM events e WHERE e.kind = 'user.add' AND NOT EXISTS (SELECT 1 FROM users u WHERE "
      "u.name = e.subject)",
      "SELECT count(*) FROM users u WHERE (SELECT count(*) FROM events e WHERE e.kind = 'user.revoke' AND "
      "e.subject = u.name) != (u.status = 'revoked')",
      "SELECT count(*) FROM models m WHERE (SELECT count(*) FROM events e WHERE e.kind = 'model.add' AND "
      "e.subject = m.id) != 1",
      "SELECT count(*) FROM events e WHERE e.kind = 'model.add' AND NOT EXISTS (SELECT 1 FROM models m WHERE "
      "m.id = e.subject)",
  };
  for (const char* sql : unmatched) {
    INFO(sql);
    CHECK(count(db, sql) == 0);
  }
  sqlite3_close(db);
}

// Starts `activeip args…` in `dir` with its output discarded; returns its pid.
pid_t start_cli(const test::TempDir& dir, const std::vector<std::string>& args) {
  return test::spawn_cli(ACTIVEIP_CLI_PATH, args, dir.path(), "/dev/null", "/dev/null");
}

// `activeip args…` under `ulimit -f blocks` (512-byte blocks): a disk that fills at that size.
test::CliRun cli_with_file_limit(const test::TempDir& dir, int blocks, const std::vector<std::string>& args) {
  std::vector<std::string> words = {"-c", strfmt("ulimit -f %d && exec \"$0\" \"$@\"", blocks), ACTIVEIP_CLI_PATH};
  words.insert(words.end(), args.begin(), args.end());
  return test::run_cli("/bin/sh", words, dir.path());
}

// A line "NAME: N kB" of /proc/self/status, in MB.
double status_mb(const char* name) {
  std::ifstream status("/proc/self/status");
  std::string line;
  const std::string key = std::string(name) + ":";
  while (std::getline(status, line))
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(key.size())) / 1024.0;
  FAIL("no " << name << " in /proc/self/status");
  return 0;
}

// Resets the process's peak resident memory (VmHWM) to what it holds now, and returns that, in
// MB: what the process held before (the CUDA runtime alone is over 100 MB) is not the refusal's.
double reset_peak_mb() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.close();
  REQUIRE_MESSAGE(clear.good(), "cannot reset the peak memory through /proc/self/clear_refs");
  return status_mb("VmRSS");
}

// How `f` fails: its Error message, the seconds it took and its peak memory (above what the
// process held before).
struct Refusal {
  std::string message;
  double seconds = 0, peak_mb = 0;  // peak_mb: the peak resident memory above what the process held before
};
template <class F>
Refusal refusal(F&& f) {
  const double before = reset_peak_mb();
  const auto t0 = std::chrono::steady_clock::now();
  Refusal r;
  try {
    f();
    FAIL("no error");
  } catch (const Error& e) {
    r.message = e.what();
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.peak_mb = status_mb("VmHWM") - before;
  return r;
}

// A safetensors file: the 8-byte little-endian length, `header`, then `data_bytes` zero bytes.
std::vector<uint8_t> safetensors_bytes(uint64_t length, const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> b(8 + header.size() + data_bytes, 0);
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(length >> (8 * i));
  std::copy(header.begin(), header.end(), b.begin() + 8);
  return b;
}

// `zeros` zero bytes after `head`, as one gzip member, compressed a chunk at a time (no
// buffer of the decoded size): 256 MiB of zeros take about 250 KiB.
std::vector<uint8_t> gzip_bomb(const std::vector<uint8_t>& head, size_t zeros) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<uint8_t> out, buf(1 << 16);
  const std::vector<uint8_t> chunk(1 << 20, 0);
  const auto feed = [&](const uint8_t* p, size_t n, int flush) {
    zs.next_in = const_cast<Bytef*>(p);
    zs.avail_in = static_cast<uInt>(n);
    do {
      zs.next_out = buf.data();
      zs.avail_out = static_cast<uInt>(buf.size());
      deflate(&zs, flush);
      out.insert(out.end(), buf.data(), buf.data() + (buf.size() - zs.avail_out));
    } while (zs.avail_out == 0);
  };
  feed(head.data(), head.size(), Z_NO_FLUSH);
  for (size_t done = 0; done < zeros; done += chunk.size())
    feed(chunk.data(), std::min(chunk.size(), zeros - done), Z_NO_FLUSH);
  feed(nullptr, 0, Z_FINISH);
  deflateEnd(&zs);
  return out;
}

// Nothing in `dir` but `expected`: no partial file, no temporary left behind.
void check_listing(const test::TempDir& dir, const std::set<std::string>& expected) {
  CHECK(dir.listing() == expected);
}

}  // namespace

TEST_CASE(
    "registry: users add, users revoke, enroll and train --protect killed at random moments leave it intact and "
    "consistent") {
  const test::TempDir dir;
  const std::string db = dir / "users.db";
  test::protected_model(dir, "protected-v2");  // alice, bob and carol embedded in m.safetensors
  using Clock = std::chrono::steady_clock;
  const auto micros = [](Clock::duration d) { return std::chrono::duration_cast<std::chrono::microseconds>(d); };
  // A short training on `synthetic`, and the registry and key it records with.
  const std::vector<std::string> run = {
      "--key", "owner.key",    "--registry", "users.db", "--data", "synthetic", "--epochs", "1",        "--limit-train",
      "64",    "--limit-test", "32",         "--batch",  "32",     "--threads", "1",        "--probes", "8"};
  const std::vector<std::string> enroll = test::with({"enroll", "--model", "m.safetensors"}, run);
  const std::vector<std::string> train = test::with({"train", "--protect", "--net", "convnet"}, run);
  // How long each write takes, start to exit (the fastest of a few: the first runs are
  // slower), so that the kills spread over a whole run.
  auto add_span = std::chrono::microseconds::max(), enroll_span = add_span, train_span = add_span;
  for (int i = 0; i < 3; ++i) {
    auto t0 = Clock::now();
    test::ok(dir, {"users", "add", "--registry", "users.db", strfmt("seed%d", i)});
    add_span = std::min(add_span, micros(Clock::now() - t0));
    t0 = Clock::now();
    test::protected_training(
        dir, test::with(enroll, {"--users", strfmt("seed%d", i), "--out", strfmt("s%d.safetensors", i)}));
    enroll_span = std::min(enroll_span, micros(Clock::now() - t0));
    t0 = Clock::now();
    test::protected_training(dir, test::with(train, {"--out", strfmt("p%d.safetensors", i)}));
    train_span = std::min(train_span, micros(Clock::now() - t0));
  }
  const auto models = [&] { return Registry::open(db, false).models().size(); };

  std::mt19937 rng(50);
  int killed = 0, committed = 0;
  std::vector<std::string> active = {"alice", "bob", "carol"}, unenrolled;
  for (int trial = 0; trial < 50; ++trial) {
    // In turn: add a user, enroll the last one added, revoke an active user, train a protected
    // model (which records it with every active user).
    const int kind = trial % 4;
    std::string name;
    std::vector<std::string> args;
    const size_t models_before = models();
    if (kind == 3) {
      args = test::with(train, {"--out", strfmt("t%02d.safetensors", trial)});
    } else if (kind == 1 && !unenrolled.empty()) {
      name = unenrolled.back();
      args = test::with(enroll, {"--users", name, "--out", strfmt("e%02d.safetensors", trial)});
    } else if (kind == 2 && !active.empty()) {
      name = active.front();
      args = {"users", "revoke", "--registry", "users.db", name};
    } else {
      name = strfmt("u%02d", trial);
      args = {"users", "add", "--registry", "users.db", name};
    }
    const auto span = args[0] == "enroll" ? enroll_span : args[0] == "train" ? train_span : add_span;
    const pid_t pid = start_cli(dir, args);
    // Within the unkilled run's time (some runs are faster, and complete).
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % (span.count() + 1)));
    ::kill(pid, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    const bool was_killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    killed += was_killed;
    INFO("trial " << trial << ": " << args[0] << " " << args[1] << " " << name << (was_killed ? ", killed" : ""));
    check_consistent(db);
    const Registry r = Registry::open(db, false);
    const auto u = r.user(name);
    if (args[0] == "train") {
      committed += r.models().size() > models_before;
    } else if (args[0] == "enroll") {
      if (!r.embeddings_of(name).empty()) unenrolled.pop_back(), ++committed;
    } else if (args[1] == "revoke") {
      REQUIRE(u);
      if (u->status == "revoked") {  // a revoked user is not enrolled any more
        active.erase(active.begin());
        std::erase(unenrolled, name);
        ++committed;
      }
    } else if (u) {
      active.push_back(name);
      unenrolled.push_back(name);
      ++committed;
    }
  }
  MESSAGE(killed << " of 50 writers killed (" << committed << " changes committed in all); unkilled, users add took "
                 << add_span.count() / 1000 << " ms, enroll " << enroll_span.count() / 1000 << " ms and train "
                 << train_span.count() / 1000 << " ms; the registry stayed intact and consistent");
  CHECK(killed >= 10);  // most are; how many depends on the machine's load
}

TEST_CASE("registry: 4 processes adding 100 users each at once record all 400") {
  const test::TempDir dir;
  const std::string db = dir / "users.db";
  int go[2];
  REQUIRE(::pipe(go) == 0);
  std::vector<pid_t> children;
  for (int p = 0; p < 4; ++p) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {  // a writer: one transaction per user, the registry opened (created) anew for each
      ::close(go[1]);
      char c;
      while (::read(go[0], &c, 1) < 0) {  // all four start when the pipe closes
      }
      try {
        for (int i = 0; i < 100; ++i) Registry::open(db, true).add_users({strfmt("p%d-%03d", p, i)});
      } catch (const std::exception& e) {
        std::fprintf(stderr, "writer %d: %s\n", p, e.what());
        ::_exit(1);
      }
      ::_exit(0);
    }
    children.push_back(pid);
  }
  ::close(go[0]);
  ::close(go[1]);
  for (pid_t pid : children) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);  // a "database is locked" would have failed its writer
  }
  const Registry r = Registry::open(db, false);
  const auto users = r.users();
  CHECK(users.size() == 400);
  std::set<int64_t> codes;
  for (const UserRecord& u : users) codes.insert(u.code);
  CHECK(codes.size() == 400);
  CHECK(*codes.rbegin() == 399);
  check_consistent(db);
}

TEST_CASE("full disk: a model, a registry and a report that do not fit fail naming the file, leaving nothing") {
  const test::TempDir dir;
  SUBCASE("model") {
    const std::vector<std::string> args = {
        "train",        "--net",    "convnet", "--data",  "synthetic", "--limit-train", "64", "--limit-test",
        "16",           "--epochs", "1",       "--batch", "32",        "--threads",     "1",  "--out",
        "m.safetensors"};
    const test::CliRun r = cli_with_file_limit(dir, 64, args);  // 32 KiB: less than the model
    INFO(test::describe(args, r));
    CHECK(r.signal == 0);
    CHECK(r.status == 1);
    CHECK(r.err.find("error: cannot write ") != std::string::npos);
    CHECK(r.err.find("m.optim.safetensors.pending: File too large") != std::string::npos);
    check_listing(dir, {});
  }
  SUBCASE("registry") {
    test::ok(dir, {"users", "add", "--registry", "users.db", "alice"});
    const auto before = test::read_bytes(dir / "users.db");
    std::vector<std::string> args = {"users", "add", "--registry", "users.db"};
    for (int i = 0; i < 300; ++i) args.push_back(strfmt("user-with-a-long-name-%04d", i));
    const int blocks = static_cast<int>(before.size() / 512);
    const test::CliRun r = cli_with_file_limit(dir, blocks, args);
    INFO(test::describe(args, r));
    CHECK(r.signal == 0);
    CHECK(r.status == 1);
    CHECK(r.err.find("error: registry users.db: disk I/O error while writing") == 0);
    CHECK(test::read_bytes(dir / "users.db") == before);
    check_listing(dir, {"users.db"});
    check_consistent(dir / "users.db");
    CHECK(Registry::open(dir / "users.db", false).users().size() == 1);
  }
  SUBCASE("report on standard output") {
    test::protected_model(dir);
    const std::vector<std::string> args = {"info", "--model", "m.safetensors", "--json"};
    std::vector<std::string> words = {"-c", "exec \"$0\" \"$@\" > /dev/full", ACTIVEIP_CLI_PATH};  // ENOSPC
    words.insert(words.end(), args.begin(), args.end());
    const test::CliRun r = test::run_cli("/bin/sh", words, dir.path());
    INFO(test::describe(args, r));
    CHECK(r.signal == 0);
    CHECK(r.status == 1);
    CHECK(r.err == "error: cannot write standard output: No space left on device\n");
  }
}

TEST_CASE("resource limits: hostile safetensors headers are refused before any large allocation") {
  struct Case {
    const char* what;
    std::vector<uint8_t> bytes;
    const char* error;
  };
  const auto file = [](const std::string& header, size_t data_bytes) {
    return safetensors_bytes(header.size(), header, data_bytes);
  };
  const Case cases[] = {
      {"header length 2^60", safetensors_bytes(uint64_t(1) << 60, "{}", 0),
       "header length 1152921504606846976 is over"},
      {"dims whose product overflows",
       file(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,1024],"data_offsets":[0,0]}})", 0),
       "tensor 't' of shape [4294967296, 4294967296, 1024] is too large"},
      {"dims that multiply past the file",
       file(R"({"t":{"dtype":"F32","shape":[1000000,1000],"data_offsets":[0,4000000000]}})", 8),
       "data_offsets [0, 4000000000] outside the 8 data bytes"},
      {"offsets past the file", file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4),
       "data_offsets [0, 8] outside the 4 data bytes"},
      {"overlapping tensors",
       file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
            12),
       "tensors 'a' and 'b' overlap"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    const Refusal r = refusal([&] { SafetensorsReader::from_bytes(c.bytes, "hostile.safetensors"); });
    CHECK(r.message.find("hostile.safetensors: ") == 0);
    CHECK(r.message.find(c.error) != std::string::npos);
    CHECK(r.seconds < 1.0);
    CHECK(r.peak_mb < 100);
    MESSAGE(std::string(c.what) << ": refused in " << r.seconds * 1e3 << " ms, peak memory growth " << r.peak_mb
                                << " MB: " << r.message);
  }
}

TEST_CASE("resource limits: a gzip bomb in the IDX loader is refused before it costs memory") {
  const test::TempDir dir;
  test::write_fashion_mnist(dir.path(), 100, 20, 1, false, true);
  // 100 images of 28×28 promised, 256 MiB of zeros delivered.
  std::vector<uint8_t> head;
  for (uint32_t v : {0x803u, 100u, 28u, 28u})
    for (int shift = 24; shift >= 0; shift -= 8) head.push_back(static_cast<uint8_t>(v >> shift));
  const std::string bomb = dir / "train-images-idx3-ubyte.gz";
  test::write_bytes(bomb, gzip_bomb(head, size_t(256) << 20));
  REQUIRE(std::filesystem::file_size(bomb) < (size_t(1) << 20));
  const Refusal r = refusal([&] { load_data({"fashion-mnist", dir.path().string(), -1, -1}); });
  CHECK(r.message.find(bomb + ": the gzip stream holds more than 78417 bytes") == 0);
  CHECK(r.seconds < 1.0);
  CHECK(r.peak_mb < 100);
  MESSAGE("gzip bomb (" << std::filesystem::file_size(bomb) << " bytes for 256 MiB) refused in " << r.seconds
                        << " s, peak memory growth " << r.peak_mb << " MB: " << r.message);
}
