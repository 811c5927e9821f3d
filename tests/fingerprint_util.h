// Helpers of the fingerprint suites: users as the schemes see them.
#pragma once

#include <string>
#include <vector>

#include "fingerprint/scheme.h"

namespace activeip::test {

// The users `names` with the codes a fresh registry would give them: 0, 1, 2, … in order.
inline std::vector<Identity> named(const std::vector<std::string>& names) {
  std::vector<Identity> out;
  for (const std::string& n : names) out.push_back({n, static_cast<int64_t>(out.size())});
  return out;
}

}  // namespace activeip::test
