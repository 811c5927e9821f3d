// activeip eval (accuracy and loss of a checkpoint on a dataset's test split) and
// activeip info (what a checkpoint holds). With --json each prints one JSON object.
// eval --logits FILE also writes the evaluated records' logits, labels and the exact
// normalised NHWC input the net was fed, for cross-checks against other frameworks
// (scripts/torch_crosscheck.py).
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>

#include "cli/commands.h"
#include "cli/protection.h"
#include "engine/io/safetensors.h"
#include "engine/train/trainer.h"
#include "nets/model_io.h"

namespace activeip::cli {

namespace {

struct EvalOptions {
  std::string model;
  DataOptions data;
  DeviceOptions device;
  int batch = 256;
  bool json = false;
  std::string logits;  // empty: no logits file
  std::string token;   // empty: the inputs as they are
};

// Refuses, before any work, a --logits path whose file could not be created: a folder, or
// a directory that does not exist or cannot be written. Probes with a fresh name, so no
// file of the user's is touched.
void check_logits_path(const std::string& path) {
  if (std::filesystem::is_directory(path)) throw UsageError(strfmt("--logits %s is a directory", path.c_str()));
  std::string probe = path + ".XXXXXX";
  const int fd = mkstemp(probe.data());
  if (fd < 0) throw UsageError(strfmt("--logits %s: cannot write there (%s)", path.c_str(), std::strerror(errno)));
  close(fd);
  unlink(probe.c_str());
}

// Eval-mode logits of every record of `test` in the batches evaluate() uses (so the numbers
// are the ones its accuracy counted), with the normalised input of each batch copied out
// as the net received it; written atomically as one safetensors file:
//   logits [n, classes] F32, labels [n] I32, images [n, H, W, C] F32 (NHWC).
void write_logits(const std::string& path, LoadedModel& m, Context& ctx, const Dataset& test, int batch,
                  const std::string& model_path, const std::string& dataset) {
  const int64_t n = test.size();
  std::vector<int32_t> indices(static_cast<size_t>(n));
  std::iota(indices.begin(), indices.end(), 0);
  Tensor images = Tensor::host({n, test.H, test.W, test.C});
  const Tensor logits =
      predict(*m.net, ctx, test, m.meta.norm, indices, batch,
              [&](Context& c, Tensor& x, int64_t first) { images.slice(first, first + x.dim(0)).copy_from(x, c); });
  SafetensorsWriter w;
  w.add("logits", "F32", logits.shape(), logits.raw(), logits.bytes());
  w.add("labels", "I32", test.labels.shape(), test.labels.raw(), test.labels.bytes());
  w.add("images", "F32", images.shape(), images.raw(), images.bytes());
  const nlohmann::json norm = {{"mean", m.meta.norm.mean}, {"std", m.meta.norm.std}};
  w.set_metadata({{"format", "activeip-logits-v1"},
                  {"model", model_path},
                  {"net", m.meta.net},
                  {"dataset", dataset},
                  {"device", ctx.device().str()},
                  {"images_layout", "NHWC"},
                  {"normalization", norm.dump()}});
  w.write(path);
}

int run_eval(const EvalOptions& o) {
  const std::optional<Fingerprint> lock = o.token.empty() ? std::nullopt : std::optional(token_lock(o.token, o.model));
  const Device device = o.device.parsed();
  if (!o.logits.empty()) check_logits_path(o.logits);
  Context ctx(device, o.device.threads);
  o.device.configure(ctx);
  LoadedModel m = load_model(o.model, ctx);
  const DataSplits data = load_test_split(m.meta, o.model, o.data.spec());
  std::optional<Stamper> stamper;
  std::vector<int32_t> ids;
  // The model's own normalisation: the one it was trained with.
  const EvalResult r = lock ? evaluate(*m.net, ctx, data.test, m.meta.norm, o.batch,
                                       lock_stamp(ctx, *lock, m.meta, o.batch, stamper, ids))
                            : evaluate(*m.net, ctx, data.test, m.meta.norm, o.batch);
  if (!o.logits.empty()) {
    write_logits(o.logits, m, ctx, data.test, o.batch, o.model, o.data.name);
    std::fprintf(stderr, "wrote the logits, labels and inputs of %lld images to %s\n", static_cast<long long>(r.n),
                 o.logits.c_str());
  }
  if (o.json) {
    nlohmann::json j = {{"accuracy", r.accuracy}, {"loss", r.loss},           {"n", r.n},
                        {"model", o.model},       {"net", m.meta.net},        {"dataset", o.data.name},
                        {"device", device.str()}, {"threads", ctx.threads()}, {"precision", o.device.precision}};
    if (!o.logits.empty()) j["logits"] = o.logits;
    if (lock) j["token"] = o.token;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s on %s test (%lld images%s, %s): accuracy %.2f%%  loss %.4f\n", o.model.c_str(), o.data.name.c_str(),
                static_cast<long long>(r.n), lock ? strfmt(" with %s's lock pattern", lock->name.c_str()).c_str() : "",
                describe_device(device, o.device.threads).c_str(), 100 * r.accuracy, r.loss);
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
  eval->add_option("--token", e->token,
                   "A user's token (users token): its lock pattern for this model is stamped on every input (lock "
                   "mode)");
  eval->add_option("--logits", e->logits,
                   "Also write the evaluated records' logits [n, classes], labels [n] and normalised NHWC input "
                   "images [n, H, W, C] to this .safetensors file");
  eval->callback([e, &handler] { handler = [e] { return run_eval(*e); }; });

  auto i = std::make_shared<InfoOptions>();
  CLI::App* info = app.add_subcommand("info", "What a model checkpoint holds");
  info->add_option("--model", i->model, "Checkpoint (.safetensors)")->required();
  info->add_flag("--json", i->json, "Print one JSON object");
  info->callback([i, &handler] { handler = [i] { return run_info(*i); }; });
}

}  // namespace activeip::cli
