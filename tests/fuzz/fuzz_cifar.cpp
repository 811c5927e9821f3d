// Fuzz target: the CIFAR-10 and CIFAR-100 binary readers. The first byte picks the format
// (bit 0) and whether the harness stores the rest gzipped (bit 1); the rest is the file.
#include <cstdint>

#include "base/error.h"
#include "engine/data/formats.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto& info = activeip::data::dataset_info(data[0] & 1 ? "cifar100" : "cifar10");
  const std::string path = activeip::fuzz::scratch_file("batch.bin", data + 1, size - 1, data[0] & 2);
  try {
    const activeip::data::Chunk c = activeip::data::read_cifar(path, info);
    const size_t pixels = static_cast<size_t>(info.shape.H) * info.shape.W * info.shape.C;
    int sum = 0;
    for (int64_t i = 0; i < c.count; ++i) sum += c.label(i) + c.record(i)[pixels - 1];
    return sum == -1 ? 1 : 0;
  } catch (const activeip::Error&) {
    return 0;
  }
}
