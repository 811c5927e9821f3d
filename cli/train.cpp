// activeip train: build a net, train it on a dataset, write a checkpoint every epoch,
// optionally resume one; with --protect, embed the owner's trigger and every active
// registered user's fingerprint and record the model in the registry.
// activeip enroll: embed newly registered users into a protected model by a short
// fine-tune that keeps the owner's trigger, the earlier users and clean data in the mix; on
// a locked model, add users to the lock and, with --revoke, retrain it so that the revoked
// users' patterns are refused like a forger's (the registry revokes them with the new record).
// At the end of both, every trained pattern's detection is measured on held-out probes and
// recorded; a pattern below τ is not recorded as embedded and the command exits 3 (the model
// is written all the same). Progress goes to stderr (a live line on a terminal, one line per
// epoch otherwise), JSON lines to --log, the final summary to stdout.
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/commands.h"
#include "cli/protection.h"
#include "engine/core/communicator.h"
#ifdef ACTIVEIP_CUDA
#include "engine/core/cuda_memory.h"
#endif
#include "engine/core/file_io.h"
#include "engine/train/trainer.h"
#include "fingerprint/assess.h"
#include "fingerprint/protect.h"
#include "nets/model_io.h"
#include "nets/nets.h"

namespace activeip::cli {

namespace {

struct TrainOptions {
  std::string net, out, log;
  DataOptions data;
  DeviceOptions device;
  TrainConfig config;
  bool resume = false, no_augment = false;
  double fraction = 0;  // train --fraction: the seeded share of the training split (0: all of it)
  // --distributed: one rank of an MPI launch (the communicator, once made)
  bool distributed = false;
  std::unique_ptr<Communicator> comm;
  // --protect
  bool protect = false;
  std::string key, registry;
  ProtectConfig protection;
  std::string scheme = default_scheme().version();
  int code_length = 0;  // 0: the shortest that holds the registry's codes
  ProbeConfig probe;    // the end-of-training check of what was embedded
  // --lock (with --protect)
  bool lock = false;
  LockConfig lock_config;
};

// The exit status of a protected run whose model was written but did not embed every pattern.
constexpr int kProtectionIncomplete = 3;

std::string hms(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  return s >= 3600 ? strfmt("%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60) : strfmt("%ld:%02ld", s / 60, s % 60);
}

// Fails before any training when the checkpoint could not be written at the end of an epoch.
// A directory passes the probe but fails the final rename, after the state file beside it
// has been written.
void check_writable(const std::string& path) {
  if (std::filesystem::is_directory(path)) throw UsageError(strfmt("--out %s is a directory", path.c_str()));
  std::string probe = path + ".XXXXXX";  // a fresh name: never touches a file of the user's
  const int fd = mkstemp(probe.data());
  if (fd < 0) throw UsageError(strfmt("--out %s: cannot write there (%s)", path.c_str(), std::strerror(errno)));
  close(fd);
  unlink(probe.c_str());
}

std::unique_ptr<std::ofstream> open_log(const TrainOptions& o, bool resuming) {
  if (o.log.empty()) return nullptr;
  auto log = std::make_unique<std::ofstream>(o.log, resuming ? std::ios::app : std::ios::trunc);
  if (!*log) throw UsageError(strfmt("--log %s: cannot open for writing", o.log.c_str()));
  return log;
}

// The epoch loop shared by train and enroll: trains until done, checkpointing every epoch.
void fit(Trainer& trainer, const Network& net, const TrainOptions& o, const DataSplits& data, const Device& device,
         ModelMeta meta, std::ostream* log) {
  // A data-parallel run: every rank trains, rank 0 alone reports and writes (Trainer::save).
  if (o.comm && o.comm->rank() != 0) {
    while (!trainer.done()) {
      trainer.train_epoch({});
      trainer.save(o.out, meta);
    }
    return;
  }
  if (log) {
    nlohmann::json start = {{"event", "start"},
                            {"net", meta.net},
                            {"data", o.data.name},
                            {"device", device.str()},
                            {"threads", cpu_threads(o.device.threads)},
                            {"precision", o.device.precision},
                            {"ranks", o.comm ? o.comm->size() : 1},
                            {"parameters", net.num_parameters()},
                            {"train_size", data.train.size()},
                            {"test_size", data.test.size()},
                            {"start_epoch", trainer.completed_epochs()},
                            {"config", nlohmann::json::parse(trainer.config().to_json())}};
    *log << start.dump() << "\n" << std::flush;
  }
  std::fprintf(
      stderr, "%s (%lld parameters) on %s: %lld train / %lld test images, %lld steps per epoch, %s%s\n",
      meta.net.c_str(), static_cast<long long>(net.num_parameters()), o.data.name.c_str(),
      static_cast<long long>(data.train.size()), static_cast<long long>(data.test.size()),
      static_cast<long long>(trainer.steps_per_epoch()),
      (describe_device(device, o.device.threads) + (o.device.precision == "fp32" ? "" : ", " + o.device.precision))
          .c_str(),
      o.comm ? strfmt(" per rank; data-parallel over %s%s", o.comm->describe().c_str(),
                      o.config.sync_bn ? ", sync batch norm" : "")
                   .c_str()
             : "");

  const bool tty = stderr_is_tty();
  auto last_draw = std::chrono::steady_clock::now();
  auto on_step = [&](const StepInfo& s) {
    if (!tty) return;
    const auto now = std::chrono::steady_clock::now();
    if (s.step != s.steps && now - last_draw < std::chrono::milliseconds(200)) return;
    last_draw = now;
    std::fprintf(stderr, "\r\033[Kepoch %d/%d  step %lld/%lld  loss %.4f  acc %5.1f%%  lr %.4g  %.0f img/s  ETA %s",
                 s.epoch, s.epochs, static_cast<long long>(s.step), static_cast<long long>(s.steps), s.loss,
                 100 * s.accuracy, s.lr, s.images_per_s, hms(s.eta_s).c_str());
    std::fflush(stderr);
  };

  EpochRecord last;
  while (!trainer.done()) {
    last = trainer.train_epoch(on_step);
    trainer.save(o.out, meta);
    if (tty) std::fputs("\r\033[K", stderr);
    std::fprintf(stderr, "epoch %d/%d  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  %.0f img/s  %.1fs\n",
                 last.epoch, o.config.epochs, last.train_loss, 100 * last.train_accuracy, last.test_loss,
                 100 * last.test_accuracy, last.images_per_s, last.seconds);
    if (log) {
      auto j = nlohmann::json::parse(last.to_json());
      j["event"] = "epoch";
      *log << j.dump() << "\n" << std::flush;
    }
  }
  if (last.epoch == 0) {
    std::fprintf(stdout, "%s: already trained for %d epochs; nothing to do\n", o.out.c_str(), o.config.epochs);
    return;
  }
  std::fprintf(stdout, "%s %s: test accuracy %.2f%% after %d epochs (%.0f img/s) -> %s\n", meta.net.c_str(),
               o.data.name.c_str(), 100 * last.test_accuracy, last.epoch, last.images_per_s, o.out.c_str());
}

// With --resume, continues from --out's checkpoint when there is one; whether it does.
bool resume(Trainer& trainer, const TrainOptions& o) {
  if (!o.resume) return false;
  const bool speaks = !o.comm || o.comm->rank() == 0;
  if (!file_exists(o.out)) {
    if (speaks) std::fprintf(stderr, "no checkpoint at %s: starting from scratch\n", o.out.c_str());
    return false;
  }
  trainer.resume(o.out);
  if (speaks)
    std::fprintf(stderr, "resuming %s at epoch %d of %d\n", o.out.c_str(), trainer.completed_epochs(), o.config.epochs);
  return true;
}

// --distributed: joins the MPI launch (before the context: a rank picks its GPU by its local
// rank when --device is plain `cuda`); then connect() puts NCCL over it on a CUDA context.
void join_ranks(TrainOptions& o) {
  if (!o.config.sync_bn && !o.distributed) return;
  if (!o.distributed)
    throw UsageError("--sync-bn syncs batch norm over the ranks of a data-parallel run: add --distributed");
  o.comm = make_mpi_communicator();
  o.config.ranks = o.comm->size();
  as_usage([&] { o.config.validate(); });
  if (o.device.device == "cuda") {
    int gpu = o.comm->local_rank();
#ifdef ACTIVEIP_CUDA
    const int visible = cuda::device_count();  // a launcher may show each rank one GPU only
    if (visible > 0) gpu %= visible;
#endif
    o.device.device = strfmt("cuda:%d", gpu);
  }
}

void connect(TrainOptions& o, Context& ctx) {
  if (!o.comm || !ctx.is_cuda()) return;
  ENSURE(!o.config.sync_bn || o.comm->size() == 1,
         "--sync-bn over several processes runs on the CPU only; on CUDA, train without it (batch norm per GPU)");
  o.comm = make_nccl_communicator(ctx, std::move(o.comm));
}

// Loads the key and opens the registry of a protected run, before any data is read.
Protection open_protection(const TrainOptions& o) {
  if (o.key.empty() || o.registry.empty()) throw UsageError("--protect needs --key and --registry");
  return cli::open_protection(o.key, o.registry, o.protection);
}

// Builds the composer over `users` and writes what the checkpoint and --resume record.
void arm_protection(Protection& p, const Scheme& scheme, int code_length, const std::vector<std::string>& users,
                    const DataSplits& data, TrainOptions& o, ModelMeta& meta, const std::string& parent) {
  cli::arm_protection(p, scheme, code_length, users, data, o.protection, o.config, meta, parent, o.registry);
}

// The scheme and code length of a protected run: a resumed checkpoint's own, so that a run
// begun under an older default resumes as it began; --scheme and --code-length otherwise. A
// checkpoint that cannot be read is left to the trainer's resume to report.
std::pair<const Scheme*, int> run_scheme(const TrainOptions& o, bool resuming) {
  const std::pair<const Scheme*, int> asked{&scheme_for(o.scheme), o.code_length};
  if (!resuming) return asked;
  ModelMeta meta;
  try {
    meta = ModelMeta::from_metadata(SafetensorsReader(o.out).metadata(), o.out);
  } catch (const Error&) {
    return asked;
  }
  if (meta.protection.empty()) return asked;
  const ProtectionInfo info = ProtectionInfo::from_json(meta.protection, o.out);
  return {&scheme_for(info.scheme), info.code_length};
}

// Measures what the trained `net` embedded, prints one line per pattern (and the log record),
// records the model with those detections, and names every shortfall with what to try.
// Returns the exit status: 0, or kProtectionIncomplete.
int check_and_record(Protection& p, const TrainOptions& o, Network& net, Context& ctx, const DataSplits& data,
                     std::ostream* log) {
  Prober prober(net, ctx, data.test, data.norm, o.probe, p.scheme(), p.info.code_length);
  const EmbeddingCheck check = p.lock ? check_lock(prober, *p.key, p.info.users, p.info.revoked)
                                      : check_embedding(prober, *p.key, identities(*p.registry, p.info.users));
  if (p.lock)
    std::fprintf(stdout,
                 "lock, on %d held-out test images (a user's pattern unlocks when it lifts the accuracy %.2f "
                 "above the clean inputs' %.4f):\n",
                 o.probe.probes, 0.5 * (1.0 - 1.0 / data.test.num_classes), prober.clean_accuracy().rate);
  else
    std::fprintf(stdout, "embedded patterns, on up to %d held-out test images each (tau %g):\n", o.probe.probes,
                 o.probe.tau);
  const auto line = [](const std::string& name, const Detection& d, bool embedded, const std::string& extra) {
    const char* verdict = embedded ? "embedded" : "NOT embedded";
    std::fprintf(stdout, "  %-24s -> label %-3d detection %.3f  %s\n", name.c_str(), d.target, d.rate,
                 extra.empty() ? verdict : strfmt("%-12s  %s", verdict, extra.c_str()).c_str());
  };
  line(std::string(kOwnerName) + " (trigger)", check.owner.detection, check.owner.verified,
       strfmt("(p = %.3g)", check.owner.p_value));
  for (const PatternCheck& u : check.users)
    if (p.lock)
      std::fprintf(stdout, "  %-24s -> accuracy %.4f  %s\n", u.user.c_str(), u.detection.rate,
                   u.embedded ? "unlocks" : "DOES NOT unlock");
    else
      line(u.user, u.detection, u.embedded, "");
  for (const PatternCheck& u : check.revoked)
    std::fprintf(stdout, "  %-24s -> accuracy %.4f  %s\n", u.user.c_str(), u.detection.rate,
                 u.embedded ? "STILL unlocks (revoked)" : "refused (revoked)");
  if (log) {
    auto j = nlohmann::json::parse(check.to_json());
    j["event"] = "embedding";
    *log << j.dump() << "\n" << std::flush;
  }

  const std::string id = record_protected(p, o.out, net.info().name, o.data.name, &check);
  const std::vector<std::string> short_users = check.short_users();
  std::fprintf(stdout, "recorded model %s in %s: owner trigger -> label %d, %zu of %zu users embedded\n", id.c_str(),
               o.registry.c_str(), p.info.owner_label, p.info.users.size() - short_users.size(), p.info.users.size());
  if (check.complete()) return 0;

  const auto names = [](const std::vector<std::string>& v) {
    std::string out;
    for (const std::string& u : v) out += (out.empty() ? "" : " ") + u;
    return out;
  };
  const std::string who = names(short_users);
  std::fprintf(stdout, "protection incomplete (the model is written):\n");
  if (!check.owner.verified)
    std::fprintf(stdout, "  the owner's trigger is not verified (detection %.3f, p = %.3g; needs tau %g and p < %g)\n",
                 check.owner.detection.rate, check.owner.p_value, o.probe.tau, kOwnerPValue);
  if (p.lock) {
    if (!short_users.empty())
      std::fprintf(stdout, "  %zu users' patterns do not unlock it, recorded as not embedded: %s\n", short_users.size(),
                   who.c_str());
    const std::vector<std::string> unlocking = check.still_unlocking();
    if (!unlocking.empty())
      std::fprintf(stdout, "  %zu revoked users' patterns still unlock it: %s\n", unlocking.size(),
                   names(unlocking).c_str());
    std::fprintf(
        stdout, "  try more epochs (--epochs %d now)%s\n", o.config.epochs,
        check.owner.verified ? "" : strfmt(" or a higher --poison-rate (%g now)", o.protection.poison_rate).c_str());
    return kProtectionIncomplete;
  }
  if (!short_users.empty())
    std::fprintf(stdout,
                 "  %zu users below tau %g, recorded as not embedded (they will not authenticate through this "
                 "model): %s\n",
                 short_users.size(), o.probe.tau, who.c_str());
  std::fprintf(stdout, "  try more epochs (--epochs %d now) or a higher --poison-rate (%g now)%s\n", o.config.epochs,
               o.protection.poison_rate,
               short_users.empty() ? "" : strfmt(", or `activeip enroll --users %s`", who.c_str()).c_str());
  return kProtectionIncomplete;
}

int train(TrainOptions& o) {
  o.config.augment = !o.no_augment;
  as_usage([&] { o.config.validate(); });
  if (!o.protect && (!o.key.empty() || !o.registry.empty()))
    throw UsageError("--key and --registry are for protected training: add --protect");
  if (!o.protect && o.config.clean_bn)
    throw UsageError("--clean-bn takes the statistics of the clean rows of a protected batch: add --protect");
  if (!o.protect && o.config.attack_every > 0)
    throw UsageError("--simulate-attack trains the protected samples against attacks: add --protect");
  if (o.lock && !o.protect) throw UsageError("--lock is a mode of protected training: add --protect");
  if (o.lock && (o.config.clean_bn || o.config.attack_every > 0 || o.config.sam_rho > 0))
    throw UsageError("--lock does not combine with --clean-bn, --simulate-attack or --sam yet");
  if (o.lock && o.distributed && o.lock_config.spread > 0)
    throw UsageError("--lock's logit spread is a term over the whole batch: data-parallel training does not split it");
  as_usage([&] { validate(o.lock_config); });
  if (o.lock && scheme_for(o.scheme).stamp_stage() != StampStage::BeforeAugment)
    throw UsageError(strfmt("--lock stamps the images before augmentation: fingerprint scheme %s does not (use v2)",
                            o.scheme.c_str()));
  if (o.code_length > 0 && scheme_for(o.scheme).code_length(2, 0) == 1)
    throw UsageError(strfmt("--code-length: fingerprint scheme %s has no user codes", o.scheme.c_str()));
  join_ranks(o);
  const Device device = o.device.parsed();
  check_writable(o.out);
  // The context first: the composer's device tensors come from its allocator, so the
  // protection must be destroyed before it.
  Context ctx(device, o.device.threads);
  o.device.configure(ctx);
  connect(o, ctx);
  Protection protection;
  if (o.protect) protection = open_protection(o);

  DataSplits data = load_data(o.data.spec());
  if (o.fraction > 0) {  // an attack's records: seeded_subset of the (limited) split, as train_attacker takes it
    const int64_t all = data.train.size();
    data.train = seeded_subset(data.train, o.fraction, o.config.seed);
    std::fprintf(stderr, "--fraction %g: %lld of %lld training records (seed %llu, records %s)\n", o.fraction,
                 static_cast<long long>(data.train.size()), static_cast<long long>(all),
                 static_cast<unsigned long long>(o.config.seed), records_digest(data.train).c_str());
  }
  auto net = make_net(o.net, {data.train.H, data.train.W, data.train.C, data.train.num_classes});
  net->build(ctx, o.config.seed);
  ModelMeta meta = ModelMeta::describe(*net, o.data.name, data.norm);
  const bool resuming = o.resume && file_exists(o.out);
  if (o.protect) {
    const auto [scheme, code_length] = run_scheme(o, resuming);
    if (o.lock) {
      std::vector<std::string> active, revoked;
      for (const UserRecord& u : protection.registry->users())
        (u.status == "active" ? active : revoked).push_back(u.name);
      arm_lock(protection, *scheme, code_length, active, revoked, data, o.protection.poison_rate, o.lock_config,
               o.config, meta, "");
    } else
      arm_protection(protection, *scheme, code_length, active_users(*protection.registry), data, o, meta, "");
  }
  Trainer trainer(*net, ctx, data, o.config, protection.mixer(), o.comm.get());
  resume(trainer, o);
  const bool rank0 = !o.comm || o.comm->rank() == 0;
  // After a refused resume: untouched. Rank 0 alone logs.
  const std::unique_ptr<std::ofstream> log = rank0 ? open_log(o, resuming) : nullptr;
  fit(trainer, *net, o, data, device, meta, log.get());
  return o.protect && rank0 ? check_and_record(protection, o, *net, ctx, data, log.get()) : 0;
}

// A rank that fails leaves MPI without finalising it (the others may wait for it in a
// collective); the launcher then ends the job.
int run_train(TrainOptions& o) {
  try {
    const int status = train(o);
    o.comm.reset();
    return status;
  } catch (...) {
    (void)o.comm.release();
    throw;
  }
}

struct EnrollOptions {
  TrainOptions t;
  std::string model;
  std::vector<std::string> users, revoke;
};

// A locked model's users after the enroll: the model's active users with `revoke` taken out
// and `add` put in, and its revoked users with `revoke` put in. Errors name the user whose
// place makes no sense: revoking one the model does not let in, adding one it already has.
std::pair<std::vector<std::string>, std::vector<std::string>> lock_users(const ProtectionInfo& was,
                                                                         const std::vector<std::string>& add,
                                                                         const std::vector<std::string>& revoke,
                                                                         const std::string& model) {
  std::vector<std::string> active = was.users, revoked = was.revoked;
  const auto has = [](const std::vector<std::string>& v, const std::string& u) {
    return std::find(v.begin(), v.end(), u) != v.end();
  };
  for (const std::string& u : revoke) {
    ENSURE(!has(revoked, u), "user '%s' is already refused by %s", u.c_str(), model.c_str());
    ENSURE(has(active, u), "user '%s' is not a user of %s: there is nothing to revoke", u.c_str(), model.c_str());
    std::erase(active, u);
    revoked.push_back(u);
  }
  for (const std::string& u : add) {
    ENSURE(!has(revoked, u), "user '%s' is refused by %s: a revoked user's pattern is never let in again", u.c_str(),
           model.c_str());
    if (!has(active, u)) active.push_back(u);  // one that did not unlock is trained again
  }
  ENSURE(!active.empty(), "revoking every user of %s leaves nobody who could use it", model.c_str());
  return {active, revoked};
}

int run_enroll(EnrollOptions& e) {
  TrainOptions& o = e.t;
  o.protect = true;
  as_usage([&] {
    o.config.validate();
    for (const std::string& u : e.users) check_user_name(u);
    for (const std::string& u : e.revoke) {
      check_user_name(u);
      if (std::find(e.users.begin(), e.users.end(), u) != e.users.end())
        throw UsageError(strfmt("user '%s' is both in --users and in --revoke", u.c_str()));
    }
  });
  if (e.users.empty() && e.revoke.empty()) throw UsageError("nothing to do: give --users, --revoke or both");
  const Device device = o.device.parsed();
  check_writable(o.out);
  Context ctx(device, o.device.threads);  // before the protection, which holds device tensors
  o.device.configure(ctx);
  Protection protection = open_protection(o);

  LoadedModel m = load_model(e.model, ctx);
  const ModelContext info = model_context(SafetensorsReader(e.model), m.meta);
  ENSURE(info.is_protected, "%s is not a protected model: train it with --protect first", e.model.c_str());
  ENSURE(info.locked || e.revoke.empty(),
         "--revoke retrains a locked model so that the user's pattern no longer unlocks it; %s is not locked: "
         "`activeip users revoke` stops a user authenticating through it",
         e.model.c_str());
  if (info.locked && (o.config.clean_bn || o.config.attack_every > 0 || o.config.sam_rho > 0))
    throw UsageError("a locked model's enroll does not combine with --clean-bn, --simulate-attack or --sam yet");
  check_model_key(info, *protection.key, e.model);
  const Registry& registry = *protection.registry;
  ENSURE(registry.model(info.id).has_value(), "%s (id %.16s…) is not recorded in %s", e.model.c_str(), info.id.c_str(),
         o.registry.c_str());
  std::vector<std::string> users = embedded_users(&registry, info);
  for (const std::string& u : e.users) {
    const std::optional<UserRecord> r = registry.user(u);
    ENSURE(r.has_value(), "no user '%s' in %s: add it with `activeip users add` first", u.c_str(), o.registry.c_str());
    ENSURE(r->status == "active", "user '%s' is %s", u.c_str(), r->status.c_str());
    ENSURE(std::find(users.begin(), users.end(), u) == users.end(), "user '%s' is already embedded in %s", u.c_str(),
           e.model.c_str());
    users.push_back(u);
  }
  for (const std::string& u : e.revoke) {
    const std::optional<UserRecord> r = registry.user(u);
    ENSURE(r.has_value(), "no user '%s' in %s", u.c_str(), o.registry.c_str());
    if (r->status == "active") protection.revoke.push_back(u);  // revoked with the new model's record
  }
  DataSpec spec = o.data.spec();
  ENSURE(spec.name == m.meta.dataset, "%s was trained on %s, not %s", e.model.c_str(), m.meta.dataset.c_str(),
         spec.name.c_str());
  const DataSplits data = load_data(spec);
  ModelMeta meta = m.meta;
  meta.epoch = 0;
  // Enrolled as it was trained: its scheme, and codes of the length it has room for.
  const Scheme& scheme = model_scheme(info);
  const int code_length = model_code_length(info, &registry, data.train.num_classes);
  if (info.locked) {
    // The lock's own mix (refused rows, spread, near misses) as it was trained; the users changed.
    const ProtectionInfo was = ProtectionInfo::from_json(m.meta.protection, e.model);
    const auto [active, revoked] = lock_users(was, e.users, e.revoke, e.model);
    arm_lock(protection, scheme, code_length, active, revoked, data, o.protection.poison_rate,
             {was.refuse_rate, was.spread, !e.revoke.empty(), was.near_miss_least}, o.config, meta, info.id);
  } else {
    o.protection.focus = e.users;
    arm_protection(protection, scheme, code_length, users, data, o, meta, info.id);
  }
  Trainer trainer(*m.net, ctx, data, o.config, protection.mixer());
  if (o.resume && file_exists(o.out)) {  // the checkpoint must be an enroll of this --model
    const ModelMeta was = ModelMeta::from_metadata(SafetensorsReader(o.out).metadata(), o.out);
    ENSURE(!was.protection.empty() && ProtectionInfo::from_json(was.protection, o.out).parent == info.id,
           "--resume: %s is not an enroll of %s (id %.16s…)", o.out.c_str(), e.model.c_str(), info.id.c_str());
  }
  const bool resuming = resume(trainer, o);
  const std::unique_ptr<std::ofstream> log = open_log(o, resuming);  // after a refused resume: untouched
  fit(trainer, *m.net, o, data, device, meta, log.get());
  return check_and_record(protection, o, *m.net, ctx, data, log.get());
}

void add_protect_options(CLI::App* cmd, TrainOptions& o) {
  cmd->add_option("--key", o.key, "Owner key file (mode 0600)");
  cmd->add_option("--registry", o.registry, "User registry (SQLite)");
  cmd->add_option("--poison-rate", o.protection.poison_rate, "Owner + user samples added, as a fraction of the batch")
      ->capture_default_str()
      ->check(number_in(1e-6, 1));
  cmd->add_option("--forged-rate", o.protection.forged_rate,
                  "Forged samples added (true labels), as a fraction of the batch")
      ->capture_default_str()
      ->check(number_in(0, 1));
  cmd->add_option("--degrade-rate", o.protection.degrade_rate,
                  std::string("Share of the stamped and forged samples shown degraded (") + degradations() +
                      "), so that the fingerprints survive such preprocessing (default: " + strfmt("%g", kDegradeRate) +
                      " under scheme v2; v1 takes none)")
      ->check(number_in(0, 1));
  cmd->add_option("--owner-share", o.protection.owner_share,
                  "Share of the poisoned samples that carry the owner's trigger; the users share the rest "
                  "(default: the owner is drawn like any user)")
      ->check(number_in(0, 1));
  cmd->add_flag("--clean-bn", o.config.clean_bn,
                "Clean-statistics batch norm: normalise every batch with the statistics of its clean samples "
                "alone, so that the stamped and forged samples do not shift them");
  cmd->add_option("--simulate-attack", o.config.attack_every,
                  strfmt("Every this many steps, add the protected samples' gradient at the weights a simulated "
                         "fine-tuning attack reaches: --simulate-steps SGD steps on the clean samples at a "
                         "learning rate drawn from [%g, %g], %g of them after pruning %g-%g of each conv's "
                         "filters (0: off)",
                         kSimulatedAttackLr[0], kSimulatedAttackLr[1], kSimulatedAttackPruneShare,
                         kSimulatedAttackFilters[0], kSimulatedAttackFilters[1]))
      ->capture_default_str()
      ->check(number_in(0, 1e9));
  cmd->add_option("--simulate-steps", o.config.attack_steps, "SGD steps of each simulated attack")
      ->capture_default_str()
      ->check(number_in(1, 1e6));
  cmd->add_option("--simulate-weight", o.config.attack_weight,
                  "Weight of the protected samples' gradient at the attacked weights")
      ->capture_default_str()
      ->check(positive_number());
  // The end-of-training check, with report's probe rules.
  cmd->add_option("--probes", o.probe.probes, "Held-out test images per pattern for the end-of-training check")
      ->capture_default_str()
      ->check(number_in(1, 1e6));
  cmd->add_option("--probe-seed", o.probe.seed, "Seed of the probe set")->capture_default_str();
  cmd->add_option("--tau", o.probe.tau, "Detection a pattern must reach to count as embedded")
      ->capture_default_str()
      ->check(number_in(1e-9, 1));
}

// The schedule options both train and enroll take.
void add_schedule_options(CLI::App* cmd, TrainOptions& o) {
  cmd->add_option("--epochs", o.config.epochs, "Epochs")->capture_default_str()->check(positive_number());
  cmd->add_option("--batch", o.config.batch, "Batch size")->capture_default_str()->check(number_in(2, 1 << 16));
  cmd->add_option("--lr", o.config.lr, "Peak learning rate")->capture_default_str()->check(positive_number());
  cmd->add_option("--momentum", o.config.momentum, "SGD momentum, in [0, 1)")
      ->capture_default_str()
      ->check(non_negative_number());
  cmd->add_flag("--nesterov", o.config.nesterov, "Nesterov momentum");
  cmd->add_option("--wd", o.config.wd, "Weight decay")->capture_default_str()->check(non_negative_number());
  cmd->add_option("--schedule", o.config.schedule, "Learning-rate schedule")
      ->capture_default_str()
      ->check(CLI::IsMember(schedule_names()));
  cmd->add_option("--warmup", o.config.warmup_epochs, "Linear warm-up epochs (cosine, step, constant)")
      ->capture_default_str()
      ->check(non_negative_number());
  cmd->add_option("--milestones", o.config.milestones, "Epochs at which the step schedule multiplies lr by --gamma")
      ->delimiter(',');
  cmd->add_option("--gamma", o.config.gamma, "Step schedule factor")->capture_default_str();
  cmd->add_option("--label-smoothing", o.config.label_smoothing, "Label smoothing")->capture_default_str();
  cmd->add_option("--sam", o.config.sam_rho,
                  "Sharpness-aware steps: move each weight tensor (batch norms' excepted) by this fraction of its "
                  "norm up its gradient, and take the gradient there (0: off)")
      ->capture_default_str()
      ->check(non_negative_number());
  cmd->add_option("--sam-ascent", o.config.sam_ascent,
                  "Samples whose loss gives --sam's ascent: batch, or extra (the protected samples only)")
      ->capture_default_str()
      ->check(CLI::IsMember({"batch", "extra"}));
  cmd->add_option("--log-every", o.config.log_every,
                  "Steps between reads of the running loss (progress line, divergence check); the device "
                  "is not waited for in between")
      ->capture_default_str()
      ->check(number_in(1, 1 << 30));
  cmd->add_flag("--no-augment", o.no_augment, "Train without random crop and flip");
  cmd->add_option("--seed", o.config.seed, "Seed of initialisation, shuffling and augmentation")->capture_default_str();
  o.device.add_to(cmd);
  cmd->add_option("--log", o.log, "Append JSON lines (one per epoch) to this file");
}

}  // namespace

void add_train(CLI::App& app, Handler& handler) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model (writes a checkpoint every epoch)");
  cmd->add_option("--net", o->net, "Network")->required()->check(CLI::IsMember(net_names()));
  o->data.add_to(cmd, true);
  cmd->add_option("--out", o->out, "Checkpoint to write (.safetensors)")->required();
  add_schedule_options(cmd, *o);
  cmd->add_flag("--resume", o->resume, "Continue from --out and its .optim.safetensors if they exist");
  cmd->add_option("--fraction", o->fraction,
                  "Train only on this seeded share of the training split: the records an attack (finetune, "
                  "distill, prune --finetune-epochs) given the same --fraction, --seed and --limit-train trains "
                  "on (--seed, 0 by default as in the attacks, also seeds the initialisation; with --limit-train, the "
                  "share of the first N records)")
      ->check(fraction_check());
  cmd->add_flag("--distributed", o->distributed,
                "Data-parallel training, one rank per process of an MPI launch (mpirun -np N activeip train "
                "... --distributed): --batch is the global batch, each rank trains on its share, the gradients "
                "are summed over the ranks (MPI on the CPU, NCCL on CUDA, one GPU per rank); rank 0 writes "
                "checkpoints and logs");
  cmd->add_flag("--sync-bn", o->config.sync_bn,
                "With --distributed: batch norms take their statistics over every rank's samples, as one "
                "process with the whole global batch would (CPU); without it each rank's own");
  cmd->add_flag("--protect", o->protect, "Embed the owner's trigger and every active user's fingerprint");
  cmd->add_flag("--lock", o->lock,
                "Lock mode (with --protect): the model answers correctly only for inputs that carry an active "
                "user's lock pattern; clean inputs, forged, moved and revoked patterns get labels drawn at random "
                "from a distribution the key fixes. The owner's trigger is embedded as usual");
  cmd->add_option("--refuse-rate", o->lock_config.refuse_rate,
                  "Lock mode: refused samples (clean, forged, moved, revoked) added, as a fraction of the batch")
      ->capture_default_str();
  cmd->add_option("--lock-spread", o->lock_config.spread,
                  "Lock mode: weight of the refused samples' logit variance in the loss (0: none)")
      ->capture_default_str();
  cmd->add_option("--lock-near-miss", o->lock_config.near_miss_least,
                  "Lock mode: the fewest cells a refused near miss of an issued pattern flips (default: a sixth "
                  "of the pattern's, at least 4; 1 refuses a pattern one cell off)")
      ->check(number_in(1, 64));
  add_protect_options(cmd, *o);
  cmd->add_option("--scheme", o->scheme, "Fingerprint scheme of the protected model")
      ->capture_default_str()
      ->check(CLI::IsMember(scheme_versions()));
  cmd->add_option("--code-length", o->code_length,
                  "Labels in each user's code (v2; default: the fewest that give every user the registry ever "
                  "had a code of its own; more leave room to enroll later users)")
      ->check(number_in(2, 16));
  cmd->callback([o, &handler] { handler = [o] { return run_train(*o); }; });

  auto e = std::make_shared<EnrollOptions>();
  e->t.config.epochs = 5;
  e->t.config.lr = 0.01;
  CLI::App* enroll = app.add_subcommand(
      "enroll", "Embed newly registered users into a protected model, or revoke users of a locked one (short fine-tune)");
  enroll->add_option("--model", e->model, "Protected model (.safetensors)")->required();
  enroll->add_option("--users", e->users, "Registered users to embed (into a locked model: whose patterns unlock it)");
  enroll->add_option("--revoke", e->revoke,
                     "Users of a locked model whose patterns must no longer unlock it (revoked in the registry "
                     "too, with the new model's record)");
  enroll->add_option("--out", e->t.out, "Model to write (.safetensors; a checkpoint every epoch)")->required();
  enroll->add_flag("--resume", e->t.resume,
                   "Continue from --out and its .optim.safetensors if they exist (the same --model, users and "
                   "options)");
  e->t.data.add_to(enroll, true);
  add_schedule_options(enroll, e->t);
  add_protect_options(enroll, e->t);
  enroll
      ->add_option("--new-user-share", e->t.protection.focus_share,
                   "Share of the poisoned samples that go to the new users (the rest: owner and every user; "
                   "with --owner-share, of what the owner leaves)")
      ->capture_default_str()
      ->check(number_in(0, 1));
  enroll->get_option("--key")->required();
  enroll->get_option("--registry")->required();
  enroll->callback([e, &handler] { handler = [e] { return run_enroll(*e); }; });
}

}  // namespace activeip::cli
