// The op table (tests/op_table.h) on the CPU fast path, through the op boundary, against the
// float64 reference: fp32 tolerance, outputs NaN-poisoned, accumulating passes run twice.
// Cases whose reference is the CPU op itself are for the other backends (test_cuda_ops.cpp);
// here they run on the CPU twice and must repeat themselves, so every case runs in every build.
#include <doctest/doctest.h>

#include "tests/op_table.h"

namespace activeip {
namespace {

void run_family(const char* family) {
  Context ctx;
  int n = 0;
  for (const test::OpCase& c : test::op_table())
    if (test::op_is(c, family) && c.reference) {
      SUBCASE(c.name.c_str()) {
        test::check_op(c, ctx);
      }
      ++n;
    }
  CHECK(n > 0);
}

TEST_CASE("ops on the CPU match the float64 reference: conv2d fprop, dgrad, wgrad") {
  run_family("conv2d");
}
TEST_CASE("the CPU conv2d algorithms match the float64 reference: direct, Winograd and im2col, each on every shape") {
  run_family("cpu conv2d");
}
TEST_CASE("ops on the CPU match the float64 reference: batch norm fused with the residual add and ReLU") {
  run_family("batchnorm_act");
}
TEST_CASE("ops on the CPU match the float64 reference: linear") {
  run_family("linear");
}
TEST_CASE("ops on the CPU match the float64 reference: batchnorm") {
  run_family("batchnorm");
}
TEST_CASE("ops on the CPU match the float64 reference: max pooling") {
  run_family("maxpool2d");
}
TEST_CASE("ops on the CPU match the float64 reference: global average pooling") {
  run_family("global_avgpool");
}

TEST_CASE("ops on the CPU match the float64 reference: loss and top-1 accumulation") {
  run_family("loss_accumulate");
}
TEST_CASE("ops on the CPU match the float64 reference: SAM's ascent") {
  run_family("sam_ascent");
}
TEST_CASE("ops on the CPU match the float64 reference: the logit spread's gradient") {
  run_family("logit_spread");
}

TEST_CASE("op table cases referenced by the CPU op run on the CPU and repeat themselves") {
  Context ctx;
  for (const test::OpCase& c : test::op_table())
    if (!c.reference) SUBCASE(c.name.c_str()) {
        test::check_op(c, ctx);
      }
}

}  // namespace
}  // namespace activeip
