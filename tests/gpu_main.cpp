// Entry point of the GPU test suite: exits 77 (ctest: skipped) when this build has no CUDA
// or the machine has no usable GPU, so a GPU test is never reported as passed without one.
// Listing the tests (for ctest's discovery) works everywhere.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>

#include "engine/core/context.h"

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], "--list", 6) == 0 || std::strncmp(argv[i], "-ltc", 4) == 0) listing = true;
  if (!listing && !activeip::cuda_available()) {
    std::fprintf(stderr, "skipped: no usable CUDA device (or built without CUDA)\n");
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
