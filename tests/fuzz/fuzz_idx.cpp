// Fuzz target: the IDX readers of Fashion-MNIST. The first byte picks the image or the label
// reader (bit 0) and whether the harness stores the rest gzipped (bit 1); the rest is the
// file. A file that reads is paired with a well-formed partner of the same count.
#include <cstdint>
#include <vector>

#include "base/error.h"
#include "engine/data/formats.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  namespace d = activeip::data;
  const d::DatasetInfo& info = d::dataset_info("fashion-mnist");
  const bool images = data[0] & 1;
  const std::string path = activeip::fuzz::scratch_file("file-idx-ubyte", data + 1, size - 1, data[0] & 2);
  try {
    d::IdxFile f = images ? d::read_idx_images(path, info) : d::read_idx_labels(path, info);
    std::vector<uint8_t> partner;
    put_be32(partner, images ? 0x801 : 0x803);
    put_be32(partner, static_cast<uint32_t>(f.count));
    if (!images) {
      put_be32(partner, 28);
      put_be32(partner, 28);
    }
    partner.resize(partner.size() + static_cast<size_t>(f.count) * (images ? 1 : 28 * 28));
    const std::string other = activeip::fuzz::scratch_file("partner-idx-ubyte", partner.data(), partner.size());
    d::IdxFile g = images ? d::read_idx_labels(other, info) : d::read_idx_images(other, info);
    const d::Chunk c = images ? d::pair_idx(std::move(f), std::move(g), info.shape)
                              : d::pair_idx(std::move(g), std::move(f), info.shape);
    int sum = 0;
    for (int64_t i = 0; i < c.count; ++i) sum += c.label(i) + c.record(i)[28 * 28 - 1];
    return sum == -1 ? 1 : 0;
  } catch (const activeip::Error&) {
    return 0;
  }
}
