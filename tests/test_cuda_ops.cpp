// GPU suite: the op table (tests/op_table.h) on the CUDA kernels and on the cuDNN / cuBLAS
// comparators, through the op boundary, against the float64 reference or, where a case has
// none, the CPU op (fp32 tolerance: no TF32 anywhere, cuDNN runs FMA math); the comparators
// are also checked against our kernels.
// Outputs are NaN-poisoned; accumulating passes start from random values and run twice.
#ifdef ACTIVEIP_CUDA

#include <doctest/doctest.h>

#include <string>

#include "tests/op_table.h"

namespace activeip {
namespace {

bool op_is_conv(const char* family) {
  return std::string(family) == "conv2d";
}

void run_family(const char* family, bool vendor) {
  Context ours(Device::cuda());
  Context theirs(Device::cuda());
  if (vendor) theirs.use(op_is_conv(family) ? ConvImpl::Cudnn : ConvImpl::Custom, GemmImpl::Cublas);
  int n = 0;
  for (const test::OpCase& c : test::op_table())
    if (test::op_is(c, family)) {
      SUBCASE(c.name.c_str()) {
        const test::Outputs mine = test::check_op(c, ours);
        if (vendor) {
          const test::Outputs other = test::check_op(c, theirs);
          for (size_t i = 0; i < mine.size(); ++i) {
            CAPTURE(c.outputs[i]);
            test::expect_close(other[i], mine[i], c.tol.of(test::Precision::FP32));
          }
        }
      }
      ++n;
    }
  CHECK(n > 0);
}

TEST_CASE("ops on CUDA match the float64 reference: conv2d fprop, dgrad, wgrad") {
  run_family("conv2d", false);
}
#ifdef ACTIVEIP_CUDNN
TEST_CASE("ops on cuDNN match the float64 reference and our CUDA kernels: conv2d fprop, dgrad, wgrad") {
  run_family("conv2d", true);
}
#endif
TEST_CASE("ops on CUDA and cuBLAS match the float64 reference and each other: linear") {
  run_family("linear", true);
}
TEST_CASE("ops on CUDA match the float64 reference: batchnorm") {
  run_family("batchnorm", false);
}
TEST_CASE("ops on CUDA match the float64 reference and the CPU: max pooling") {
  run_family("maxpool2d", false);
}
TEST_CASE("ops on CUDA match the float64 reference: global average pooling") {
  run_family("global_avgpool", false);
}
TEST_CASE("ops on CUDA match the CPU: softmax cross-entropy") {
  run_family("softmax_xent", false);
}
TEST_CASE("ops on CUDA match the CPU: the distillation loss and the softmax at a temperature") {
  run_family("soft_xent", false);
}
TEST_CASE("ops on CUDA match the float64 reference: loss and top-1 accumulation, bit for bit") {
  run_family("loss_accumulate", false);
}
TEST_CASE("ops on CUDA match the float64 reference: the logit spread's gradient") {
  run_family("logit_spread", false);
}
TEST_CASE("ops on CUDA match the float64 reference: SAM's ascent") {
  run_family("sam_ascent", false);
}
TEST_CASE("ops on CUDA match the CPU: relu, aligned and not") {
  run_family("relu", false);
}
TEST_CASE("ops on CUDA match the CPU: add, also in place, aligned and not") {
  run_family("add", false);
}
TEST_CASE("ops on CUDA match the CPU: axpy and fill, aligned and not") {
  run_family("axpy", false);
}
TEST_CASE("ops on CUDA match the CPU bit for bit: dropout") {
  run_family("dropout", false);
}
TEST_CASE("ops on CUDA match the CPU bit for bit: the option-A shortcut") {
  run_family("pad_shortcut", false);
}

}  // namespace
}  // namespace activeip

#endif  // ACTIVEIP_CUDA
