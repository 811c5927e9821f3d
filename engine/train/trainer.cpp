// The training loop, evaluation, and the epoch checkpoints that make --resume exact.
#include "engine/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "engine/core/file_io.h"
#include "engine/core/random.h"
#include "engine/nn/ops.h"

namespace activeip {

namespace {

constexpr const char* kStateFormat = "activeip-train-state-v1";

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Host staging of one batch's indices, crops, flips and labels, copied to the device.
struct BatchPlan {
  Tensor index, crop, flip, labels;  // host
};

BatchPlan plan_batch(const Dataset& data, const int32_t* indices, int n, Rng* aug, int pad) {
  BatchPlan b{Tensor::host({n}, DType::I32), Tensor::host({2 * n}, DType::I32), Tensor::host({n}, DType::U8),
              Tensor::host({n}, DType::I32)};
  const int32_t* labels = data.labels.data<int32_t>();
  for (int i = 0; i < n; ++i) {
    b.index.data<int32_t>()[i] = indices[i];
    b.labels.data<int32_t>()[i] = labels[indices[i]];
    if (aug) {
      b.crop.data<int32_t>()[2 * i] = static_cast<int32_t>(aug->below(static_cast<uint64_t>(2 * pad + 1)));
      b.crop.data<int32_t>()[2 * i + 1] = static_cast<int32_t>(aug->below(static_cast<uint64_t>(2 * pad + 1)));
      b.flip.data<uint8_t>()[i] = static_cast<uint8_t>(aug->below(2));
    }
  }
  return b;
}

// Gathers, augments and normalises one batch into x (N×H×W×C on ctx's device).
void load_batch(Context& ctx, const Tensor& images, const Dataset& data, const BatchPlan& plan, bool augment,
                const Tensor& mean, const Tensor& std, Tensor& index, Tensor& crop, Tensor& flip, Tensor& labels,
                Tensor& x) {
  const int n = static_cast<int>(plan.index.numel());
  ensure_tensor(index, {n}, DType::I32, ctx).copy_from(plan.index, ctx);
  ensure_tensor(labels, {n}, DType::I32, ctx).copy_from(plan.labels, ctx);
  if (augment) {
    ensure_tensor(crop, {2 * n}, DType::I32, ctx).copy_from(plan.crop, ctx);
    ensure_tensor(flip, {n}, DType::U8, ctx).copy_from(plan.flip, ctx);
  }
  ensure_tensor(x, {n, data.H, data.W, data.C}, DType::F32, ctx);
  const AugmentShape s{n, data.H, data.W, data.C, 4};
  ops::augment(ctx, s,
               {.images = images,
                .index = index,
                .crop = augment ? &crop : nullptr,
                .flip = augment ? &flip : nullptr,
                .mean = mean,
                .std = std,
                .out = x});
}

Tensor host_floats(const std::vector<float>& v) {
  Tensor t = Tensor::host({static_cast<int64_t>(v.size())});
  std::memcpy(t.data<float>(), v.data(), v.size() * sizeof(float));
  return t;
}

void check_data_fits(const Network& net, const Dataset& d) {
  const NetInfo& i = net.info();
  ENSURE(d.H == i.H && d.W == i.W && d.C == i.C, "%s %s images are %dx%dx%d but %s was built for %dx%dx%d",
         d.name.c_str(), d.split.c_str(), d.H, d.W, d.C, i.name.c_str(), i.H, i.W, i.C);
  ENSURE(d.num_classes <= i.num_classes, "%s has %d classes but %s has only %d outputs", d.name.c_str(), d.num_classes,
         i.name.c_str(), i.num_classes);
}

}  // namespace

SgdParams TrainConfig::sgd() const {
  return {static_cast<float>(lr), static_cast<float>(momentum), static_cast<float>(wd), nesterov};
}

std::string TrainConfig::to_json() const {
  nlohmann::json j = {{"epochs", epochs},
                      {"batch", batch},
                      {"lr", lr},
                      {"momentum", momentum},
                      {"wd", wd},
                      {"nesterov", nesterov},
                      {"schedule", schedule},
                      {"warmup_epochs", warmup_epochs},
                      {"milestones", milestones},
                      {"gamma", gamma},
                      {"label_smoothing", label_smoothing},
                      {"seed", seed},
                      {"augment", augment}};
  if (!mixer.empty()) j["mixer"] = nlohmann::json::parse(mixer);
  if (sam_rho > 0) j["sam"] = {{"rho", sam_rho}, {"ascent", sam_ascent}};  // absent: older runs resume as before
  return j.dump();
}

void TrainConfig::validate() const {
  ENSURE(epochs >= 1, "--epochs must be at least 1, got %d", epochs);
  ENSURE(batch >= 2, "--batch must be at least 2 (batch norm needs two samples), got %d", batch);
  ENSURE(std::isfinite(lr) && lr > 0, "--lr must be positive, got %g", lr);
  ENSURE(momentum >= 0 && momentum < 1, "--momentum must be in [0, 1), got %g", momentum);
  ENSURE(std::isfinite(wd) && wd >= 0, "--wd must be non-negative, got %g", wd);
  ENSURE(!nesterov || momentum > 0, "--nesterov needs --momentum > 0");
  ENSURE(std::find(schedule_names().begin(), schedule_names().end(), schedule) != schedule_names().end(),
         "--schedule '%s' is unknown (known: constant, cosine, step, onecycle)", schedule.c_str());
  ENSURE(warmup_epochs >= 0 && warmup_epochs < epochs, "--warmup must be in [0, epochs), got %g", warmup_epochs);
  for (int m : milestones) ENSURE(m >= 1 && m < epochs, "--milestones: %d is not in [1, %d)", m, epochs);
  ENSURE(gamma > 0 && gamma <= 1, "--gamma must be in (0, 1], got %g", gamma);
  ENSURE(label_smoothing >= 0 && label_smoothing < 1, "--label-smoothing must be in [0, 1), got %g",
         static_cast<double>(label_smoothing));
  ENSURE(std::isfinite(sam_rho) && sam_rho >= 0, "--sam must be non-negative, got %g", sam_rho);
  ENSURE(sam_ascent == "batch" || sam_ascent == "extra", "--sam-ascent '%s' is unknown (known: batch, extra)",
         sam_ascent.c_str());
  ENSURE(eval_batch >= 1, "evaluation batch must be at least 1, got %d", eval_batch);
}

std::string EpochRecord::to_json() const {
  nlohmann::json j = {{"epoch", epoch},
                      {"lr", lr},
                      {"train_loss", train_loss},
                      {"train_accuracy", train_accuracy},
                      {"test_loss", test_loss},
                      {"test_accuracy", test_accuracy},
                      {"seconds", seconds},
                      {"images", images},
                      {"images_per_s", images_per_s}};
  return j.dump();
}

std::string train_state_path(const std::string& model_path) {
  const std::string ext = ".safetensors";
  if (model_path.size() > ext.size() && model_path.compare(model_path.size() - ext.size(), ext.size(), ext) == 0)
    return model_path.substr(0, model_path.size() - ext.size()) + ".optim.safetensors";
  return model_path + ".optim.safetensors";
}

EvalResult evaluate(Network& net, Context& ctx, const Dataset& data, const Normalization& norm, int batch) {
  check_data_fits(net, data);
  ENSURE(batch >= 1, "evaluation batch must be at least 1, got %d", batch);
  net.set_training(false);
  const Tensor images = data.images.to(ctx.device(), ctx);
  const Tensor mean = host_floats(norm.mean).to(ctx.device(), ctx), std = host_floats(norm.std).to(ctx.device(), ctx);
  SoftmaxCrossEntropy loss;
  Tensor index, crop, flip, labels, x;
  EvalResult r;
  const int64_t n = data.size();
  std::vector<int32_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < n; begin += batch) {
    const int b = static_cast<int>(std::min<int64_t>(batch, n - begin));
    const BatchPlan plan = plan_batch(data, order.data() + begin, b, nullptr, 0);
    load_batch(ctx, images, data, plan, false, mean, std, index, crop, flip, labels, x);
    const LossResult lr = loss.forward(ctx, net.forward(ctx, x), labels);
    loss_sum += lr.loss * b;
    correct += lr.correct;
  }
  r.n = n;
  r.loss = n ? loss_sum / static_cast<double>(n) : 0;
  r.accuracy = n ? static_cast<double>(correct) / static_cast<double>(n) : 0;
  return r;
}

Tensor predict(Network& net, Context& ctx, const Dataset& data, const Normalization& norm,
               const std::vector<int32_t>& indices, int batch, const BatchAlter& alter) {
  check_data_fits(net, data);
  ENSURE(batch >= 1, "prediction batch must be at least 1, got %d", batch);
  const int classes = net.info().num_classes;
  const int64_t n = static_cast<int64_t>(indices.size());
  for (int32_t i : indices)
    ENSURE(i >= 0 && i < data.size(), "record %d is out of range: the %s %s split has %lld", i, data.name.c_str(),
           data.split.c_str(), static_cast<long long>(data.size()));
  net.set_training(false);
  const Tensor images = data.images.to(ctx.device(), ctx);
  const Tensor mean = host_floats(norm.mean).to(ctx.device(), ctx), std = host_floats(norm.std).to(ctx.device(), ctx);
  Tensor index, crop, flip, labels, x;
  Tensor logits = Tensor::host({n, classes});
  for (int64_t begin = 0; begin < n; begin += batch) {
    const int b = static_cast<int>(std::min<int64_t>(batch, n - begin));
    const BatchPlan plan = plan_batch(data, indices.data() + begin, b, nullptr, 0);
    load_batch(ctx, images, data, plan, false, mean, std, index, crop, flip, labels, x);
    if (alter) alter(ctx, x, begin);
    logits.slice(begin, begin + b).copy_from(net.forward(ctx, x), ctx);
  }
  ctx.synchronize();
  return logits;
}

Trainer::Trainer(Network& net, Context& ctx, const DataSplits& data, TrainConfig config, BatchMixer* mixer)
    : net_(net),
      ctx_(ctx),
      data_(data),
      config_(std::move(config)),
      mixer_(mixer),
      sgd_(net, ctx, config_.sgd()),
      loss_(config_.label_smoothing) {
  config_.validate();
  ENSURE(config_.sam_rho == 0 || config_.sam_ascent != "extra" || (mixer && mixer->extra(config_.batch) > 0),
         "--sam-ascent extra needs extra samples in the batch (protected training)");
  check_data_fits(net, data.train);
  check_data_fits(net, data.test);
  const int64_t n = data.train.size();
  ENSURE(n >= 2, "the %s training split has %lld records; training needs at least 2", data.train.name.c_str(),
         static_cast<long long>(n));
  // drop_last: every step sees a full batch (a smaller final batch would give a noisier
  // BN estimate); with fewer records than --batch, one batch of all of them.
  steps_per_epoch_ = std::max<int64_t>(1, n / config_.batch);
  schedule_.kind = config_.schedule;
  schedule_.lr = config_.lr;
  schedule_.total_steps = steps_per_epoch_ * config_.epochs;
  schedule_.warmup_steps = std::llround(config_.warmup_epochs * static_cast<double>(steps_per_epoch_));
  std::vector<int> milestones = config_.milestones;
  if (milestones.empty()) milestones = {std::max(1, config_.epochs / 2), std::max(1, config_.epochs * 3 / 4)};
  for (int m : milestones) schedule_.milestones.push_back(m * steps_per_epoch_);
  schedule_.gamma = config_.gamma;
  images_ = data.train.images.to(ctx.device(), ctx);
  if (config_.sam_rho > 0) {  // SAM's scratch, sized by the net once
    const Shape p{net.num_parameters()};
    sam_w_host_ = Tensor::host(p);
    sam_g_host_ = Tensor::host(p);
    sam_e_host_ = Tensor::host(p);
    sam_e_ = Tensor::empty(p, DType::F32, ctx);
    sam_params_ = Tensor::empty(p, DType::F32, ctx);
    if (config_.sam_ascent == "extra") sam_grads_ = Tensor::empty(p, DType::F32, ctx);
    if (net.buffers().defined() && net.buffers().numel() > 0)
      sam_buffers_ = Tensor::empty(net.buffers().shape(), DType::F32, ctx);
  }
  mean_ = host_floats(data.norm.mean).to(ctx.device(), ctx);
  std_ = host_floats(data.norm.std).to(ctx.device(), ctx);
}

EpochRecord Trainer::train_epoch(const std::function<void(const StepInfo&)>& on_step) {
  ENSURE(!done(), "training already completed its %d epochs", config_.epochs);
  const auto t0 = Clock::now();
  const Dataset& train = data_.train;
  const int64_t n = train.size();
  const int b = static_cast<int>(std::min<int64_t>(config_.batch, n));
  const std::vector<int32_t> order =
      Rng(mix_seed(config_.seed, static_cast<uint64_t>(epoch_), 1)).permutation(static_cast<int32_t>(n));
  Rng aug(mix_seed(config_.seed, static_cast<uint64_t>(epoch_), 2));
  net_.set_training(true);

  EpochRecord rec;
  rec.epoch = epoch_ + 1;
  double loss_sum = 0;
  int64_t correct = 0, seen = 0;
  const int extra = mixer_ ? mixer_->extra(b) : 0;
  Rng extra_draw(mix_seed(config_.seed, static_cast<uint64_t>(epoch_), 3));
  std::vector<int32_t> batch_indices(static_cast<size_t>(b + extra));
  for (int64_t step = 0; step < steps_per_epoch_; ++step) {
    const int64_t global = epoch_ * steps_per_epoch_ + step;
    std::copy_n(order.data() + step * b, b, batch_indices.begin());
    const LossResult r = train_step(global, batch_indices, b, config_.augment ? &aug : nullptr, extra_draw);
    const double lr = learning_rate(schedule_, global);
    rec.lr = lr;

    loss_sum += r.loss * (b + extra);
    correct += r.correct;
    seen += b + extra;
    if (on_step) {
      const double elapsed = seconds_since(t0);
      StepInfo info{rec.epoch,
                    config_.epochs,
                    step + 1,
                    steps_per_epoch_,
                    loss_sum / static_cast<double>(seen),
                    static_cast<double>(correct) / static_cast<double>(seen),
                    lr,
                    0,
                    0};
      info.images_per_s = static_cast<double>(seen) / std::max(elapsed, 1e-9);
      const int64_t left =
          (static_cast<int64_t>(config_.epochs) - rec.epoch) * steps_per_epoch_ + (steps_per_epoch_ - step - 1);
      info.eta_s = static_cast<double>(left * (b + extra)) / std::max(info.images_per_s, 1e-9);
      on_step(info);
    }
  }
  ctx_.synchronize();
  rec.images = seen;
  rec.train_loss = loss_sum / static_cast<double>(seen);
  rec.train_accuracy = static_cast<double>(correct) / static_cast<double>(seen);
  rec.images_per_s = static_cast<double>(seen) / std::max(seconds_since(t0), 1e-9);
  const EvalResult test = evaluate(net_, ctx_, data_.test, data_.norm, config_.eval_batch);
  rec.test_loss = test.loss;
  rec.test_accuracy = test.accuracy;
  rec.seconds = seconds_since(t0);
  ++epoch_;
  return rec;
}

LossResult Trainer::train_step(int64_t global, std::vector<int32_t>& batch, int b, Rng* aug, Rng& extra_draw) {
  const Dataset& train = data_.train;
  const int extra = static_cast<int>(batch.size()) - b;
  for (int i = 0; i < extra; ++i)
    batch[static_cast<size_t>(b + i)] = static_cast<int32_t>(extra_draw.below(static_cast<uint64_t>(train.size())));
  BatchPlan plan = plan_batch(train, batch.data(), b + extra, aug, 4);
  if (extra > 0) mixer_->relabel(static_cast<uint64_t>(global), b, plan.labels.data<int32_t>() + b);
  load_batch(ctx_, images_, train, plan, aug != nullptr, mean_, std_, index_, crop_, flip_, labels_, x_);
  if (extra > 0) mixer_->alter(ctx_, x_, b, extra);

  if (targets_) targets_->targets(ctx_, x_, soft_targets_);

  net_.begin_step(static_cast<uint64_t>(global));
  net_.zero_grad(ctx_);
  const Tensor logits = net_.forward(ctx_, x_);
  const LossResult r =
      targets_ ? soft_loss_.forward(ctx_, logits, soft_targets_) : loss_.forward(ctx_, logits, labels_);
  ENSURE(std::isfinite(r.loss), "training diverged: loss is %g at epoch %lld step %lld (try a lower --lr)", r.loss,
         static_cast<long long>(global / steps_per_epoch_ + 1), static_cast<long long>(global % steps_per_epoch_ + 1));
  if (config_.sam_rho > 0)
    sam_pass(loss_backward(), b);
  else
    net_.backward(ctx_, loss_backward());
  sgd_.step(ctx_, static_cast<float>(learning_rate(schedule_, global)));
  return r;
}

void sam_perturbation(const Network& net, const Tensor& w, const Tensor& g, double rho, Tensor& e) {
  const int64_t n = net.num_parameters();
  ENSURE(!w.device().is_cuda() && !g.device().is_cuda() && !e.device().is_cuda() && w.numel() == n &&
             g.numel() == n && e.numel() == n,
         "sam_perturbation: w, g and e must be host tensors of %lld floats", static_cast<long long>(n));
  const float* pw = w.data<float>();
  const float* pg = g.data<float>();
  float* pe = e.data<float>();
  std::fill(pe, pe + n, 0.0f);
  for (const NamedSlot& s : net.slots()) {
    if (s.slot.kind != SlotKind::Parameter) continue;
    const int64_t end = s.offset + shape_numel(s.slot.shape);
    double ww = 0, gg = 0;
    for (int64_t i = s.offset; i < end; ++i) {
      ww += static_cast<double>(pw[i]) * pw[i];
      gg += static_cast<double>(pg[i]) * pg[i];
    }
    if (ww == 0 || gg == 0) continue;
    const double k = rho * std::sqrt(ww / gg);
    for (int64_t i = s.offset; i < end; ++i) pe[i] = static_cast<float>(k * pg[i]);
  }
}

Tensor Trainer::loss_backward() { return targets_ ? soft_loss_.backward(ctx_) : loss_.backward(ctx_); }

void Trainer::sam_pass(const Tensor& dlogits, int b) {
  const bool extra_only = config_.sam_ascent == "extra";
  const int64_t rows = dlogits.dim(0);
  // Rows [begin, end) of a loss gradient, the others zero: [0, b) the batch, [b, rows) the extras.
  auto rows_of = [&](const Tensor& d, int64_t begin, int64_t end) -> const Tensor& {
    ensure_tensor(sam_dlogits_, d.shape(), DType::F32, ctx_).copy_from(d, ctx_);
    if (begin > 0) {
      Tensor head = sam_dlogits_.slice(0, begin);
      ops::fill(ctx_, 0.0f, head);
    }
    if (end < rows) {
      Tensor tail = sam_dlogits_.slice(end, rows);
      ops::fill(ctx_, 0.0f, tail);
    }
    return sam_dlogits_;
  };

  // The ascent: the gradient at w of the whole batch, or of the extras only.
  net_.backward(ctx_, extra_only ? rows_of(dlogits, b, rows) : dlogits);
  sam_w_host_.copy_from(net_.params(), ctx_);
  sam_g_host_.copy_from(net_.grads(), ctx_);
  sam_perturbation(net_, sam_w_host_, sam_g_host_, config_.sam_rho, sam_e_host_);
  if (sam_mask_host_.defined()) {  // pruned weights stay at zero in the second pass too
    float* e = sam_e_host_.data<float>();
    const float* m = sam_mask_host_.data<float>();
    for (int64_t i = 0; i < sam_e_host_.numel(); ++i) e[i] *= m[i];
  }
  sam_e_.copy_from(sam_e_host_, ctx_);
  if (extra_only) {  // the batch's own gradient is taken at w, from the same forward pass
    net_.zero_grad(ctx_);
    net_.backward(ctx_, rows_of(dlogits, 0, b));
    sam_grads_.copy_from(net_.grads(), ctx_);
  }

  // The second pass at w + e; then back to w and to the running statistics of the first pass.
  sam_params_.copy_from(net_.params(), ctx_);
  if (sam_buffers_.defined()) sam_buffers_.copy_from(net_.buffers(), ctx_);
  sam_counters_.clear();
  for (const NamedCounter& c : net_.counters()) sam_counters_.push_back(*c.value);

  ops::axpy(ctx_, 1.0f, sam_e_, net_.params());
  net_.zero_grad(ctx_);
  const Tensor logits = net_.forward(ctx_, x_);
  if (targets_)
    soft_loss_.forward(ctx_, logits, soft_targets_);
  else
    loss_.forward(ctx_, logits, labels_);
  const Tensor moved = loss_backward();
  net_.backward(ctx_, extra_only ? rows_of(moved, b, rows) : moved);
  if (extra_only) ops::axpy(ctx_, 1.0f, sam_grads_, net_.grads());

  net_.params().copy_from(sam_params_, ctx_);
  if (sam_buffers_.defined()) net_.buffers().copy_from(sam_buffers_, ctx_);
  for (size_t i = 0; i < sam_counters_.size(); ++i) *net_.counters()[i].value = sam_counters_[i];
}

void Trainer::set_mask(const Tensor& mask) {
  sgd_.set_mask(ctx_, mask);
  // SAM leaves the pruned weights where they are; a host copy of the mask serves every step.
  sam_mask_host_ = config_.sam_rho > 0 && sgd_.mask() ? sgd_.mask()->to(Device::cpu(), ctx_) : Tensor();
}

void Trainer::set_targets(TargetProvider* provider) {
  targets_ = provider;
  if (provider) soft_loss_ = SoftTargetCrossEntropy(provider->temperature());
}

std::vector<double> Trainer::time_steps(int64_t steps) {
  ENSURE(steps >= 0, "time_steps: the number of steps must be non-negative, got %lld", static_cast<long long>(steps));
  const int64_t n = data_.train.size();
  const int b = static_cast<int>(std::min<int64_t>(config_.batch, n));
  const int extra = mixer_ ? mixer_->extra(b) : 0;
  net_.set_training(true);
  std::vector<double> seconds;
  std::vector<int32_t> order, batch_indices(static_cast<size_t>(b + extra));
  std::unique_ptr<Rng> aug, extra_draw;
  int64_t epoch = -1;
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t e = epoch_ + s / steps_per_epoch_, step = s % steps_per_epoch_;
    if (e != epoch) {  // the same seeds as train_epoch's epoch e
      epoch = e;
      order = Rng(mix_seed(config_.seed, static_cast<uint64_t>(e), 1)).permutation(static_cast<int32_t>(n));
      aug = std::make_unique<Rng>(mix_seed(config_.seed, static_cast<uint64_t>(e), 2));
      extra_draw = std::make_unique<Rng>(mix_seed(config_.seed, static_cast<uint64_t>(e), 3));
    }
    std::copy_n(order.data() + step * b, b, batch_indices.begin());
    const auto t0 = Clock::now();
    train_step(e * steps_per_epoch_ + step, batch_indices, b, config_.augment ? aug.get() : nullptr, *extra_draw);
    ctx_.synchronize();
    seconds.push_back(seconds_since(t0));
  }
  return seconds;
}

void Trainer::save(const std::string& model_path, ModelMeta meta) {
  meta.epoch = epoch_;
  meta.config = config_.to_json();
  SafetensorsWriter state;
  const Tensor momentum = sgd_.momentum().to(Device::cpu(), ctx_);
  state.add("momentum", "F32", momentum.shape(), momentum.raw(), momentum.bytes());
  // The mask and the trainable flags, when set: resume() compares them with the new run's.
  const Tensor mask = sgd_.mask() ? sgd_.mask()->to(Device::cpu(), ctx_) : Tensor();
  const Tensor trainable = sgd_.trainable() ? sgd_.trainable()->to(Device::cpu(), ctx_) : Tensor();
  if (sgd_.mask()) state.add("mask", "F32", mask.shape(), mask.raw(), mask.bytes());
  if (sgd_.trainable()) state.add("trainable", "F32", trainable.shape(), trainable.raw(), trainable.bytes());
  state.set_metadata({{"format", kStateFormat},
                      {"epoch", std::to_string(epoch_)},
                      {"net", net_.info().name},
                      {"train_size", std::to_string(data_.train.size())},
                      {"config", meta.config}});
  state.write(train_state_path(model_path));
  save_model(model_path, net_, ctx_, meta);
}

void Trainer::resume(const std::string& model_path) {
  const std::string state_path = train_state_path(model_path);
  ENSURE(file_exists(model_path), "--resume: %s does not exist (nothing to resume)", model_path.c_str());
  ENSURE(file_exists(state_path), "--resume: %s has no training state beside it (%s is missing)", model_path.c_str(),
         state_path.c_str());
  const SafetensorsReader model(model_path);
  const SafetensorsReader state(state_path);
  const ModelMeta meta = ModelMeta::from_metadata(model.metadata(), model_path);
  const auto& sm = state.metadata();
  auto field = [&](const char* key) {
    const auto it = sm.find(key);
    ENSURE(it != sm.end(), "%s: no '%s' in the training state", state_path.c_str(), key);
    return it->second;
  };
  ENSURE(field("format") == kStateFormat, "%s: not an activeip training state", state_path.c_str());
  ENSURE(meta.net == net_.info().name, "--resume: %s holds a %s, not a %s", model_path.c_str(), meta.net.c_str(),
         net_.info().name.c_str());
  ENSURE(field("epoch") == std::to_string(meta.epoch), "--resume: %s is at epoch %lld but %s at epoch %s",
         model_path.c_str(), static_cast<long long>(meta.epoch), state_path.c_str(), field("epoch").c_str());
  ENSURE(field("train_size") == std::to_string(data_.train.size()),
         "--resume: the checkpoint was trained on %s records, this run has %lld (different --limit-train or data?)",
         field("train_size").c_str(), static_cast<long long>(data_.train.size()));
  const auto saved = nlohmann::json::parse(field("config"), nullptr, false);
  const auto now = nlohmann::json::parse(config_.to_json());
  ENSURE(saved.is_object(), "%s: malformed training config", state_path.c_str());
  for (const auto& [key, value] : now.items())
    ENSURE(saved.contains(key) && saved[key] == value, "--resume: option %s was %s in the checkpoint, now %s",
           key.c_str(), saved.contains(key) ? saved[key].dump().c_str() : "unset", value.dump().c_str());
  for (const auto& [key, value] : saved.items())
    ENSURE(now.contains(key), "--resume: option %s was %s in the checkpoint, now unset", key.c_str(),
           value.dump().c_str());
  const SafetensorsView& m = state.get("momentum");
  ENSURE(m.dtype == "F32" && m.shape == Shape({net_.num_parameters()}), "%s: momentum has %s %s, expected F32 [%lld]",
         state_path.c_str(), m.dtype.c_str(), shape_str(m.shape).c_str(),
         static_cast<long long>(net_.num_parameters()));
  for (const auto& [name, flags] : {std::pair{"mask", sgd_.mask()}, std::pair{"trainable", sgd_.trainable()}}) {
    ENSURE(state.contains(name) == (flags != nullptr), "--resume: the checkpoint was trained %s %s, this run %s",
           state.contains(name) ? "with" : "without", std::string(name) == "mask" ? "a pruning mask" : "frozen layers",
           flags ? "has them" : "has none");
    if (!flags) continue;
    const SafetensorsView& v = state.get(name);
    const Tensor now = flags->to(Device::cpu(), ctx_);
    ctx_.synchronize();
    ENSURE(v.dtype == "F32" && v.bytes == now.bytes() && std::memcmp(v.data, now.raw(), v.bytes) == 0,
           "--resume: the %s of the checkpoint differs from this run's", name);
  }
  load_weights(model, net_, ctx_);
  Tensor momentum = Tensor::host({net_.num_parameters()});
  std::memcpy(momentum.raw(), m.data, m.bytes);
  sgd_.momentum().copy_from(momentum, ctx_);
  epoch_ = static_cast<int>(meta.epoch);
}

}  // namespace activeip
