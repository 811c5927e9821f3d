// Platform-independent random numbers for initialisation, shuffling and augmentation:
// splitmix64 for seeding and hashing, xoshiro256** as the stream, and our own maps to
// uniform / normal floats (std::*_distribution differ between standard libraries, and
// a seed must give the same model everywhere).
#pragma once

#include <cstdint>
#include <vector>

namespace activeip {

uint64_t splitmix64(uint64_t x);
// A 64-bit hash of a seed and a few integers (stream ids, epochs, steps).
uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b = 0);

class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform();  // [0, 1)
  double uniform(double lo, double hi);
  double normal();                              // N(0, 1), Box–Muller
  uint64_t below(uint64_t n);                   // [0, n), unbiased
  std::vector<int32_t> permutation(int32_t n);  // Fisher–Yates

 private:
  uint64_t s_[4];
};

}  // namespace activeip
