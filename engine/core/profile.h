// Where a step's time goes: wall-clock seconds per (what, phase) — a layer kind and its
// pass, or a stage of the step — summed over the scopes a context ran while it had a
// profile. Nothing is timed without one. On CUDA a scope waits for the device at both ends,
// so a profiled step is slower than an unprofiled one; on the CPU the ops are synchronous
// and the scopes cost a clock read each.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace activeip {

class Context;

class Profile {
 public:
  struct Entry {
    std::string what, phase;
    double seconds = 0;
    int64_t calls = 0;
  };
  void add(const char* what, const char* phase, double seconds);
  // In the order first seen.
  const std::vector<Entry>& entries() const { return entries_; }
  double total_seconds() const;

 private:
  std::vector<Entry> entries_;
};

// Times its lifetime into ctx's profile under (what, phase); nothing when ctx has none.
class ProfileScope {
 public:
  ProfileScope(Context& ctx, const char* what, const char* phase);
  ~ProfileScope();
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  Context& ctx_;
  const char *what_, *phase_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace activeip
