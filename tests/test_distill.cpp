// Distillation on the CPU through the Trainer's target provider: a student learns a trained
// teacher from its soft labels alone (scrambling the training labels changes nothing, bit
// for bit), the teacher's weights and batch-norm statistics are untouched, and a student
// that does not take the teacher's inputs or outputs is refused.
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "attacks/distill.h"
#include "engine/train/trainer.h"
#include "nets/nets.h"
#include "tests/test_util.h"
#include "tests/train_test_util.h"

using namespace activeip;

using test::host_floats;
using test::small_config;

namespace {

// Distils `teacher` into a fresh convnet (seed 9) for `epochs` on `data`; returns the
// student's parameters and the last epoch.
std::vector<float> distil(Network& teacher, Context& ctx, const DataSplits& data, int epochs, EpochRecord* last) {
  auto student = make_net("convnet", {32, 32, 3, 10});
  student->build(ctx, 9);
  TeacherTargets soft(teacher, 4.0f);
  TrainConfig config = small_config(epochs);
  config.seed = 9;
  Trainer trainer(*student, ctx, data, config);
  trainer.set_targets(&soft);
  while (!trainer.done()) *last = trainer.train_epoch({});
  return host_floats(student->params(), ctx);
}

}  // namespace

TEST_CASE("distill: a student learns the teacher from soft labels alone") {
  Context ctx;
  const DataSplits data = load_data({"synthetic", "", 384, 128});
  auto teacher = make_net("convnet", {32, 32, 3, 10});
  teacher->build(ctx, 4);
  {
    Trainer t(*teacher, ctx, data, small_config(3));
    EpochRecord last;
    while (!t.done()) last = t.train_epoch({});
    REQUIRE(last.test_accuracy > 0.8);
  }
  const std::vector<float> params = host_floats(teacher->params(), ctx);
  const std::vector<float> buffers = host_floats(teacher->buffers(), ctx);

  EpochRecord first, last;
  distil(*teacher, ctx, data, 1, &first);
  const std::vector<float> student = distil(*teacher, ctx, data, 3, &last);
  CHECK(last.train_loss < first.train_loss);
  CHECK(last.train_accuracy > 0.5);  // agreement with the teacher's top-1
  CHECK(last.test_accuracy > 0.5);   // on the true test labels, never seen in training

  // The teacher is evaluated, never trained: weights and running statistics unchanged.
  CHECK(host_floats(teacher->params(), ctx) == params);
  CHECK(host_floats(teacher->buffers(), ctx) == buffers);

  // The labels are not used: scrambled, the student comes out bit for bit the same.
  DataSplits scrambled{data.train, data.test, data.norm, data.class_names};
  scrambled.train.labels = Tensor::host({data.train.size()}, DType::I32);
  for (int64_t i = 0; i < data.train.size(); ++i)
    scrambled.train.labels.data<int32_t>()[i] = static_cast<int32_t>((data.train.labels.data<int32_t>()[i] + 3) % 10);
  EpochRecord other;
  CHECK(distil(*teacher, ctx, scrambled, 3, &other) == student);
  CHECK(other.train_loss == last.train_loss);
}

TEST_CASE("distill: the student must take the teacher's inputs and outputs") {
  auto teacher = make_net("convnet", {32, 32, 3, 10});
  auto wide = make_net("convnet", {32, 32, 3, 100});
  auto gray = make_net("convnet", {28, 28, 1, 10});
  CHECK_NOTHROW(check_distillable(teacher->info(), teacher->info()));
  CHECK_THROWS_WITH_AS(check_distillable(teacher->info(), wide->info()), doctest::Contains("100 classes"), Error);
  CHECK_THROWS_WITH_AS(check_distillable(teacher->info(), gray->info()), doctest::Contains("28x28x1"), Error);
  CHECK_THROWS_WITH_AS(TeacherTargets(*teacher, 0.0f), doctest::Contains("--temperature"), Error);
}
