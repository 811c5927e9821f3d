// The training loop, evaluation, and the epoch checkpoints that make --resume exact.
#include "engine/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "engine/core/file_io.h"
#include "engine/core/profile.h"
#include "engine/core/random.h"
#include "engine/nn/ops.h"

namespace activeip {

namespace {

constexpr const char* kStateFormat = "activeip-train-state-v1";

// Options in the recorded config that change no result: --resume does not compare them, and a
// checkpoint written before one existed resumes.
bool changes_no_result(const std::string& key) {
  return key == "log_every";
}

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
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
                      {"augment", augment},
                      {"log_every", log_every}};
  if (!mixer.empty()) j["mixer"] = nlohmann::json::parse(mixer);
  // Absent: older runs resume as before. "norms": the batch norms stay put (a checkpoint whose
  // SAM moved them is refused by --resume).
  if (sam_rho > 0) j["sam"] = {{"rho", sam_rho}, {"ascent", sam_ascent}, {"norms", "fixed"}};
  if (clean_bn) j["clean_bn"] = true;                                          // likewise
  if (ranks > 1) j["distributed"] = {{"ranks", ranks}, {"sync_bn", sync_bn}};  // likewise
  if (attack_every > 0)                                                        // likewise
    j["simulated_attack"] = {{"every", attack_every},
                             {"steps", attack_steps},
                             {"weight", attack_weight},
                             {"lr", {kSimulatedAttackLr[0], kSimulatedAttackLr[1]}},
                             {"prune_share", kSimulatedAttackPruneShare},
                             {"filters", {kSimulatedAttackFilters[0], kSimulatedAttackFilters[1]}}};
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
  ENSURE(attack_every >= 0, "--simulate-attack must be non-negative, got %d", attack_every);
  ENSURE(attack_steps >= 1, "--simulate-steps must be at least 1, got %d", attack_steps);
  ENSURE(std::isfinite(attack_weight) && attack_weight > 0, "--simulate-weight must be positive, got %g",
         attack_weight);
  ENSURE(sam_ascent == "batch" || sam_ascent == "extra", "--sam-ascent '%s' is unknown (known: batch, extra)",
         sam_ascent.c_str());
  ENSURE(eval_batch >= 1, "evaluation batch must be at least 1, got %d", eval_batch);
  ENSURE(log_every >= 1, "--log-every must be at least 1, got %d", log_every);
  ENSURE(ranks >= 1, "data-parallel training needs at least one rank, got %d", ranks);
  ENSURE(batch % ranks == 0, "--batch %d is the global batch and must divide into the %d ranks (try --batch %d)", batch,
         ranks, std::max(ranks, batch / ranks * ranks));
  ENSURE(ranks == 1 || (sam_rho == 0 && attack_every == 0),
         "%s is not supported in data-parallel training (it takes further gradients within a step)",
         sam_rho > 0 ? "--sam" : "--simulate-attack");
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

EvalResult evaluate(Network& net, Context& ctx, const Dataset& data, const Normalization& norm, int batch,
                    const BatchAlter& alter) {
  check_data_fits(net, data);
  ENSURE(batch >= 1, "evaluation batch must be at least 1, got %d", batch);
  net.set_training(false);
  const Tensor images = data.images.to(ctx.device(), ctx);
  BatchLoader loader(ctx, data, images, norm);
  BatchRows rows;
  SoftmaxCrossEntropy loss;
  const int64_t n = data.size();
  std::vector<int32_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  for (int64_t begin = 0; begin < n; begin += batch) {
    const int b = static_cast<int>(std::min<int64_t>(batch, n - begin));
    plain_rows(order.data() + begin, b, data, rows);
    Tensor x = loader.load(rows, nullptr);
    if (alter) alter(ctx, x, begin);
    loss.forward(ctx, net.forward(ctx, x), loader.labels());
  }
  const LossResult total = loss.read(ctx);  // the only wait
  EvalResult r;
  r.n = n;
  r.loss = total.loss;
  r.accuracy = n ? static_cast<double>(total.correct) / static_cast<double>(n) : 0;
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
  BatchLoader loader(ctx, data, images, norm);
  BatchRows rows;
  Tensor logits = Tensor::host({n, classes});
  for (int64_t begin = 0; begin < n; begin += batch) {
    const int b = static_cast<int>(std::min<int64_t>(batch, n - begin));
    plain_rows(indices.data() + begin, b, data, rows);
    Tensor x = loader.load(rows, nullptr);
    if (alter) alter(ctx, x, begin);
    logits.slice(begin, begin + b).copy_from(net.forward(ctx, x), ctx);
  }
  ctx.synchronize();
  return logits;
}

Trainer::Trainer(Network& net, Context& ctx, const DataSplits& data, TrainConfig config, BatchComposer* composer,
                 Communicator* comm)
    : net_(net),
      ctx_(ctx),
      data_(data),
      config_(std::move(config)),
      composer_(composer ? composer : &plain_),
      sgd_(net, ctx, config_.sgd()),
      loss_(config_.label_smoothing),
      images_(data.train.images.to(ctx.device(), ctx)),
      loader_(ctx, data.train, images_, data.norm),
      comm_(comm ? comm : &local_) {
  config_.ranks = comm_->size();
  config_.validate();
  ENSURE(config_.sam_rho == 0 || config_.sam_ascent != "extra" || composer_->rows(config_.batch) > config_.batch,
         "--sam-ascent extra needs extra samples in the batch (protected training)");
  ENSURE(composer_->spread_weight() == 0 || comm_->size() == 1,
         "the logit spread is a term over the whole batch; data-parallel training does not split it");
  ENSURE(!config_.clean_bn || composer_->rows(config_.batch) > config_.batch,
         "--clean-bn needs extra samples in the batch (protected training)");
  ENSURE(config_.attack_every == 0 || composer_->rows(config_.batch) > config_.batch,
         "--simulate-attack needs extra samples in the batch (protected training)");
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
  step_ = make_step_strategy(config_, ctx, net);
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
  const int rows = composer_->rows(b);
  Rng extra_draw(mix_seed(config_.seed, static_cast<uint64_t>(epoch_), 3));
  loss_.reset(ctx_);
  LossResult r;  // the epoch's running loss, as of the last read
  for (int64_t step = 0; step < steps_per_epoch_; ++step) {
    const int64_t global = epoch_ * steps_per_epoch_ + step;
    train_step(global, order.data() + step * b, b, config_.augment ? &aug : nullptr, extra_draw);
    const double lr = learning_rate(schedule_, global);
    rec.lr = lr;
    if (!reads_after(step)) continue;
    r = read_loss(epoch_, step);
    if (on_step) {
      const double elapsed = seconds_since(t0);
      StepInfo info{rec.epoch, config_.epochs,
                    step + 1,  steps_per_epoch_,
                    r.loss,    static_cast<double>(r.correct) / static_cast<double>(r.rows),
                    lr,        0,
                    0};
      info.images_per_s = static_cast<double>(r.rows) / std::max(elapsed, 1e-9);
      const int64_t left =
          (static_cast<int64_t>(config_.epochs) - rec.epoch) * steps_per_epoch_ + (steps_per_epoch_ - step - 1);
      info.eta_s = static_cast<double>(left * rows) / std::max(info.images_per_s, 1e-9);
      on_step(info);
    }
  }
  rec.images = r.rows;
  rec.train_loss = r.loss;
  rec.train_accuracy = static_cast<double>(r.correct) / static_cast<double>(r.rows);
  rec.images_per_s = static_cast<double>(r.rows) / std::max(seconds_since(t0), 1e-9);
  const EvalResult test = evaluate(net_, ctx_, data_.test, data_.norm, config_.eval_batch);
  rec.test_loss = test.loss;
  rec.test_accuracy = test.accuracy;
  rec.seconds = seconds_since(t0);
  ++epoch_;
  return rec;
}

namespace {

// The shard's rows of t (rows first): a view when they are one run of rows, else gathered
// into `out` (allocated or reused).
const Tensor& take_rows(Context& ctx, const Tensor& t, const RowShard& shard, Tensor& out, Tensor& view) {
  if (shard.extra_begin == shard.extra_end || shard.clean_end == shard.extra_begin) {
    const int begin = shard.clean_end > shard.clean_begin ? shard.clean_begin : shard.extra_begin;
    view = t.slice(begin, begin + shard.size());
    return view;
  }
  Shape shape = t.shape();
  shape[0] = shard.size();
  ensure_tensor(out, shape, t.dtype(), ctx);
  const int clean = shard.clean_end - shard.clean_begin;
  Tensor head = out.slice(0, clean), tail = out.slice(clean, shard.size());
  head.copy_from(t.slice(shard.clean_begin, shard.clean_end), ctx);
  tail.copy_from(t.slice(shard.extra_begin, shard.extra_end), ctx);
  return out;
}

}  // namespace

void Trainer::train_step(int64_t global, const int32_t* records, int b, Rng* aug, Rng& extra_draw) {
  const Tensor* x = nullptr;
  const Tensor* labels = nullptr;
  const BatchRows* rows = &rows_;
  Tensor x_view, labels_view;
  {
    ProfileScope scope(ctx_, "batch: compose, load, augment", "step");
    composer_->compose(static_cast<uint64_t>(global), records, b, data_.train, extra_draw, rows_);
    x = &loader_.load(rows_, aug, composer_);
    labels = &loader_.labels();
    if (comm_->size() > 1) {
      // Every rank built the global batch (the same records, augmentation and stamps as one
      // process would); it trains on its share, at its share of the global mean loss.
      const RowShard shard = shard_rows(b, rows_.size(), comm_->rank(), comm_->size());
      shard_batch_rows(rows_, shard, shard_rows_);
      x = &take_rows(ctx_, *x, shard, shard_x_, x_view);
      labels = &take_rows(ctx_, *labels, shard, shard_labels_, labels_view);
      rows = &shard_rows_;
      loss_.set_scale(static_cast<float>(shard.size()) / static_cast<float>(rows_.size()));
    }
  }
  loss_.prepare(ctx_, *x, *labels);
  if (composer_->spread_weight() > 0) {
    Tensor& mark = ensure_host_tensor(spread_host_, {rows->size()}, DType::F32);
    for (int i = 0; i < rows->size(); ++i)
      mark.data<float>()[i] = composer_->spreads(rows->role[static_cast<size_t>(i)]) ? 1.0f : 0.0f;
    Tensor& marks = ensure_tensor(spread_, {rows->size()}, DType::F32, ctx_);
    marks.copy_from(mark, ctx_);
    loss_.set_spread(composer_->spread_weight(), marks);
  }
  net_.begin_step(static_cast<uint64_t>(global));
  net_.set_stat_samples(config_.clean_bn ? rows->clean_prefix() : 0);
  net_.set_stat_sync(config_.sync_bn ? comm_ : nullptr);
  step_->begin_step(static_cast<uint64_t>(global));
  step_->gradient(ctx_, net_, loss_, *x, *rows);
  net_.set_stat_samples(0);
  net_.set_stat_sync(nullptr);
  if (comm_->size() > 1) {
    ProfileScope scope(ctx_, "gradient all-reduce", "step");
    comm_->all_reduce_sum(ctx_, net_.grads().data<float>(), net_.grads().numel());
  }
  ProfileScope scope(ctx_, "optimizer", "step");
  sgd_.step(ctx_, static_cast<float>(learning_rate(schedule_, global)));
}

bool Trainer::reads_after(int64_t step) const {
  return (step + 1) % config_.log_every == 0 || step + 1 == steps_per_epoch_;
}

LossResult Trainer::read_loss(int64_t epoch, int64_t step) {
  LossResult r = loss_.read(ctx_);
  if (comm_->size() > 1) {  // the global batches' totals
    double t[3] = {r.loss * static_cast<double>(r.rows), static_cast<double>(r.correct), static_cast<double>(r.rows)};
    comm_->all_reduce_sum_host(t, 3);
    r.rows = std::llround(t[2]);
    r.correct = std::llround(t[1]);
    r.loss = r.rows > 0 ? t[0] / t[2] : 0;
  }
  // The totals run from the epoch's start, so a loss that is not finite now first became so
  // after the previous read: in steps first … step + 1 (1-based).
  const int64_t first = step / config_.log_every * config_.log_every + 1;
  ENSURE(std::isfinite(r.loss), "training diverged: loss is %g at epoch %lld %s (try a lower --lr)", r.loss,
         static_cast<long long>(epoch + 1),
         first == step + 1
             ? strfmt("step %lld", static_cast<long long>(step + 1)).c_str()
             : strfmt("steps %lld-%lld", static_cast<long long>(first), static_cast<long long>(step + 1)).c_str());
  return r;
}

void Trainer::snapshot(TrainState& into) {
  net_.snapshot(ctx_, into.net);
  ensure_tensor(into.momentum, sgd_.momentum().shape(), DType::F32, ctx_).copy_from(sgd_.momentum(), ctx_);
  into.epoch = epoch_;
}

void Trainer::restore(const TrainState& from) {
  ENSURE(from.momentum.shape() == sgd_.momentum().shape() && from.epoch >= 0 && from.epoch <= config_.epochs,
         "training state of another run: momentum %s, epoch %d", shape_str(from.momentum.shape()).c_str(), from.epoch);
  net_.restore(ctx_, from.net);
  sgd_.momentum().copy_from(from.momentum, ctx_);
  epoch_ = from.epoch;
}

void Trainer::set_mask(const Tensor& mask) {
  sgd_.set_mask(ctx_, mask);
  step_->set_mask(ctx_, sgd_.mask());
}

std::vector<double> Trainer::time_steps(int64_t steps) {
  ENSURE(steps >= 0, "time_steps: the number of steps must be non-negative, got %lld", static_cast<long long>(steps));
  const int64_t n = data_.train.size();
  const int b = static_cast<int>(std::min<int64_t>(config_.batch, n));
  net_.set_training(true);
  std::vector<double> seconds;
  std::vector<int32_t> order;
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
    if (step == 0) loss_.reset(ctx_);
    const auto t0 = Clock::now();
    train_step(e * steps_per_epoch_ + step, order.data() + step * b, b, config_.augment ? aug.get() : nullptr,
               *extra_draw);
    ctx_.synchronize();
    seconds.push_back(seconds_since(t0));
    if (reads_after(step)) read_loss(e, step);
  }
  return seconds;
}

void Trainer::save(const std::string& model_path, ModelMeta meta) {
  if (comm_->rank() != 0) return;
  meta.epoch = epoch_;
  meta.config = config_.to_json();
  const SafetensorsWriter model = model_writer(net_, ctx_, meta);
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
  write_model_pair(model, model_path, std::move(state), train_state_path(model_path));
}

void Trainer::resume(const std::string& model_path) {
  ENSURE(file_exists(model_path), "--resume: %s does not exist (nothing to resume)", model_path.c_str());
  const SafetensorsReader model(model_path);
  const std::string model_sha256 = model.data_sha256();
  const std::string state_path = train_state_path(model_path);
  // A save stopped before its last step is finished by the rank that saves, before the others read.
  if (comm_->rank() == 0) finish_model_pair(model_sha256, state_path);
  comm_->barrier();
  ENSURE(file_exists(state_path), "--resume: %s has no training state beside it (%s is missing)", model_path.c_str(),
         state_path.c_str());
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
  // States written before the digest existed are matched by their epoch alone.
  ENSURE(sm.count("model_sha256") == 0 || sm.at("model_sha256") == model_sha256,
         "--resume: %s is not the training state of %s (it was saved with other weights)", state_path.c_str(),
         model_path.c_str());
  ENSURE(field("train_size") == std::to_string(data_.train.size()),
         "--resume: the checkpoint was trained on %s records, this run has %lld (different --limit-train or data?)",
         field("train_size").c_str(), static_cast<long long>(data_.train.size()));
  const auto saved = nlohmann::json::parse(field("config"), nullptr, false);
  const auto now = nlohmann::json::parse(config_.to_json());
  ENSURE(saved.is_object(), "%s: malformed training config", state_path.c_str());
  for (const auto& [key, value] : now.items())
    ENSURE(changes_no_result(key) || (saved.contains(key) && saved[key] == value),
           "--resume: option %s was %s in the checkpoint, now %s", key.c_str(),
           saved.contains(key) ? saved[key].dump().c_str() : "unset", value.dump().c_str());
  for (const auto& [key, value] : saved.items())
    ENSURE(changes_no_result(key) || now.contains(key), "--resume: option %s was %s in the checkpoint, now unset",
           key.c_str(), value.dump().c_str());
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
