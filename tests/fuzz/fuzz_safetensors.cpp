// Fuzz target: the safetensors reader (models, optimizer states, masks, logits files) on
// arbitrary bytes; every view it hands out is read end to end.
#include <cstdint>

#include "base/error.h"
#include "engine/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto file = activeip::SafetensorsReader::from_bytes({data, data + size}, "fuzz.safetensors");
    uint64_t sum = 0;
    for (const std::string& name : file.names()) {
      const activeip::SafetensorsView& v = file.get(name);
      for (size_t i = 0; i < v.bytes; ++i) sum += v.data[i];
      if (v.bytes != activeip::shape_numel(v.shape) * activeip::safetensors_dtype_size(v.dtype)) __builtin_trap();
    }
    for (const auto& [key, value] : file.metadata()) sum += key.size() + value.size();
    (void)file.data_sha256();
    return sum == 1 ? 1 : 0;
  } catch (const activeip::Error&) {
    return 0;
  }
}
