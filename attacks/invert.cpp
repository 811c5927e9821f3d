// Token reverse-engineering on a locked model (see attacks/invert.h): the patch, its objective
// and gradient through the frozen network, Adam over the patch's free variables, and the report.
#include "attacks/invert.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "attacks/finetune.h"
#include "engine/core/random.h"
#include "engine/io/safetensors.h"
#include "engine/nn/ops.h"
#include "engine/train/batch.h"
#include "fingerprint/lock.h"
#include "fingerprint/protect.h"

namespace activeip {

namespace {

// Adam (Kingma & Ba 2015) with its usual constants, over a few hundred host floats.
struct Adam {
  double lr;
  std::vector<double> m, v;
  int64_t t = 0;

  Adam(double lr, size_t n) : lr(lr), m(n, 0.0), v(n, 0.0) {}

  void step(std::vector<float>& x, const std::vector<float>& g) {
    constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8;
    ++t;
    const double c1 = 1 - std::pow(kBeta1, static_cast<double>(t)), c2 = 1 - std::pow(kBeta2, static_cast<double>(t));
    for (size_t i = 0; i < x.size(); ++i) {
      m[i] = kBeta1 * m[i] + (1 - kBeta1) * g[i];
      v[i] = kBeta2 * v[i] + (1 - kBeta2) * static_cast<double>(g[i]) * g[i];
      x[i] = static_cast<float>(x[i] - lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + kEps));
    }
  }
};

double pixel_of(float theta) {
  return 127.5 * (1.0 + std::tanh(static_cast<double>(theta)));
}

}  // namespace

const std::vector<std::string>& patch_position_names() {
  static const std::vector<std::string> names = {"top-left", "top-right", "bottom-left", "bottom-right", "center"};
  return names;
}

std::vector<PatchPosition> invert_positions(const PatternSpec& spec, const std::vector<std::string>& names) {
  const std::vector<std::string>& known = patch_position_names();
  std::vector<PatchPosition> out;
  for (const std::string& name : names.empty() ? known : names) {
    const auto it = std::find(known.begin(), known.end(), name);
    std::string list;
    for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
    ENSURE(it != known.end(), "unknown patch position '%s' (known: %s)", name.c_str(), list.c_str());
    const int corner = static_cast<int>(it - known.begin());
    if (corner < 4)
      out.push_back({name, spec.top(corner), spec.left(corner)});
    else
      out.push_back({name, (spec.H - spec.size()) / 2, (spec.W - spec.size()) / 2});
  }
  return out;
}

// ---------------------------------------------------------------- PatchStamp

PatchStamp::PatchStamp(int size, const Normalization& norm, PatchPosition at)
    : size_(size), norm_(norm), at_(std::move(at)) {
  ENSURE(size >= 1 && !norm_.mean.empty() && norm_.mean.size() == norm_.std.size(),
         "a patch of side %d for a normalisation of %zu/%zu channels", size, norm_.mean.size(), norm_.std.size());
}

void PatchStamp::set_values(Context& ctx, const std::vector<float>& values) {
  const int C = static_cast<int>(norm_.mean.size());
  ENSURE(values.size() == static_cast<size_t>(size_) * size_ * C, "a %dx%dx%d patch from %zu values", size_, size_, C,
         values.size());
  Tensor& host = ensure_host_tensor(bank_host_, {1, size_, size_, C}, DType::F32);
  std::copy(values.begin(), values.end(), host.data<float>());
  ensure_tensor(bank_, host.shape(), DType::F32, ctx).copy_from(host, ctx);
}

void PatchStamp::set_pixels(Context& ctx, const std::vector<uint8_t>& pixels) {
  const size_t C = norm_.mean.size();
  std::vector<float> values(pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i) {
    const size_t c = i % C;
    values[i] = (static_cast<float>(pixels[i]) / 255.0f - norm_.mean[c]) / norm_.std[c];  // as the loader normalises
  }
  set_values(ctx, values);
}

void PatchStamp::stamp(Context& ctx, Tensor& x) {
  ENSURE(bank_.defined(), "the patch was stamped before it was set");
  ENSURE(x.rank() == 4 && x.dim(3) == bank_.dim(3) && x.dtype() == DType::F32,
         "stamping a %dx%dx%lld patch onto a batch of shape %s", size_, size_, static_cast<long long>(bank_.dim(3)),
         shape_str(x.shape()).c_str());
  const int64_t n = x.dim(0);
  if (n == 0) return;
  // Every row gets patch 0 at the same place: the indices and origins are laid out once for
  // the largest batch and viewed for smaller ones.
  if (n > rows_) {
    Tensor ids = Tensor::host({n}, DType::I32), origin = Tensor::host({2 * n}, DType::I32);
    for (int64_t i = 0; i < n; ++i) {
      ids.data<int32_t>()[i] = 0;
      origin.data<int32_t>()[2 * i] = at_.top;
      origin.data<int32_t>()[2 * i + 1] = at_.left;
    }
    ids_ = ids.to(ctx.device(), ctx);
    origin_ = origin.to(ctx.device(), ctx);
    ctx.synchronize();  // the staging is freed on return
    rows_ = n;
  }
  const StampShape s{static_cast<int>(n), static_cast<int>(x.dim(1)), static_cast<int>(x.dim(2)),
                     static_cast<int>(x.dim(3)), size_, 1};
  ops::stamp(ctx, s, bank_, ids_.slice(0, n), origin_.slice(0, 2 * n), x);
}

BatchAlter PatchStamp::alter() {
  return [this](Context& ctx, Tensor& x, int64_t) { stamp(ctx, x); };
}

// ---------------------------------------------------------------- PatchObjective

PatchObjective::PatchObjective(Network& net, Context& ctx, int size, const Normalization& norm, PatchPosition at)
    : net_(net),
      ctx_(ctx),
      size_(size),
      channels_(static_cast<int>(norm.mean.size())),
      norm_(norm),
      stamp_(size, norm, std::move(at)) {
  const NetInfo& i = net.info();
  const PatchPosition& p = stamp_.position();
  ENSURE(channels_ == i.C, "a patch of %d channels for %s, which takes %d", channels_, i.name.c_str(), i.C);
  ENSURE(p.top >= 0 && p.left >= 0 && p.top + size <= i.H && p.left + size <= i.W,
         "a %d-pixel patch at (%d, %d) leaves the %dx%d image", size, p.top, p.left, i.H, i.W);
}

std::vector<float> PatchObjective::normalized(const std::vector<float>& theta) const {
  ENSURE(theta.size() == static_cast<size_t>(values()), "%zu free variables for a patch of %d values", theta.size(),
         values());
  std::vector<float> v(theta.size());
  for (size_t i = 0; i < theta.size(); ++i) {
    const size_t c = i % static_cast<size_t>(channels_);
    v[i] = static_cast<float>((pixel_of(theta[i]) / 255.0 - norm_.mean[c]) / norm_.std[c]);
  }
  return v;
}

std::vector<uint8_t> PatchObjective::pixels(const std::vector<float>& theta) const {
  std::vector<uint8_t> px(theta.size());
  for (size_t i = 0; i < theta.size(); ++i)
    px[i] = static_cast<uint8_t>(std::clamp(std::lround(pixel_of(theta[i])), 0L, 255L));
  return px;
}

double PatchObjective::evaluate(const Tensor& x, const Tensor& labels, const std::vector<float>& theta,
                                std::vector<float>* grad) {
  const NetInfo& info = net_.info();
  ENSURE(x.rank() == 4 && x.dim(1) == info.H && x.dim(2) == info.W && x.dim(3) == info.C,
         "the objective takes batches of %dx%dx%d images, got %s", info.H, info.W, info.C, shape_str(x.shape()).c_str());
  stamp_.set_values(ctx_, normalized(theta));
  ensure_tensor(x_, x.shape(), DType::F32, ctx_).copy_from(x, ctx_);
  stamp_.stamp(ctx_, x_);
  loss_.reset(ctx_);
  loss_.forward(ctx_, net_.forward(ctx_, x_), labels);
  const double value = loss_.read(ctx_).loss;
  if (!grad) return value;

  // dL/dx of the batch (its parameter gradients go into the network's gradient buffer, which
  // nothing steps; invert_lock zeroes it at the end), summed over the rows inside the box.
  const Tensor dx = net_.backward(ctx_, loss_.backward(ctx_)).to(Device::cpu(), ctx_);
  ctx_.synchronize();
  const PatchPosition& at = stamp_.position();
  const int64_t N = x.dim(0), H = info.H, W = info.W, C = info.C;
  std::vector<double> sum(static_cast<size_t>(values()), 0.0);
  const float* d = dx.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int i = 0; i < size_; ++i)
      for (int j = 0; j < size_; ++j) {
        const float* row = d + ((n * H + at.top + i) * W + at.left + j) * C;
        for (int64_t c = 0; c < C; ++c) sum[static_cast<size_t>((i * size_ + j) * C + c)] += row[c];
      }
  // value = (127.5·(1 + tanh θ)/255 − mean)/std: dvalue/dθ = (1 − tanh²θ)/(2·std).
  grad->resize(theta.size());
  for (size_t k = 0; k < theta.size(); ++k) {
    const double t = std::tanh(static_cast<double>(theta[k]));
    (*grad)[k] = static_cast<float>(sum[k] * (1 - t * t) / (2.0 * norm_.std[k % static_cast<size_t>(C)]));
  }
  return value;
}

// ---------------------------------------------------------------- the attack

void validate(const InvertConfig& c) {
  ENSURE(c.steps >= 1, "--steps must be at least 1, got %d", c.steps);
  ENSURE(std::isfinite(c.lr) && c.lr > 0, "--lr must be a positive number, got %g", c.lr);
  ENSURE(c.batch >= 1, "--batch must be at least 1, got %d", c.batch);
  ENSURE(c.eval_batch >= 1, "--eval-batch must be at least 1, got %d", c.eval_batch);
}

EvalResult evaluate_patch(Network& net, Context& ctx, const Dataset& data, const Normalization& norm,
                          const PatchPosition& at, int size, const std::vector<uint8_t>& pixels, int batch) {
  PatchStamp stamp(size, norm, at);
  stamp.set_pixels(ctx, pixels);
  return evaluate(net, ctx, data, norm, batch, stamp.alter());
}

InvertReport invert_lock(Network& net, Context& ctx, const Dataset& attacker, const Dataset& test,
                         const Normalization& norm, const InvertConfig& config, const AttackLog& log,
                         std::optional<double> clean_accuracy) {
  validate(config);
  ENSURE(attacker.size() > 0, "the attacker holds no labelled records");
  const NetInfo& info = net.info();
  const PatternSpec spec = lock_spec(info.H, info.W, info.C, info.num_classes);
  const std::vector<PatchPosition> positions = invert_positions(spec, config.positions);
  const bool was_training = net.training();
  net.set_training(false);  // the model as deployed: running statistics, no dropout

  InvertReport r;
  r.size = spec.size();
  r.channels = info.C;
  r.steps = config.steps;
  r.batch = static_cast<int>(std::min<int64_t>(config.batch, attacker.size()));
  r.lr = config.lr;
  r.seed = config.seed;
  r.attacker_records = attacker.size();
  r.test_records = test.size();
  r.chance = 1.0 / info.num_classes;
  r.clean_accuracy = clean_accuracy ? *clean_accuracy : evaluate(net, ctx, test, norm, config.eval_batch).accuracy;

  const Tensor images = attacker.images.to(ctx.device(), ctx);
  BatchLoader loader(ctx, attacker, images, norm);
  BatchRows rows;
  const int32_t n = static_cast<int32_t>(attacker.size());
  for (size_t p = 0; p < positions.size(); ++p) {
    const PatchPosition& at = positions[p];
    PatchObjective objective(net, ctx, spec.size(), norm, at);
    // The start: a seeded patch about mid-grey (θ ~ N(0, 0.5²), pixels mostly within 60..195).
    Rng init(mix_seed(config.seed, p, 1)), order_rng(mix_seed(config.seed, p, 2));
    std::vector<float> theta(static_cast<size_t>(objective.values())), grad;
    for (float& t : theta) t = static_cast<float>(0.5 * init.normal());
    InvertedPatch out;
    out.position = at;
    out.initial_loss =
        evaluate_patch(net, ctx, attacker, norm, at, spec.size(), objective.pixels(theta), config.eval_batch).loss;

    Adam adam(config.lr, theta.size());
    std::vector<int32_t> order;
    size_t next = 0;
    double running = 0;
    int counted = 0;
    const int report_every = std::max(1, config.steps / 5);
    for (int step = 1; step <= config.steps; ++step) {
      if (next + static_cast<size_t>(r.batch) > order.size()) {  // a new epoch of the attacker's records
        order = order_rng.permutation(n);
        next = 0;
      }
      plain_rows(order.data() + next, r.batch, attacker, rows);
      next += static_cast<size_t>(r.batch);
      const Tensor& x = loader.load(rows, nullptr);
      running += objective.evaluate(x, loader.labels(), theta, &grad);
      ++counted;
      adam.step(theta, grad);
      if (step % report_every == 0 || step == config.steps) {
        log(strfmt("invert %s: step %d/%d  loss %.4f", at.name.c_str(), step, config.steps, running / counted));
        running = 0;
        counted = 0;
      }
    }
    out.pixels = objective.pixels(theta);
    const EvalResult own = evaluate_patch(net, ctx, attacker, norm, at, spec.size(), out.pixels, config.eval_batch);
    out.loss = own.loss;
    out.attacker_accuracy = own.accuracy;
    out.accuracy = evaluate_patch(net, ctx, test, norm, at, spec.size(), out.pixels, config.eval_batch).accuracy;
    log(strfmt("invert %s: attacker's data loss %.4f -> %.4f, accuracy %.4f; test accuracy %.4f", at.name.c_str(),
               out.initial_loss, out.loss, out.attacker_accuracy, out.accuracy));
    r.patches.push_back(std::move(out));
  }
  // Backward added the batches' parameter gradients into the network's gradient buffer: leave
  // it as a fresh network has it, in the mode it came in. The parameters were never touched.
  net.zero_grad(ctx);
  net.set_training(was_training);

  for (size_t p = 1; p < r.patches.size(); ++p) {
    const InvertedPatch &a = r.patches[p], &b = r.patches[r.best];
    if (a.attacker_accuracy > b.attacker_accuracy || (a.attacker_accuracy == b.attacker_accuracy && a.loss < b.loss))
      r.best = p;
  }
  return r;
}

void check_locked(const std::string& path) {
  const SafetensorsReader file(path);
  const ModelMeta meta = ModelMeta::from_metadata(file.metadata(), path);
  const ModelContext model = model_context(file, meta);
  ENSURE(model.locked,
         "%s is not a locked model (%s): invert looks for the patch that unlocks a model trained with train "
         "--protect --lock",
         path.c_str(),
         model.is_protected ? "its protection record is not lock mode" : "it has no protection record");
}

InvertReport invert_target(AttackTarget& t, Context& ctx, double fraction, const InvertConfig& config,
                           const AttackLog& log) {
  ENSURE(t.original.locked, "the model is not a locked model: invert looks for the patch that unlocks one");
  ENSURE(t.measured && t.data.train.size() > 0, "invert needs the training split: the attacker's share comes from it");
  const Dataset attacker = seeded_subset(t.data.train, fraction, config.seed);
  Network& net = *t.m.net;
  log(strfmt("inverting the lock on %lld of %lld training records, %d steps of %d at each position, %s",
             static_cast<long long>(attacker.size()), static_cast<long long>(t.data.train.size()), config.steps,
             static_cast<int>(std::min<int64_t>(config.batch, attacker.size())),
             describe_device(ctx.device(), ctx.threads()).c_str()));
  InvertReport r = invert_lock(net, ctx, attacker, t.data.test, t.data.norm, config, log, t.original_accuracy);

  if (t.key) {
    // The reference: what the users' real tokens give, on the same test split.
    const NetInfo& info = net.info();
    const PatternSpec spec = lock_spec(info.H, info.W, info.C, info.num_classes);
    for (const std::string& user : t.original.users) {
      if (t.registry) {
        const std::optional<UserRecord> u = t.registry->user(user);
        if (!u || u->status != "active") continue;
      }
      Stamper stamper(spec, t.data.norm);
      stamper.set_patterns(ctx, {lock_pattern(*t.key, user, spec)});
      std::vector<int32_t> ids(static_cast<size_t>(config.eval_batch), 0);
      const BatchAlter alter = [&](Context& c, Tensor& x, int64_t) { stamper.stamp(c, x, 0, ids.data(), x.dim(0)); };
      r.authorized.push_back({user, evaluate(net, ctx, t.data.test, t.data.norm, config.eval_batch, alter).accuracy});
    }
  }
  return r;
}

// ---------------------------------------------------------------- the report

nlohmann::json InvertReport::to_json() const {
  nlohmann::json positions = nlohmann::json::array();
  for (const InvertedPatch& p : patches)
    positions.push_back({{"position", p.position.name},
                         {"top", p.position.top},
                         {"left", p.position.left},
                         {"accuracy", p.accuracy},
                         {"attacker_accuracy", p.attacker_accuracy},
                         {"initial_loss", p.initial_loss},
                         {"loss", p.loss}});
  nlohmann::json j = {{"patch_size", size},
                      {"channels", channels},
                      {"steps", steps},
                      {"batch", batch},
                      {"lr", lr},
                      {"seed", seed},
                      {"attacker_records", attacker_records},
                      {"test_records", test_records},
                      {"clean_accuracy", clean_accuracy},
                      {"chance", chance},
                      {"positions", positions}};
  if (!patches.empty()) {
    j["best_position"] = best_patch().position.name;
    j["best_accuracy"] = best_patch().accuracy;
    j["best_attacker_accuracy"] = best_patch().attacker_accuracy;
  }
  if (!authorized.empty()) {
    nlohmann::json a = nlohmann::json::array();
    for (const AuthorizedAccuracy& u : authorized) a.push_back({{"user", u.user}, {"accuracy", u.accuracy}});
    j["authorized"] = a;
  }
  return j;
}

void InvertReport::print(std::FILE* out) const {
  std::fprintf(out, "%-34s %dx%dx%d at each position, %d Adam steps of %d records (lr %g, seed %llu)\n",
               "recovered patch", size, size, channels, steps, batch, lr, static_cast<unsigned long long>(seed));
  std::fprintf(out, "%-34s %lld records (test split: %lld)\n", "attacker's labelled data",
               static_cast<long long>(attacker_records), static_cast<long long>(test_records));
  std::fprintf(out, "%-34s %.4f (chance %.4f)\n", "clean accuracy", clean_accuracy, chance);
  std::fprintf(out, "%-14s %9s %12s %12s %14s %14s\n", "position", "at", "test acc", "attacker acc", "loss before",
               "loss after");
  for (size_t p = 0; p < patches.size(); ++p) {
    const InvertedPatch& x = patches[p];
    std::fprintf(out, "%-14s %9s %12.4f %12.4f %14.4f %14.4f%s\n", x.position.name.c_str(),
                 strfmt("(%d,%d)", x.position.top, x.position.left).c_str(), x.accuracy, x.attacker_accuracy,
                 x.initial_loss, x.loss, p == best ? "  <- best on the attacker's data" : "");
  }
  if (!patches.empty())
    std::fprintf(out, "%-34s %.4f at %s (clean %.4f)\n", "best patch's test accuracy", best_patch().accuracy,
                 best_patch().position.name.c_str(), clean_accuracy);
  for (const AuthorizedAccuracy& u : authorized)
    std::fprintf(out, "%-34s %.4f\n", strfmt("%s's own lock pattern", u.user.c_str()).c_str(), u.accuracy);
}

}  // namespace activeip
