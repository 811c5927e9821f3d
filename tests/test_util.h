// Shared helpers of the test suites: seeded random inputs (never zero), float↔double
// conversion, expect_close (worst relative error ‖got−ref‖/‖ref‖ and the first bad index),
// NaN poisoning, a central-difference gradient check in double, error_of (the message a
// call throws), and files: a temporary directory per test and whole-file byte reads and writes.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "base/error.h"

namespace activeip::test {

// Uniform in ±[lo, hi] with a random sign: never zero, never tiny.
inline std::vector<float> random_floats(size_t n, uint64_t seed, float lo = 0.1f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> mag(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = (rng() & 1 ? 1.0f : -1.0f) * mag(rng);
  return v;
}

// A derivative against finite differences of a piecewise-smooth loss (ReLU, max pool): f0, fp,
// fm the loss at the point and at ±h along the direction. The central difference must match
// `analytic` (within abs_tol + rel_tol·|numeric|), unless a kink lies within h of the point —
// the one-sided differences then disagree, the central one blends the two sides, and the
// derivative must match the one-sided difference of one side. A wrong gradient still fails
// wherever no kink is that close.
inline bool matches_differences(double analytic, double f0, double fp, double fm, double h, double abs_tol,
                                double rel_tol) {
  const auto close = [&](double n) { return std::abs(n - analytic) <= abs_tol + rel_tol * std::abs(n); };
  const double central = (fp - fm) / (2 * h), right = (fp - f0) / h, left = (f0 - fm) / h;
  if (close(central)) return true;
  return close(left) != close(right) &&
         std::abs(right - left) > abs_tol + rel_tol * std::max(std::abs(left), std::abs(right));
}

inline std::vector<double> to_double(const std::vector<float>& v) {
  return {v.begin(), v.end()};
}
inline std::vector<float> to_float(const std::vector<double>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<float>(v[i]);
  return out;
}

inline std::vector<float> poisoned(size_t n) {
  return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN());
}

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

// Arbitrary bytes (zeros included), for file contents rather than numeric inputs.
inline std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), "cannot read " << path);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE_MESSAGE(f.good(), "cannot write " << path);
}

inline std::string read_text(const std::string& path) {
  const std::vector<uint8_t> b = read_bytes(path);
  return {b.begin(), b.end()};
}

// A new directory under the system temporary directory, removed with its contents at the
// end. Each test makes its own, so tests running in parallel never share a file.
// The message of the activeip::Error that f throws, or "(no error)".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "activeip_test_XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;  // a destructor must not throw; a leftover folder is harmless
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

  // Every file and folder below, as paths relative to the directory.
  std::set<std::string> listing() const {
    std::set<std::string> out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(path_))
      out.insert(std::filesystem::relative(e.path(), path_).string());
    return out;
  }

  // Copies the files of the folder `src` whose names `want` accepts (all without it) into
  // the subfolder `into` (the directory itself when empty), owner-writable so that a test
  // can damage them even when the originals are read-only.
  void copy_from(const std::filesystem::path& src, const std::function<bool(const std::string&)>& want = nullptr,
                 const std::string& into = "") const {
    const std::filesystem::path to = path_ / into;
    std::filesystem::create_directories(to);
    for (const auto& e : std::filesystem::directory_iterator(src)) {
      const std::string name = e.path().filename().string();
      if (want && !want(name)) continue;
      std::filesystem::copy_file(e.path(), to / name);
      std::filesystem::permissions(to / name, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    }
  }

 private:
  std::filesystem::path path_;
};

}  // namespace activeip::test
