// The attacker's input transforms (see attacks/transform.h): the pipeline between a normalised
// batch and the model.
#include "attacks/transform.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <exception>

#include "base/error.h"

namespace activeip {

namespace {

uint8_t to_u8(double v) {
  return static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
}

}  // namespace

InputPipeline::InputPipeline(std::vector<Transform> transforms, Normalization norm, uint64_t seed, int H, int W, int C)
    : transforms_(std::move(transforms)), norm_(std::move(norm)), seed_(seed), H_(H), W_(W), C_(C) {
  ENSURE(!transforms_.empty(), "no transform given: the attack needs at least one");
  ENSURE(static_cast<int>(norm_.mean.size()) == C && static_cast<int>(norm_.std.size()) == C,
         "normalisation of %zu/%zu channels for images of %d", norm_.mean.size(), norm_.std.size(), C);
  for (const Transform& t : transforms_) check_transform_fits(t, H, W, C);
}

std::vector<std::string> InputPipeline::specs() const {
  std::vector<std::string> s;
  for (const Transform& t : transforms_) s.push_back(t.spec);
  return s;
}

void InputPipeline::apply_u8(uint8_t* images, int64_t count, int64_t first) const {
  const size_t image = static_cast<size_t>(H_) * W_ * C_;
  // Images are independent and each draws from its own streams: any split over threads gives
  // the same result. An error (a codec failure) must not leave the parallel region: the first
  // is kept and thrown after it.
  std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t i = 0; i < count; ++i) {
    try {
      for (size_t k = 0; k < transforms_.size(); ++k) {
        Rng rng(mix_seed(seed_, static_cast<uint64_t>(first + i), k));
        apply_transform(transforms_[k], images + static_cast<size_t>(i) * image, H_, W_, C_, rng);
      }
    } catch (...) {
#pragma omp critical(activeip_transform_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

void InputPipeline::apply(Context& ctx, Tensor& x) {
  ENSURE(x.rank() == 4 && x.dim(1) == H_ && x.dim(2) == W_ && x.dim(3) == C_ && x.dtype() == DType::F32,
         "the transforms take batches of %dx%dx%d f32 images", H_, W_, C_);
  // Evaluation only: a device batch makes a round trip through the host.
  Tensor host = x.to(Device::cpu(), ctx);
  ctx.synchronize();
  const int64_t count = x.dim(0);
  const size_t n = static_cast<size_t>(x.numel());
  pixels_.resize(n);
  float* v = host.data<float>();
  for (size_t i = 0; i < n; ++i) {
    const size_t c = i % static_cast<size_t>(C_);
    pixels_[i] = to_u8((static_cast<double>(v[i]) * norm_.std[c] + norm_.mean[c]) * 255.0);
  }
  apply_u8(pixels_.data(), count, seen_);
  seen_ += count;
  for (size_t i = 0; i < n; ++i) {
    const size_t c = i % static_cast<size_t>(C_);
    v[i] = (static_cast<float>(pixels_[i]) / 255.0f - norm_.mean[c]) / norm_.std[c];  // as the loader normalises
  }
  if (x.device() != host.device()) {
    x.copy_from(host, ctx);
    ctx.synchronize();  // `host` is freed on return
  }
}

BatchAlter InputPipeline::alter() {
  return [this](Context& ctx, Tensor& x, int64_t) { apply(ctx, x); };
}

}  // namespace activeip
