// Shared helpers of the test suites: seeded random inputs (never zero), float↔double
// conversion, expect_close (worst relative error ‖got−ref‖/‖ref‖ and the first bad index),
// NaN poisoning and a central-difference gradient check in double.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace activeip::test {

// Uniform in ±[lo, hi] with a random sign: never zero, never tiny.
inline std::vector<float> random_floats(size_t n, uint64_t seed, float lo = 0.1f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> mag(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = (rng() & 1 ? 1.0f : -1.0f) * mag(rng);
  return v;
}

inline std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }
inline std::vector<float> to_float(const std::vector<double>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<float>(v[i]);
  return out;
}

inline std::vector<float> poisoned(size_t n) { return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()); }

struct Tolerance {
  double rel = 1e-5;
};

// Relative L2 error ‖got − ref‖ / ‖ref‖; a NaN anywhere fails with its index.
template <class G, class R>
void expect_close(const std::vector<G>& got, const std::vector<R>& ref, Tolerance tol = {}) {
  REQUIRE(got.size() == ref.size());
  double num = 0, den = 0, worst = 0;
  size_t worst_i = 0, first_nan = got.size();
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = static_cast<double>(got[i]), r = static_cast<double>(ref[i]);
    if (std::isnan(g) && first_nan == got.size()) first_nan = i;
    num += (g - r) * (g - r);
    den += r * r;
    const double e = std::fabs(g - r) / (std::fabs(r) + 1e-12);
    if (e > worst) worst = e, worst_i = i;
  }
  INFO("first NaN at index " << first_nan << " of " << got.size());
  REQUIRE(first_nan == got.size());
  const double rel = std::sqrt(num) / (std::sqrt(den) + 1e-30);
  INFO("relative error " << rel << " > " << tol.rel << "; worst element " << worst_i << ": got "
                         << static_cast<double>(got[worst_i]) << " ref " << static_cast<double>(ref[worst_i]));
  CHECK(rel <= tol.rel);
}

// Central differences of a scalar function f of `x` (double), at step h.
inline std::vector<double> numeric_grad(std::vector<double>& x, const std::function<double()>& f, double h = 1e-6) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + h;
    const double fp = f();
    x[i] = keep - h;
    const double fm = f();
    x[i] = keep;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

// Σ out[i]·weights[i]: the scalar whose gradient w.r.t. out is `weights`, used to turn a
// vector-valued forward into a scalar for finite differences.
inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace activeip::test
