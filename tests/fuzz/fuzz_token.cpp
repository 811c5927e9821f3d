// Fuzz target: user tokens (versioned JSON, scheme v2 patterns) on arbitrary text; a token
// that reads is written back and must read the same.
#include <cstdint>
#include <string>

#include "base/error.h"
#include "fingerprint/token.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const activeip::UserToken t =
        activeip::UserToken::from_json(std::string(reinterpret_cast<const char*>(data), size), "fuzz.token");
    for (const activeip::TokenModel& m : t.models) (void)m.spec();
    if (!(activeip::UserToken::from_json(t.to_json(), "fuzz.token") == t)) __builtin_trap();
    return 0;
  } catch (const activeip::Error&) {
    return 0;
  }
}
