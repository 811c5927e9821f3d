// Fuzz target: image files as `predict` reads them (PNG, JPEG; engine/data/image_file.h) on
// arbitrary bytes, each decoded image then resized to 8×8 as a model's input would be.
#include <cstdint>

#include "base/error.h"
#include "engine/data/image_file.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = activeip::fuzz::scratch_file("image", data, size);
  try {
    const activeip::Image im = activeip::read_image(path);
    const activeip::Image small = activeip::resize_image(im, 8, 8);
    return small.pixels.size() == static_cast<size_t>(64 * im.C) ? 0 : 1;
  } catch (const activeip::Error&) {
    return 0;
  }
}
