// The one exception type of the project, and the checks that throw it.
// ENSURE(cond, "printf-style message", args...) throws activeip::Error naming the failed
// condition, the message and file:line. Validate at boundaries (layers, loaders, commands),
// never inside kernels.
#pragma once

#include <cstdarg>
#include <stdexcept>
#include <string>

namespace activeip {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// printf into a std::string.
std::string strfmt(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

namespace detail {
[[noreturn]] void throw_ensure(const char* cond, const char* file, int line, const std::string& msg);
}  // namespace detail

}  // namespace activeip

#define ENSURE(cond, ...)                                                                                      \
  do {                                                                                                         \
    if (!(cond)) ::activeip::detail::throw_ensure(#cond, __FILE__, __LINE__, ::activeip::strfmt(__VA_ARGS__)); \
  } while (0)
