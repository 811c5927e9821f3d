// Fuzz target: the user registry opened from an arbitrary file (not SQLite, a foreign
// database, a damaged or hand-edited registry), then every read the commands make.
#include <cstdint>

#include "base/error.h"
#include "fingerprint/registry.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = activeip::fuzz::scratch_file("users.db", data, size);
  ::unlink((path + "-wal").c_str());  // what an earlier input left must not leak into this one
  ::unlink((path + "-shm").c_str());
  try {
    const activeip::Registry r = activeip::Registry::open(path, false);
    size_t n = r.events().size() + r.schema_history().size() + static_cast<size_t>(r.codes());
    for (const activeip::UserRecord& u : r.users()) {
      n += r.user(u.name).has_value() + r.models_of(u.name).size() + r.embeddings_of(u.name).size();
      for (const activeip::ModelRecord& m : r.models()) n += r.embedded(m.id, u.name);
    }
    for (const activeip::ModelRecord& m : r.models()) n += r.model(m.id).has_value();
    return n == 1 ? 1 : 0;
  } catch (const activeip::Error&) {
    return 0;
  }
}
