// The attacks on a protected model: prune (global or per-layer magnitude pruning, filter
// pruning that leaves a narrower model, or fine-pruning), optionally fine-tuned with the mask
// held; finetune (FTLL, FTAL, RTLL, RTAL)
// on the attacker's seeded fraction of the training split, optionally overwriting (protected
// training under the attacker's own key and registry); distill (a fresh student trained on
// the teacher's soft labels alone); quantize (the weights rounded to B-bit integers, as before
// deployment). Each writes the attacked model (and its pruning mask
// beside it, when it has one) and reports what survives: clean accuracy against the original,
// owner verification, user authentication, forged fingerprints. transform puts the attacker's
// input preprocessing in front of the unchanged model and reports the same; it writes nothing.
// invert reverse-engineers a locked model's token (a patch that unlocks it) from the attacker's
// share of the training split and reports the accuracy it restores; it writes nothing either.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "attacks/distill.h"
#include "attacks/finetune.h"
#include "attacks/invert.h"
#include "attacks/prune.h"
#include "attacks/quantize.h"
#include "attacks/runner.h"
#include "attacks/transform.h"
#include "cli/commands.h"
#include "cli/protection.h"
#include "engine/io/safetensors.h"
#include "nets/nets.h"

namespace activeip::cli {

namespace {

// What every attack takes: the model, the output, the data, the probing options, the
// attacker's training options.
struct AttackOptions {
  std::string model, out, key, registry;
  DataOptions data;
  DeviceOptions device;
  ProbeConfig probe;
  AssessConfig assess;
  TrainConfig train;  // the attacker's fine-tuning
  double fraction = 0.1;
  bool json = false;

  // model_option: --model, or distill's --teacher. writes: the attack writes a model (--out);
  // trains: it trains (the training options). transform does neither, quantize only writes.
  // reports: the protection report's options (--key, --registry, the probes, forged fingerprints,
  // insiders); invert measures the lock its own way and adds a --key and --registry of its own.
  void add_to(CLI::App* cmd, const char* model_option = "--model", const char* model_help = "Model to attack",
              bool writes = true, bool trains = true, bool reports = true) {
    cmd->add_option(model_option, model, strfmt("%s (.safetensors)", model_help))->required();
    if (writes) cmd->add_option("--out", out, "Attacked model to write (.safetensors)")->required();
    data.add_to(cmd, true);
    if (reports) {
      cmd->add_option("--key", key, "Owner key file: report owner verification");
      cmd->add_option("--registry", registry, "User registry: report user authentication and forged fingerprints");
      cmd->add_option("--probes", probe.probes, "Probe images per target")
          ->capture_default_str()
          ->check(number_in(1, 1e6));
      cmd->add_option("--probe-seed", probe.seed, "Seed of the probe set")->capture_default_str();
      cmd->add_option("--tau", probe.tau, "Detection threshold")->capture_default_str()->check(number_in(1e-9, 1));
    }
    cmd->add_option("--eval-batch", probe.batch, "Inference batch size")
        ->capture_default_str()
        ->check(number_in(1, 1 << 16));
    if (reports) {
      cmd->add_option("--count", assess.forge_count, "Forged fingerprints")
          ->capture_default_str()
          ->check(number_in(1, 1e7));
      cmd->add_option("--forge-seed", assess.forge_seed, "Seed of the forged keys (default: fresh random keys)");
      cmd->add_flag("--insiders", assess.insiders,
                    "Also present every user's patterns as every other user: as issued, flipped, at the other corners "
                    "and shifted by 1-4 pixels");
    }
    device.add_to(cmd);
    cmd->add_flag("--json", json, "Print one JSON object");
    if (!writes || !trains) return;
    cmd->add_option("--fraction", fraction, "The attacker's share of the training split (a seeded subset)")
        ->capture_default_str()
        ->check(fraction_check());
    cmd->add_option("--lr", train.lr, "Fine-tuning learning rate (peak)")
        ->capture_default_str()
        ->check(positive_number());
    cmd->add_option("--batch", train.batch, "Fine-tuning batch size")
        ->capture_default_str()
        ->check(number_in(2, 1 << 16));
    cmd->add_option("--momentum", train.momentum, "SGD momentum, in [0, 1)")
        ->capture_default_str()
        ->check(number_in(0, 0.999999));
    cmd->add_option("--wd", train.wd, "Weight decay")->capture_default_str()->check(non_negative_number());
    cmd->add_option("--log-every", train.log_every, "Fine-tuning steps between reads of the running loss")
        ->capture_default_str()
        ->check(number_in(1, 1 << 30));
    cmd->add_option("--schedule", train.schedule, "Learning-rate schedule")
        ->capture_default_str()
        ->check(CLI::IsMember(schedule_names()));
    cmd->add_option("--warmup", train.warmup_epochs, "Linear warm-up epochs (cosine, step, constant)")
        ->capture_default_str()
        ->check(non_negative_number());
    cmd->add_option("--seed", train.seed, "Seed of the attacker's subset, shuffling and re-initialisation")
        ->capture_default_str();
  }
};

void check_out(const AttackOptions& o) {
  if (std::filesystem::is_directory(o.out)) throw UsageError(strfmt("--out %s is a directory", o.out.c_str()));
  if (std::filesystem::absolute(o.out).lexically_normal() == std::filesystem::absolute(o.model).lexically_normal())
    throw UsageError(strfmt("--out %s is the model being attacked; write the attacked copy elsewhere", o.out.c_str()));
}

bool same_path(const std::string& a, const std::string& b) {
  return !a.empty() && !b.empty() &&
         std::filesystem::absolute(a).lexically_normal() == std::filesystem::absolute(b).lexically_normal();
}

// The target of an attack with its Context (made first: the target's and an overwriting
// attacker's device tensors come from its allocator), after the option checks that need no file.
struct Target {
  Context ctx;
  AttackTarget target;

  Target(const AttackOptions& o, bool needs_train)
      : ctx(o.device.parsed(), o.device.threads), target(open(ctx, o, needs_train)) {}

  static AttackTarget open(Context& ctx, const AttackOptions& o, bool needs_train) {
    o.device.configure(ctx);
    if (!o.registry.empty() && o.key.empty()) throw UsageError("--registry needs --key");
    if (o.data.name.empty() && !o.key.empty())
      throw UsageError("--key needs --data: owner verification and the users are measured on the test split");
    AttackTargetSpec spec{o.model, o.key, o.registry, {}, needs_train, o.probe.batch};
    if (!o.data.name.empty()) spec.data = o.data.spec();
    return open_attack_target(ctx, spec);
  }
};

void log_line(const std::string& line) {
  std::fprintf(stderr, "%s\n", line.c_str());
}

// The attacker's training on its share of the training split, evaluated at the probes' batch.
void train_attacker(Target& t, const AttackOptions& o, Network& net, TrainConfig config, const AttackTraining& with) {
  config.eval_batch = o.probe.batch;
  train_attacker(t.target, t.ctx, net, config, o.fraction, with, log_line);
}

// The overwriting attacker's own protection: its key, its registry, the composer.
struct Overwrite {
  std::string key, registry;
  Protection p;
};

// The report of an attack run without --data: what was written, and that nothing was measured
// (the accuracies null, as the owner, users and forged fingerprints are absent without --key).
int report_unmeasured(const Target& t, const AttackOptions& o, const nlohmann::json& attack, const ModelMeta& meta) {
  const char* why = "no --data: the attacked model was written but nothing was measured";
  if (o.json) {
    const nlohmann::json j = {{"model", o.model},
                              {"out", o.out},
                              {"dataset", nullptr},
                              {"net", meta.net},
                              {"attack", attack},
                              {"clean_accuracy", nullptr},
                              {"original_accuracy", nullptr},
                              {"accuracy_drop", nullptr},
                              {"measured", false},
                              {"not_measured", why},
                              {"device", t.ctx.device().str()},
                              {"threads", t.ctx.threads()}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("%-34s %s -> %s\n", "attacked model", o.model.c_str(), o.out.c_str());
  std::printf("(no --data: nothing was measured; --data measures the accuracies, --key/--registry the protection)\n");
  return 0;
}

// Measures the attacked network `net` and prints the report: the original owner's protection
// with --key/--registry, and for an overwriting attack the attacker's own (the model, already
// written, is recorded in the attacker's registry first). `preprocess`: the attacker's input
// preprocessing in front of `net` (transform, which writes no model: o.out is empty).
int report(Target& t, const AttackOptions& o, const nlohmann::json& attack, Network& net, const ModelMeta& meta,
           Overwrite* overwrite = nullptr, const BatchAlter& preprocess = {}) {
  std::optional<Prober> prober;
  const Assessment a =
      assess_attacked(t.target, t.ctx, net, o.probe, o.assess, prober, overwrite != nullptr, preprocess);
  nlohmann::json attacker;
  std::optional<OwnerVerification> attacker_owner;
  std::optional<UsersSummary> attacker_users;
  if (overwrite) {
    Protection& p = overwrite->p;
    // Measured and recorded as the owner's own protected training is, under the attacker's
    // scheme (a prober of its own when that is not the original's).
    std::optional<Prober> own;
    if (&p.composer->scheme() != &prober->scheme() || p.info.code_length != prober->spec().code_length)
      own.emplace(net, t.ctx, t.target.data.test, t.target.data.norm, o.probe, p.composer->scheme(),
                  p.info.code_length);
    Prober& attacker_prober = own ? *own : *prober;
    const EmbeddingCheck check = check_embedding(attacker_prober, *p.key, identities(*p.registry, p.info.users));
    const std::string id = record_protected(p, o.out, meta.net, meta.dataset, &check);
    const ModelContext written = model_context(SafetensorsReader(o.out), meta);
    attacker_owner = check.owner;
    attacker_users = authenticate_users(attacker_prober, *p.key, *p.registry, written, p.info.users);
    attacker = {{"key_id", p.info.key_id},
                {"model_id", id},
                {"registry", overwrite->registry},
                {"owner", nlohmann::json::parse(attacker_owner->to_json())},
                {"users", nlohmann::json::parse(attacker_users->to_json())}};
  }
  if (o.json) {
    nlohmann::json j = {{"model", o.model},          {"out", o.out.empty() ? nlohmann::json() : nlohmann::json(o.out)},
                        {"dataset", o.data.name},    {"net", meta.net},
                        {"attack", attack},          {"probes", o.probe.probes},
                        {"tau", o.probe.tau},        {"device", t.ctx.device().str()},
                        {"threads", t.ctx.threads()}};
    j.update(nlohmann::json::parse(a.to_json()));
    j["measured"] = true;
    if (overwrite) j["attacker"] = attacker;
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  if (o.out.empty()) {
    std::string chain;
    for (const auto& spec : attack.value("transforms", nlohmann::json::array()))
      chain += (chain.empty() ? "" : ", ") + spec.get<std::string>();
    std::printf("%-34s %s behind %s (weights unchanged, no model written)\n", "attacked model", o.model.c_str(),
                chain.c_str());
  } else {
    std::printf("%-34s %s -> %s\n", "attacked model", o.model.c_str(), o.out.c_str());
  }
  a.print(stdout);
  if (!t.target.key) std::printf("(no --key: owner verification, users and forged fingerprints not measured)\n");
  if (overwrite) {
    std::printf("%-34s %s (key id %s, recorded in %s)\n", "attacker's protection", o.out.c_str(),
                overwrite->p.info.key_id.c_str(), overwrite->registry.c_str());
    std::printf("%-34s %s (detection %.3f, p = %.3g)\n", "attacker owner verification",
                attacker_owner->verified ? "verified" : "NOT verified", attacker_owner->detection.rate,
                attacker_owner->p_value);
    std::printf("%-34s %d of %d (detection mean %.3f, min %.3f)\n", "attacker users authenticated",
                attacker_users->authenticated, attacker_users->count, attacker_users->mean_detection,
                attacker_users->min_detection);
  }
  return 0;
}

// Writes the attacked network `net` with `meta` and the attack recorded in its config (and its
// mask beside it as one unit), then reports (see report()).
int finish(Target& t, const AttackOptions& o, const nlohmann::json& attack, const Tensor& mask, Network& net,
           ModelMeta meta, Overwrite* overwrite = nullptr) {
  write_attacked(o.out, net, t.ctx, mask, meta, attack);
  if (!t.target.measured) return report_unmeasured(t, o, attack, meta);
  return report(t, o, attack, net, meta, overwrite);
}

struct PruneOptions {
  AttackOptions a;
  std::string method = "global";
  double sparsity = 0.5;
  int finetune_epochs = 0;
  int activation_samples = 1000;
};

int run_prune(PruneOptions& o) {
  check_out(o.a);
  const PruneMethod method = parse_prune_method(o.method);
  if (o.a.data.name.empty()) {  // pruning itself reads no data; these do
    if (method == PruneMethod::FinePrune)
      throw UsageError(
          "--method fineprune ranks channels by their activations on the attacker's data: it needs --data");
    if (o.finetune_epochs > 0)
      throw UsageError("--finetune-epochs trains on the attacker's share of the training split: it needs --data");
  }
  TrainConfig config = o.a.train;
  config.epochs = std::max(1, o.finetune_epochs);
  as_usage([&] { config.validate(); });
  Target t(o.a, method == PruneMethod::FinePrune || o.finetune_epochs > 0);
  nlohmann::json attack = {{"kind", "prune"}, {"method", o.method}, {"sparsity", o.sparsity}};
  const PruneSpec spec{method, o.sparsity, o.a.fraction, o.activation_samples, o.a.probe.batch, config.seed};
  const Tensor mask = prune_target(t.target, t.ctx, spec, attack, log_line);
  if (o.finetune_epochs > 0) {
    AttackTraining with;
    with.mask = mask;
    train_attacker(t, o.a, *t.target.m.net, config, with);
    attack["finetune"] = nlohmann::json::parse(config.to_json());
    attack["fraction"] = o.a.fraction;
  }
  return finish(t, o.a, attack, mask, *t.target.m.net, t.target.m.meta);
}

struct FinetuneOptions {
  AttackOptions a;
  std::string mode;
  std::string overwrite_key, overwrite_registry;
  ProtectConfig overwrite_rates;  // the attacker's --poison-rate and --forged-rate
};

int run_finetune(FinetuneOptions& o) {
  check_out(o.a);
  const FinetuneMode mode = parse_finetune_mode(o.mode);
  as_usage([&] { o.a.train.validate(); });
  if (o.overwrite_key.empty() != o.overwrite_registry.empty())
    throw UsageError(o.overwrite_key.empty() ? "--overwrite-registry needs --overwrite-key"
                                             : "--overwrite-key needs --overwrite-registry");
  if (same_path(o.overwrite_registry, o.a.registry))
    throw UsageError(
        strfmt("--overwrite-registry %s is the owner's --registry: the overwriting attacker brings its own",
               o.overwrite_registry.c_str()));
  Target t(o.a, true);
  Network& net = *t.target.m.net;
  // After the Target: its Context must outlive the composer's device tensors.
  std::unique_ptr<Overwrite> overwrite;
  if (!o.overwrite_key.empty()) {
    overwrite = std::make_unique<Overwrite>();
    overwrite->key = o.overwrite_key;
    overwrite->registry = o.overwrite_registry;
    overwrite->p = open_protection(o.overwrite_key, o.overwrite_registry, o.overwrite_rates);
    if (overwrite->p.key->id() == t.target.original.key_id)
      throw UsageError(strfmt("--overwrite-key %s is the key of %s: the overwriting attacker brings its own",
                              o.overwrite_key.c_str(), o.a.model.c_str()));
  }
  // A pruned model keeps its pruned weights at zero through the fine-tune.
  const Tensor mask = mask_beside(o.a.model, net, t.ctx);
  const Tensor trainable = prepare_finetune(net, t.ctx, mode, o.a.train.seed);
  ModelMeta meta = t.target.m.meta;
  TrainConfig config = o.a.train;
  if (overwrite) {
    // The attacker's own trigger and users, mixed in as `train --protect` mixes them, under the
    // attacked model's scheme; the copy then claims to be the attacker's model (its protection
    // record, key id included).
    arm_protection(overwrite->p, model_scheme(t.target.original), 0, active_users(*overwrite->p.registry),
                   t.target.data, o.overwrite_rates, config, meta, "", overwrite->registry);
  }
  nlohmann::json attack = {
      {"kind", "finetune"},
      {"mode", o.mode},
      {"fraction", o.a.fraction},
      {"trained",
       mode == FinetuneMode::FTLL || mode == FinetuneMode::RTLL ? net.last_layer_prefix() + "*" : std::string("all")},
      {"masked", mask.defined() && mask.numel() > 0},
      {"finetune", nlohmann::json::parse(config.to_json())}};
  if (overwrite)
    attack["overwrite"] = {{"key_id", overwrite->p.info.key_id},
                           {"owner_label", overwrite->p.info.owner_label},
                           {"users", overwrite->p.info.users}};
  AttackTraining with;
  with.mask = mask;
  with.trainable = trainable;
  if (overwrite) with.composer = overwrite->p.composer.get();
  train_attacker(t, o.a, net, config, with);
  return finish(t, o.a, attack, mask, net, meta, overwrite.get());
}

struct DistillOptions {
  AttackOptions a;
  std::string net;
  float temperature = 4.0f;
};

int run_distill(DistillOptions& o) {
  check_out(o.a);
  as_usage([&] { o.a.train.validate(); });
  Target t(o.a, true);
  Network& teacher = *t.target.m.net;
  const NetInfo& ti = teacher.info();
  // After the Target: the student's buffers come from its Context's allocator.
  std::unique_ptr<Network> student = make_net(o.net, {ti.H, ti.W, ti.C, ti.num_classes});
  check_distillable(ti, student->info());
  student->build(t.ctx, o.a.train.seed);
  TeacherTargets soft_labels(teacher, o.temperature);
  const nlohmann::json attack = {{"kind", "distill"},        {"teacher_net", ti.name},
                                 {"student_net", o.net},     {"temperature", o.temperature},
                                 {"fraction", o.a.fraction}, {"distill", nlohmann::json::parse(o.a.train.to_json())}};
  AttackTraining with;
  with.targets = &soft_labels;
  train_attacker(t, o.a, *student, o.a.train, with);
  // The student is nobody's protected model: no protection record of its own; the report
  // still measures the teacher's owner and users on it.
  const ModelMeta meta = ModelMeta::describe(*student, t.target.m.meta.dataset, t.target.data.norm);
  return finish(t, o.a, attack, Tensor(), *student, meta);
}

struct TransformOptions {
  AttackOptions a;
  std::vector<std::string> specs;
  uint64_t seed = 0;
};

int run_transform(TransformOptions& o) {
  // The specs first: a bad one is refused before any file is read.
  std::vector<Transform> transforms;
  for (const std::string& spec : o.specs) transforms.push_back(parse_transform(spec));
  Target t(o.a, false);
  const Dataset& test = t.target.data.test;
  InputPipeline pipeline(transforms, t.target.data.norm, o.seed, test.H, test.W, test.C);
  const nlohmann::json attack = {{"kind", "transform"}, {"transforms", pipeline.specs()}, {"seed", o.seed}};
  log_line(strfmt("the attacker's preprocessing in front of %s: %s (seed %llu)", o.a.model.c_str(),
                  attack["transforms"].dump().c_str(), static_cast<unsigned long long>(o.seed)));
  return report(t, o.a, attack, *t.target.m.net, t.target.m.meta, nullptr, pipeline.alter());
}

struct QuantizeOptions {
  AttackOptions a;
  int bits = 8;
  std::string granularity = "channel";
};

int run_quantize(QuantizeOptions& o) {
  check_out(o.a);
  const QuantizeSpec spec{o.bits, parse_quantize_granularity(o.granularity)};
  Target t(o.a, false);
  Network& net = *t.target.m.net;
  // A pruned model's zeros stay zero (round(0) = 0): its mask goes along for a later fine-tune.
  const Tensor mask = mask_beside(o.a.model, net, t.ctx);
  const QuantizeStats st = quantize_weights(net, t.ctx, spec);
  const nlohmann::json attack = {{"kind", "quantize"},           {"bits", o.bits},
                                 {"granularity", o.granularity}, {"tensors", st.tensors},
                                 {"weights", st.weights},        {"relative_error", st.relative_error},
                                 {"masked", mask.defined()}};
  log_line(
      strfmt("quantization: %d weight tensors (%lld weights) rounded to %d-bit integers per %s, relative error "
             "%.4g",
             st.tensors, static_cast<long long>(st.weights), o.bits, o.granularity.c_str(), st.relative_error));
  return finish(t, o.a, attack, mask, net, t.target.m.meta);
}

struct InvertOptions {
  AttackOptions a;
  InvertConfig config;
};

int run_invert(InvertOptions& o) {
  // Before any data is read or measured: the attack needs a locked model.
  check_locked(o.a.model);
  o.config.eval_batch = o.a.probe.batch;
  Target t(o.a, true);
  const InvertReport r = invert_target(t.target, t.ctx, o.a.fraction, o.config, log_line);
  if (o.a.json) {
    nlohmann::json j = {{"attack", "invert"},
                        {"model", o.a.model},
                        {"dataset", o.a.data.name},
                        {"net", t.target.m.meta.net},
                        {"fraction", o.a.fraction},
                        {"device", t.ctx.device().str()},
                        {"threads", t.ctx.threads()}};
    j.update(r.to_json());
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("%-34s %s (weights unchanged, nothing written)\n", "inverted lock of", o.a.model.c_str());
  std::printf("%-34s %g of the %s training split\n", "attacker's share", o.a.fraction, o.a.data.name.c_str());
  r.print(stdout);
  if (!t.target.key) std::printf("(no --key: the users' own lock patterns are not measured for reference)\n");
  return 0;
}

}  // namespace

void add_attack(CLI::App& app, Handler& handler) {
  auto p = std::make_shared<PruneOptions>();
  p->a.train.epochs = 1;
  p->a.train.lr = 0.01;
  p->a.train.schedule = "constant";
  CLI::App* prune = app.add_subcommand("prune", "Prune a model (magnitude or fine-pruning) and report what survives");
  p->a.add_to(prune);
  prune
      ->add_option("--method", p->method,
                   "global | layer magnitude pruning, filter (L1, Li et al. 2017: removes filters, the model "
                   "shrinks), or fineprune (Liu et al. 2018)")
      ->capture_default_str()
      ->check(CLI::IsMember({"global", "layer", "filter", "fineprune"}));
  prune
      ->add_option("--sparsity", p->sparsity,
                   "Fraction of conv/linear weights zeroed (filter: of each prunable conv's filters; fineprune: "
                   "of the last stage's channels)")
      ->capture_default_str()
      ->check(number_in(0, 1));
  prune->add_option("--finetune-epochs", p->finetune_epochs, "Fine-tune with the mask held for this many epochs")
      ->capture_default_str()
      ->check(number_in(0, 1e6));
  prune
      ->add_option("--activation-samples", p->activation_samples,
                   "fineprune: records of the attacker's subset whose activations rank the channels")
      ->capture_default_str()
      ->check(number_in(1, 1e9));
  // global, layer and filter pruning read no data: without --data the model is pruned and
  // written and nothing is measured.
  prune->get_option("--data")->required(false)->description(
      "Dataset (fineprune, --finetune-epochs and every measurement need it; without it nothing is measured)");
  for (const char* o : {"--data-dir", "--limit-train", "--limit-test"})
    prune->get_option(o)->needs(prune->get_option("--data"));
  prune->callback([p, &handler] { handler = [p] { return run_prune(*p); }; });

  auto q = std::make_shared<QuantizeOptions>();
  CLI::App* quantize = app.add_subcommand(
      "quantize",
      "Round a model's conv and linear weights to B-bit integers (as before deployment) and report what "
      "survives");
  q->a.add_to(quantize, "--model", "Model to attack", true, false);
  quantize->add_option("--bits", q->bits, "Integer bits per weight (8: int8, 4: int4)")
      ->capture_default_str()
      ->check(number_in(2, 16));
  quantize->add_option("--granularity", q->granularity, "One scale per output channel, or per weight tensor")
      ->capture_default_str()
      ->check(CLI::IsMember({"channel", "tensor"}));
  quantize->get_option("--data")->required(false)->description(
      "Dataset (every measurement needs it; without it the model is quantized and written, nothing measured)");
  for (const char* o : {"--data-dir", "--limit-train", "--limit-test"})
    quantize->get_option(o)->needs(quantize->get_option("--data"));
  quantize->callback([q, &handler] { handler = [q] { return run_quantize(*q); }; });

  auto f = std::make_shared<FinetuneOptions>();
  f->a.train.epochs = 5;
  f->a.train.lr = 0.01;
  CLI::App* finetune =
      app.add_subcommand("finetune", "Fine-tune a model (FTLL, FTAL, RTLL, RTAL) and report what survives");
  f->a.add_to(finetune);
  finetune->add_option("--mode", f->mode, "ftll | ftal | rtll | rtal (Adi et al. 2018)")
      ->required()
      ->check(CLI::IsMember({"ftll", "ftal", "rtll", "rtal"}));
  finetune->add_option("--epochs", f->a.train.epochs, "Epochs")->capture_default_str()->check(positive_number());
  finetune->add_option("--overwrite-key", f->overwrite_key,
                       "Overwriting: fine-tune with the attacker's own key's trigger and users embedded");
  finetune->add_option(
      "--overwrite-registry", f->overwrite_registry,
      "Overwriting: the attacker's registry (its active users are embedded; the copy is recorded there)");
  finetune
      ->add_option("--poison-rate", f->overwrite_rates.poison_rate,
                   "Overwriting: the attacker's owner + user samples added, as a fraction of the batch")
      ->capture_default_str()
      ->check(number_in(1e-6, 1));
  finetune
      ->add_option("--forged-rate", f->overwrite_rates.forged_rate,
                   "Overwriting: forged samples added (true labels), as a fraction of the batch")
      ->capture_default_str()
      ->check(number_in(0, 1));
  finetune->callback([f, &handler] { handler = [f] { return run_finetune(*f); }; });

  auto d = std::make_shared<DistillOptions>();
  d->a.train.epochs = 10;
  d->a.train.lr = 0.05;
  d->a.train.batch = 128;
  d->a.train.schedule = "cosine";
  CLI::App* distill = app.add_subcommand(
      "distill", "Distil a protected teacher into a fresh student (soft labels only) and report what survives");
  d->a.add_to(distill, "--teacher", "Protected teacher to distil");
  distill->add_option("--net", d->net, "The student network (any registered net)")
      ->required()
      ->check(CLI::IsMember(net_names()));
  distill->add_option("--epochs", d->a.train.epochs, "Epochs")->capture_default_str()->check(positive_number());
  distill->add_option("--temperature", d->temperature, "Softmax temperature T of the soft labels (loss T²·KL)")
      ->capture_default_str()
      ->check(positive_number());
  distill->callback([d, &handler] { handler = [d] { return run_distill(*d); }; });

  auto x = std::make_shared<TransformOptions>();
  CLI::App* transform = app.add_subcommand(
      "transform",
      "Put the attacker's input preprocessing in front of a model and report what survives (the weights are not "
      "changed: no model is written)");
  x->a.add_to(transform, "--model", "Model to attack", false);
  transform
      ->add_option("--transform", x->specs,
                   strfmt("Input transform, repeatable, applied in order to every input the model sees (the "
                          "clean test split and every probe, after its stamp): %s",
                          transform_specs()))
      ->required();
  transform->add_option("--seed", x->seed, "Seed of the random transforms (shift, noise, shrinkpad)")
      ->capture_default_str();
  transform->callback([x, &handler] { handler = [x] { return run_transform(*x); }; });

  auto v = std::make_shared<InvertOptions>();
  CLI::App* invert = app.add_subcommand(
      "invert",
      "Reverse-engineer a locked model's token (Neural Cleanse-style): optimise a lock-sized patch on the attacker's "
      "share of the training split, the weights frozen, and report the accuracy it unlocks on the test split "
      "(nothing is written)");
  v->a.add_to(invert, "--model", "Locked model to attack", false, false, false);
  invert->add_option("--key", v->a.key, "Owner key file: also measure the users' own lock patterns, for reference");
  invert->add_option("--registry", v->a.registry, "User registry: of the model's users, measure its active ones")
      ->needs(invert->get_option("--key"));
  invert->add_option("--fraction", v->a.fraction, "The attacker's share of the training split (a seeded subset)")
      ->capture_default_str()
      ->check(fraction_check());
  invert->add_option("--steps", v->config.steps, "Adam steps at each position")
      ->capture_default_str()
      ->check(number_in(1, 1e7));
  invert->add_option("--lr", v->config.lr, "Adam's step size, on the patch's free variables (pixel = 127.5(1 + tanh))")
      ->capture_default_str()
      ->check(positive_number());
  invert->add_option("--batch", v->config.batch, "The attacker's records per step")
      ->capture_default_str()
      ->check(number_in(1, 1 << 16));
  invert->add_option("--seed", v->config.seed, "Seed of the attacker's subset, the starting patches and the batches")
      ->capture_default_str();
  invert
      ->add_option("--positions", v->config.positions,
                   "Where to look for the lock: any of top-left top-right bottom-left bottom-right (the corners, at "
                   "the lock's 4-pixel inset) center (default: all five)")
      ->check(CLI::IsMember(patch_position_names()));
  invert->callback([v, &handler] { handler = [v] { return run_invert(*v); }; });
}

}  // namespace activeip::cli
