// Fuzz target: owner key files (64 hex digits and a newline, mode 0600) on arbitrary bytes.
#include <cstdint>

#include "base/error.h"
#include "fingerprint/key.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = activeip::fuzz::scratch_file("owner.key", data, size);  // mode 0600, as a key must be
  try {
    const activeip::OwnerKey key = activeip::OwnerKey::load(path);
    return key.id().size() == 16 ? 0 : 1;
  } catch (const activeip::Error&) {
    return 0;
  }
}
