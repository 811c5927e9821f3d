// The teacher's soft labels for distillation.
#include "attacks/distill.h"

#include <cmath>

#include "engine/nn/loss.h"

namespace activeip {

TeacherTargets::TeacherTargets(Network& teacher, float temperature) : teacher_(teacher), temperature_(temperature) {
  ENSURE(std::isfinite(temperature) && temperature > 0, "--temperature must be positive, got %g",
         static_cast<double>(temperature));
}

void TeacherTargets::targets(Context& ctx, const Tensor& x, Tensor& q) {
  // Eval mode every time: batch norm from the running statistics, no dropout, and the
  // teacher's statistics never move.
  teacher_.set_training(false);
  softmax_temperature(ctx, temperature_, teacher_.forward(ctx, x), q);
}

void check_distillable(const NetInfo& teacher, const NetInfo& student) {
  ENSURE(teacher.H == student.H && teacher.W == student.W && teacher.C == student.C &&
             teacher.num_classes == student.num_classes,
         "the student %s takes %dx%dx%d images into %d classes, the teacher %s %dx%dx%d into %d", student.name.c_str(),
         student.H, student.W, student.C, student.num_classes, teacher.name.c_str(), teacher.H, teacher.W, teacher.C,
         teacher.num_classes);
}

}  // namespace activeip
