// Message formatting for activeip::Error. Messages read "what is wrong", then where the
// check sits, so that a user sees the cause first and a developer can find the line.
#include "base/error.h"

#include <cstdio>
#include <vector>

namespace activeip {

std::string strfmt(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  va_list copy;
  va_copy(copy, args);
  const int n = std::vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  std::string out;
  if (n > 0) {
    std::vector<char> buf(static_cast<size_t>(n) + 1);
    std::vsnprintf(buf.data(), buf.size(), fmt, args);
    out.assign(buf.data(), static_cast<size_t>(n));
  }
  va_end(args);
  return out;
}

namespace detail {
void throw_ensure(const char* cond, const char* file, int line, const std::string& msg) {
  const char* base = file;
  for (const char* p = file; *p; ++p)
    if (*p == '/') base = p + 1;
  throw Error(strfmt("%s (check `%s` failed at %s:%d)", msg.c_str(), cond, base, line));
}
}  // namespace detail

}  // namespace activeip
