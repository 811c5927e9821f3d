// Fuzz target: a checkpoint's metadata as the loaders read it: the input is the JSON object
// of a safetensors header's __metadata__ (non-string values are passed as their JSON text),
// read by ModelMeta::from_metadata and, when there is one, its protection record by
// ProtectionInfo::from_json.
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "engine/io/checkpoint.h"
#include "fingerprint/protect.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto j = nlohmann::json::parse(data, data + size, nullptr, false);
  if (!j.is_object()) return 0;
  std::map<std::string, std::string> m;
  for (const auto& [key, value] : j.items()) m[key] = value.is_string() ? value.get<std::string>() : value.dump();
  try {
    activeip::ModelMeta::from_metadata(m, "fuzz.safetensors");
  } catch (const activeip::Error&) {
  }
  try {
    if (m.count("protection")) activeip::ProtectionInfo::from_json(m["protection"], "fuzz.safetensors");
  } catch (const activeip::Error&) {
  }
  return 0;
}
