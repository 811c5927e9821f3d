// Knowledge distillation (Hinton et al. 2015) on the engine's side: a teacher network's
// soft labels as a Trainer's targets — softmax at temperature T of the teacher's eval-mode
// logits on the very batch the student sees (augmented, on the device). The student learns
// from them alone (SoftTargetCrossEntropy: T²·KL(q ‖ softmax(z/T))); labels go unused.
#pragma once

#include "engine/nn/network.h"
#include "engine/train/trainer.h"

namespace activeip {

class TeacherTargets : public TargetProvider {
 public:
  // teacher must outlive this; Error unless temperature > 0.
  TeacherTargets(Network& teacher, float temperature);
  float temperature() const override { return temperature_; }
  void targets(Context& ctx, const Tensor& x, Tensor& q) override;

 private:
  Network& teacher_;
  float temperature_;
};

// Error naming both nets unless the student takes the teacher's inputs and has as many
// outputs (the soft labels are per class).
void check_distillable(const NetInfo& teacher, const NetInfo& student);

}  // namespace activeip
