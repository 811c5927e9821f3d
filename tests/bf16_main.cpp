// Entry point of the bf16 CPU suite (test_bf16_*.cpp): exits 77 (ctest: skipped) on a CPU
// without AVX512-BF16, so a bf16 test is never reported as passed where it cannot run.
// Listing the tests (for ctest's discovery) works everywhere.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>

#include "kernels/bf16.h"

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], "--list", 6) == 0 || std::strncmp(argv[i], "-ltc", 4) == 0) listing = true;
  if (!listing && !activeip::cpu_has_avx512_bf16()) {
    std::fprintf(stderr, "skipped: this CPU has no AVX512-BF16\n");
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
