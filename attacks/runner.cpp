// Running an attack (see attacks/runner.h): the target, the attacker's training, pruning,
// writing the attacked copy and measuring it.
#include "attacks/runner.h"

#include <algorithm>
#include <filesystem>
#include <memory>

#include "attacks/finetune.h"
#include "engine/core/file_io.h"
#include "engine/io/safetensors.h"
#include "engine/train/mask.h"

namespace activeip {

AttackTarget open_attack_target(Context& ctx, const AttackTargetSpec& spec) {
  AttackTarget t;
  t.measured = !spec.data.name.empty();
  ENSURE(t.measured || spec.key.empty(),
         "--key needs --data: owner verification and the users are measured on the test split");
  if (!spec.key.empty()) t.key = OwnerKey::load(spec.key);
  if (!spec.registry.empty()) t.registry = Registry::open(spec.registry, false);
  t.m = load_model(spec.model, ctx);
  t.original = model_context(SafetensorsReader(spec.model), t.m.meta);
  if (t.key) check_model_key(t.original, *t.key, spec.model);
  t.data.norm = t.m.meta.norm;
  if (!t.measured) return t;
  t.data = load_test_split(t.m.meta, spec.model, spec.data);  // checks that the model takes the data
  if (spec.needs_train) t.data = load_data(spec.data);
  t.data.norm = t.m.meta.norm;
  t.original_accuracy = evaluate(*t.m.net, ctx, t.data.test, t.data.norm, spec.eval_batch).accuracy;
  return t;
}

void train_attacker(AttackTarget& t, Context& ctx, Network& net, TrainConfig config, double fraction,
                    const AttackTraining& with, const AttackLog& log) {
  DataSplits attacker{seeded_subset(t.data.train, fraction, config.seed), t.data.test, t.data.norm, t.data.class_names};
  Trainer trainer(net, ctx, attacker, config, with.composer);
  if (with.mask.defined() && with.mask.numel()) trainer.set_mask(with.mask);
  if (with.trainable.defined() && with.trainable.numel()) trainer.set_trainable(with.trainable);
  trainer.set_targets(with.targets);
  log(strfmt("%s on %lld of %lld training records (fraction %g, seed %llu, records %s), %lld steps per epoch, %s",
             with.targets ? "distilling" : "fine-tuning", static_cast<long long>(attacker.train.size()),
             static_cast<long long>(t.data.train.size()), fraction, static_cast<unsigned long long>(config.seed),
             records_digest(attacker.train).c_str(), static_cast<long long>(trainer.steps_per_epoch()),
             describe_device(ctx.device(), ctx.threads()).c_str()));
  while (!trainer.done()) {
    const EpochRecord r = trainer.train_epoch({});
    log(strfmt("epoch %d/%d  train loss %.4f %s %.2f%%  test acc %.2f%%  %.1fs", r.epoch, config.epochs, r.train_loss,
               with.targets ? "agreement with the teacher" : "acc", 100 * r.train_accuracy, 100 * r.test_accuracy,
               r.seconds));
  }
}

namespace {

// Filter pruning: the narrower net replaces the target's; there is no mask, nothing is left
// to hold at zero.
void prune_filters(AttackTarget& t, Context& ctx, double sparsity, uint64_t seed, nlohmann::json& attack,
                   const AttackLog& log) {
  Network& wide = *t.m.net;
  const auto keep = filters_to_keep(wide, ctx, sparsity);
  const NetInfo& i = wide.info();
  std::unique_ptr<Network> narrow = make_net(i.name, {i.H, i.W, i.C, i.num_classes, kept_widths(keep)});
  narrow->build(ctx, seed);
  copy_kept_filters(wide, ctx, keep, *narrow);
  int64_t filters = 0, kept = 0;
  for (const FilterGroup& g : i.filter_groups) filters += wide.slot(g.conv + ".weight").slot.shape[0];
  for (const auto& [conv, k] : keep) kept += static_cast<int64_t>(k.size());
  attack["filters"] = filters;
  attack["removed_filters"] = filters - kept;
  attack["original_parameters"] = wide.num_parameters();
  attack["parameters"] = narrow->num_parameters();
  attack["channels"] = narrow->info().channels;
  log(strfmt("filter pruning: %lld of %lld filters removed, %lld -> %lld parameters",
             static_cast<long long>(filters - kept), static_cast<long long>(filters),
             static_cast<long long>(wide.num_parameters()), static_cast<long long>(narrow->num_parameters())));
  t.m.net = std::move(narrow);
  t.m.meta.channels = t.m.net->info().channels;
}

}  // namespace

Tensor prune_target(AttackTarget& t, Context& ctx, const PruneSpec& spec, nlohmann::json& attack,
                    const AttackLog& log) {
  if (spec.method == PruneMethod::Filter) {
    prune_filters(t, ctx, spec.sparsity, spec.seed, attack, log);
    return Tensor();
  }
  Network& net = *t.m.net;
  Tensor mask;
  if (spec.method == PruneMethod::FinePrune) {
    const Dataset subset = seeded_subset(t.data.train, spec.fraction, spec.seed);
    std::vector<int32_t> indices(static_cast<size_t>(std::min<int64_t>(subset.size(), spec.activation_samples)));
    for (size_t i = 0; i < indices.size(); ++i) indices[i] = static_cast<int32_t>(i);
    const std::vector<double> activation = mean_feature_activation(net, ctx, subset, t.data.norm, indices, spec.batch);
    const std::vector<int> channels = least_active_channels(activation, spec.sparsity);
    mask = feature_channel_mask(net, channels);
    attack["channels"] = activation.size();
    attack["pruned_channels"] = channels;
    attack["activation_samples"] = indices.size();
  } else {
    mask = magnitude_mask(net, ctx, spec.sparsity, spec.method == PruneMethod::Layer);
  }
  apply_mask(net, ctx, mask);
  const MaskStats st = mask_stats(net, ctx, mask);
  attack["pruned_weights"] = st.pruned;
  attack["prunable_weights"] = st.candidates;
  attack["weight_sparsity"] = st.sparsity();
  log(strfmt("%s pruning: %lld of %lld conv/linear weights zeroed (%.4f)", prune_method_name(spec.method),
             static_cast<long long>(st.pruned), static_cast<long long>(st.candidates), st.sparsity()));
  return mask;
}

Tensor mask_beside(const std::string& model, Network& net, Context& ctx) {
  const std::string path = mask_path(model);
  const std::string model_sha256 = SafetensorsReader(model).data_sha256();
  finish_model_pair(model_sha256, path);  // a write stopped before its last step
  if (!file_exists(path)) return Tensor();
  // Masks written before the digest existed are matched by the weights they prune alone.
  const SafetensorsReader file(path);
  const auto& written = file.metadata();
  const auto it = written.find("model_sha256");
  ENSURE(it == written.end() || it->second == model_sha256,
         "%s was written with other weights than %s: it is not that model's mask (a pruning stopped between "
         "writing the model and removing its old mask leaves one; remove it if %s has no mask)",
         path.c_str(), model.c_str(), model.c_str());
  Tensor mask = load_mask(path, net);
  const int64_t bad = mask_violations(net, ctx, mask);
  ENSURE(bad == 0, "%s: %lld weights it prunes are not zero in %s: the mask belongs to another model", path.c_str(),
         static_cast<long long>(bad), model.c_str());
  return mask;
}

void write_attacked(const std::string& out, Network& net, Context& ctx, const Tensor& mask, ModelMeta meta,
                    const nlohmann::json& attack) {
  meta.config = nlohmann::json{{"attack", attack}}.dump();
  const std::string mpath = mask_path(out);
  const SafetensorsWriter model = model_writer(net, ctx, meta);
  if (mask.defined() && mask.numel()) {
    write_model_pair(model, out, mask_writer(net, ctx, mask, {{"attack", attack.dump()}}), mpath);
    return;
  }
  model.write(out);
  // A stale mask would hold a later fine-tune to the wrong zeros (killed before this, it is
  // refused as another model's: its model_sha256).
  if (file_exists(mpath)) std::filesystem::remove(mpath);
}

namespace {

// Top-1 accuracy on the whole split with `preprocess` in front of the network (the first
// maximum wins, as evaluate() counts).
double preprocessed_accuracy(Network& net, Context& ctx, const Dataset& data, const Normalization& norm, int batch,
                             const BatchAlter& preprocess) {
  std::vector<int32_t> all(static_cast<size_t>(data.size()));
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int32_t>(i);
  const Tensor logits = predict(net, ctx, data, norm, all, batch, preprocess);
  const int C = net.info().num_classes;
  const int32_t* labels = data.labels.data<int32_t>();
  int64_t correct = 0;
  for (size_t r = 0; r < all.size(); ++r) {
    const float* row = logits.data<float>() + r * static_cast<size_t>(C);
    correct += std::max_element(row, row + C) - row == labels[r];
  }
  return all.empty() ? 0.0 : static_cast<double>(correct) / static_cast<double>(all.size());
}

}  // namespace

Assessment assess_attacked(AttackTarget& t, Context& ctx, Network& net, const ProbeConfig& probe,
                           const AssessConfig& assess, std::optional<Prober>& prober, bool keep_prober,
                           const BatchAlter& preprocess) {
  Assessment a;
  a.reference = "original";
  a.reference_accuracy = t.original_accuracy;
  a.clean_accuracy = preprocess ? preprocessed_accuracy(net, ctx, t.data.test, t.data.norm, probe.batch, preprocess)
                                : evaluate(net, ctx, t.data.test, t.data.norm, probe.batch).accuracy;
  // The copy is probed under the original's scheme: an attack does not change what was trained in.
  if (t.key || keep_prober) {
    prober.emplace(net, ctx, t.data.test, t.data.norm, probe, model_scheme(t.original),
                   model_code_length(t.original, t.registry ? &*t.registry : nullptr, net.info().num_classes));
    prober->set_preprocess(preprocess);
  }
  if (t.key) assess_protection(a, *prober, *t.key, t.registry ? &*t.registry : nullptr, t.original, assess);
  return a;
}

}  // namespace activeip
