// Profile entries found by name (a step has a few dozen scopes over a dozen entries).
#include "engine/core/profile.h"

#include "engine/core/context.h"

namespace activeip {

void Profile::add(const char* what, const char* phase, double seconds) {
  for (Entry& e : entries_)
    if (e.what == what && e.phase == phase) {
      e.seconds += seconds;
      ++e.calls;
      return;
    }
  entries_.push_back({what, phase, seconds, 1});
}

double Profile::total_seconds() const {
  double s = 0;
  for (const Entry& e : entries_) s += e.seconds;
  return s;
}

ProfileScope::ProfileScope(Context& ctx, const char* what, const char* phase) : ctx_(ctx), what_(what), phase_(phase) {
  if (!ctx_.profile()) return;
  if (ctx_.is_cuda()) ctx_.synchronize();
  t0_ = std::chrono::steady_clock::now();
}

ProfileScope::~ProfileScope() {
  Profile* p = ctx_.profile();
  if (!p) return;
  if (ctx_.is_cuda()) try {
      ctx_.synchronize();
    } catch (...) {  // a failed device surfaces at the next op; a destructor must not throw
    }
  p->add(what_, phase_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
}

}  // namespace activeip
