// --precision fp32|bf16 where it is decided: parsing, which devices can run bf16 (a CPU
// without AVX512-BF16 is asked of precision_unsupported with the feature absent, so on any
// machine), the context refusing what its device cannot run, and the CLI's usage and runtime
// errors. The bf16 arithmetic itself is the bf16 suite's (test_bf16_ops.cpp).
#include <string>
#include <vector>

#include "engine/core/context.h"
#include "kernels/bf16.h"
#include "tests/cli_util.h"
#include "tests/test_util.h"

namespace activeip {
namespace {

using test::TempDir;

TEST_CASE("precision: fp32 and bf16 parse, anything else is named") {
  CHECK(parse_precision("fp32") == Precision::F32);
  CHECK(parse_precision("bf16") == Precision::BF16);
  CHECK(precision_name(Precision::BF16) == "bf16");
  CHECK(precision_name(Precision::F32) == "fp32");
  CHECK_THROWS_WITH_AS(parse_precision("fp16"), doctest::Contains("unknown precision 'fp16' (fp32 or bf16)"), Error);
}

TEST_CASE("precision: bf16 needs a CPU with AVX512-BF16 and is not built for CUDA, and fp32 runs anywhere") {
  CHECK(precision_unsupported(Device::cpu(), Precision::BF16, false) ==
        "--precision bf16 needs a CPU with AVX512-BF16 (this one has none)");
  CHECK(precision_unsupported(Device::cpu(), Precision::BF16, true).empty());
  CHECK(precision_unsupported(Device::cuda(0), Precision::BF16, true) == "--precision bf16 is not built for CUDA yet");
  CHECK(precision_unsupported(Device::cuda(1), Precision::F32, false).empty());
  CHECK(precision_unsupported(Device::cpu(), Precision::F32, false).empty());

  Context ctx;
  CHECK(ctx.precision() == Precision::F32);
  if (cpu_has_avx512_bf16()) {
    ctx.set_precision(Precision::BF16);
    CHECK(ctx.precision() == Precision::BF16);
  } else {
    CHECK_THROWS_WITH_AS(ctx.set_precision(Precision::BF16), doctest::Contains("needs a CPU with AVX512-BF16"), Error);
    CHECK(ctx.precision() == Precision::F32);
  }
  ctx.set_precision(Precision::F32);
  CHECK(ctx.precision() == Precision::F32);
}

TEST_CASE("precision: the CLI takes --precision fp32|bf16 with the device options") {
  const TempDir dir;
  for (const char* cmd : {"train", "eval", "enroll", "finetune", "distill"})
    CHECK(test::ok(dir, {cmd, "--help"}).out.find("--precision") != std::string::npos);
  CHECK(test::ok(dir, {"bench", "train", "--help"}).out.find("--precision") != std::string::npos);

  const std::vector<std::string> train = {
      "train",    "--net", "convnet", "--data", "synthetic", "--limit-train", "64",    "--limit-test", "32",
      "--epochs", "1",     "--batch", "32",     "--device",  "cpu",           "--out", "m.safetensors"};
  test::rejected(dir, test::with(train, {"--precision", "fp16"}), 2, {"--precision", "fp16"});
  if (cpu_has_avx512_bf16())
    test::ok(dir, test::with(train, {"--precision", "bf16"}));
  else
    test::rejected(dir, test::with(train, {"--precision", "bf16"}), 1,
                   {"--precision bf16 needs a CPU with AVX512-BF16 (this one has none)"});
}

}  // namespace
}  // namespace activeip
