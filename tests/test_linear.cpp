// Fully connected layer: the fast CPU path (on gemm_cpu) against the double specification,
// with and without bias, dW and db accumulating onto non-zero values; and the
// specification's backward against finite differences of its forward.
#include <string>
#include <vector>

#include "kernels/linear.h"
#include "tests/test_util.h"

using namespace activeip;
using namespace activeip::test;

namespace {

struct Case {
  const char* name;
  LinearShape s;
};

const Case kCases[] = {{"N1 IN3 OUT10", {1, 3, 10}},
                       {"N17 IN512 OUT10", {17, 512, 10}},
                       {"N7 IN33 OUT100", {7, 33, 100}},
                       {"N128 IN64 OUT1", {128, 64, 1}},
                       {"N3 IN1 OUT1", {3, 1, 1}}};

}  // namespace

TEST_CASE("linear: forward and backward match the specification") {
  for (const Case& k : kCases) {
    for (const bool bias : {true, false}) {
      SUBCASE((std::string(k.name) + (bias ? " bias" : " no bias")).c_str()) {
        const LinearShape s = k.s;
        const size_t nx = static_cast<size_t>(s.N) * s.IN, nw = static_cast<size_t>(s.OUT) * s.IN,
                     ny = static_cast<size_t>(s.N) * s.OUT;
        const std::vector<float> x = random_floats(nx, 1), w = random_floats(nw, 2), b = random_floats(s.OUT, 3),
                                 dy = random_floats(ny, 4), dw0 = random_floats(nw, 5), db0 = random_floats(s.OUT, 6);
        std::vector<float> y = poisoned(ny), dx = poisoned(nx), dw = dw0, db = db0;
        linear_fwd_cpu(s, x.data(), w.data(), bias ? b.data() : nullptr, y.data());
        linear_bwd_cpu(s, x.data(), w.data(), dy.data(), dx.data(), dw.data(), bias ? db.data() : nullptr);

        const std::vector<double> xd = to_double(x), wd = to_double(w), bd = to_double(b), dyd = to_double(dy);
        std::vector<double> y_ref(ny), dx_ref(nx), dw_ref = to_double(dw0), db_ref = to_double(db0);
        linear_fwd_ref(s, xd.data(), wd.data(), bias ? bd.data() : nullptr, y_ref.data());
        linear_bwd_ref(s, xd.data(), wd.data(), dyd.data(), dx_ref.data(), dw_ref.data(),
                       bias ? db_ref.data() : nullptr);
        expect_close(y, y_ref);
        expect_close(dx, dx_ref);
        expect_close(dw, dw_ref);
        if (bias)
          expect_close(db, db_ref);
        else
          CHECK(db == db0);  // a null db is never written
      }
    }
  }
}

TEST_CASE("linear: specification backward matches finite differences") {
  const LinearShape s{3, 4, 5};
  const size_t nx = static_cast<size_t>(s.N) * s.IN, nw = static_cast<size_t>(s.OUT) * s.IN,
               ny = static_cast<size_t>(s.N) * s.OUT;
  std::vector<double> x = to_double(random_floats(nx, 11)), w = to_double(random_floats(nw, 12)),
                      b = to_double(random_floats(s.OUT, 13)), wv = to_double(random_floats(ny, 14)), y(ny);
  const auto f = [&] {
    linear_fwd_ref(s, x.data(), w.data(), b.data(), y.data());
    return dot(y, wv);
  };
  std::vector<double> dx(nx), dw(nw, 0.0), db(s.OUT, 0.0);
  linear_bwd_ref(s, x.data(), w.data(), wv.data(), dx.data(), dw.data(), db.data());
  expect_close(dx, numeric_grad(x, f), {.rel = 1e-6});
  expect_close(dw, numeric_grad(w, f), {.rel = 1e-6});
  expect_close(db, numeric_grad(b, f), {.rel = 1e-6});
}
