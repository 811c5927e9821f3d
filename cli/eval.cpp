// activeip eval (accuracy and loss of a checkpoint on a dataset's test split) and
// activeip info (what a checkpoint holds). With --json each prints one JSON object.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "engine/safetensors.h"
#include "engine/trainer.h"
#include "nets/model_io.h"

namespace activeip::cli {

namespace {

struct EvalOptions {
  std::string model;
  DataOptions data;
  DeviceOptions device;
  int batch = 256;
  bool json = false;
};

int run_eval(const EvalOptions& o) {
  const Device device = o.device.parsed();
  Context ctx(device, o.device.threads);
  LoadedModel m = load_model(o.model, ctx);
  const DataSplits data = load_test_split(m.meta, o.model, o.data);
  // The model's own normalisation: the one it was trained with.
  const EvalResult r = evaluate(*m.net, ctx, data.test, m.meta.norm, o.batch);
  if (o.json) {
    const nlohmann::json j = {{"accuracy", r.accuracy}, {"loss", r.loss},    {"n", r.n},
                              {"model", o.model},       {"net", m.meta.net}, {"dataset", o.data.name}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s on %s test (%lld images): accuracy %.2f%%  loss %.4f\n", o.model.c_str(), o.data.name.c_str(),
                static_cast<long long>(r.n), 100 * r.accuracy, r.loss);
  }
  return 0;
}

struct InfoOptions {
  std::string model;
  bool json = false;
};

int run_info(const InfoOptions& o) {
  const SafetensorsReader file(o.model);
  const ModelMeta meta = ModelMeta::from_metadata(file.metadata(), o.model);
  // Building and loading validates that the tensors match the named net.
  Context ctx(Device::cpu());
  const LoadedModel m = load_model(o.model, ctx);
  nlohmann::json j = {{"model", o.model},
                      {"net", meta.net},
                      {"dataset", meta.dataset},
                      {"num_classes", meta.num_classes},
                      {"input_shape", {meta.C, meta.H, meta.W}},
                      {"normalization", {{"mean", meta.norm.mean}, {"std", meta.norm.std}}},
                      {"epoch", meta.epoch},
                      {"parameters", m.net->num_parameters()},
                      {"tensors", file.names().size()},
                      {"config", nlohmann::json::parse(meta.config, nullptr, false)},
                      {"protected", !meta.protection.empty()}};
  if (!meta.protection.empty()) j["protection"] = nlohmann::json::parse(meta.protection, nullptr, false);
  if (o.json) {
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf(
      "model       %s\nnet         %s (%lld parameters, %zu tensors)\ndataset     %s (%d classes, input %dx%dx%d)\n"
      "epochs      %lld\nprotected   %s\nconfig      %s\n",
      o.model.c_str(), meta.net.c_str(), static_cast<long long>(m.net->num_parameters()), file.names().size(),
      meta.dataset.c_str(), meta.num_classes, meta.C, meta.H, meta.W, static_cast<long long>(meta.epoch),
      meta.protection.empty() ? "no" : "yes", meta.config.c_str());
  return 0;
}

}  // namespace

void add_eval(CLI::App& app, Handler& handler) {
  auto e = std::make_shared<EvalOptions>();
  CLI::App* eval = app.add_subcommand("eval", "Accuracy and loss of a model on a dataset's test split");
  eval->add_option("--model", e->model, "Checkpoint (.safetensors)")->required();
  e->data.add_to(eval, false);
  eval->add_option("--limit-test", e->data.limit_test, "Use only the first N test records")->check(positive_number());
  eval->add_option("--batch", e->batch, "Batch size")->capture_default_str()->check(number_in(1, 1 << 16));
  e->device.add_to(eval);
  eval->add_flag("--json", e->json, "Print one JSON object {accuracy, loss, n, …}");
  eval->callback([e, &handler] { handler = [e] { return run_eval(*e); }; });

  auto i = std::make_shared<InfoOptions>();
  CLI::App* info = app.add_subcommand("info", "What a model checkpoint holds");
  info->add_option("--model", i->model, "Checkpoint (.safetensors)")->required();
  info->add_flag("--json", i->json, "Print one JSON object");
  info->callback([i, &handler] { handler = [i] { return run_info(*i); }; });
}

}  // namespace activeip::cli
