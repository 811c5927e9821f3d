// activeip predict: a model's top classes, with their probabilities, for PNG and JPEG files.
// Each image is decoded (grey or RGB, as the model takes), resized to the model's input as
// torchvision's Resize does on a PIL image, normalised with the model's own statistics and
// classified in eval mode. Every file is read before anything is printed, so a bad one
// (not an image, damaged, the wrong channel count) stops the command with nothing printed.
// With --token (lock mode) the user's lock pattern is stamped on every image after the resize,
// where the token says, as the locked model was trained to see it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>

#include "cli/commands.h"
#include "cli/protection.h"
#include "engine/data/image_file.h"
#include "engine/train/trainer.h"
#include "nets/model_io.h"

namespace activeip::cli {

namespace {

struct PredictOptions {
  std::string model;
  std::vector<std::string> images;
  DeviceOptions device;
  int top = 5;
  bool json = false;
  std::string token;  // empty: the images as they are
};

// The files as one dataset of the model's geometry, in order.
Dataset read_images(const std::vector<std::string>& paths, const ModelMeta& meta) {
  Dataset d;
  d.name = "images";
  d.split = "predict";
  d.H = meta.H, d.W = meta.W, d.C = meta.C, d.num_classes = meta.num_classes;
  const int64_t n = static_cast<int64_t>(paths.size());
  d.images = Tensor::host({n, d.H, d.W, d.C}, DType::U8);
  d.labels = Tensor::host({n}, DType::I32);
  const size_t bytes = static_cast<size_t>(d.H) * d.W * d.C;
  for (int64_t i = 0; i < n; ++i) {
    const std::string& path = paths[static_cast<size_t>(i)];
    const Image im = read_image(path);
    ENSURE(im.C == d.C, "%s: a %s image, but %s takes %s images", path.c_str(), im.C == 1 ? "grey" : "colour (RGB)",
           meta.net.c_str(), d.C == 1 ? "grey" : "colour (RGB)");
    const Image fit = resize_image(im, d.H, d.W);
    std::copy(fit.pixels.begin(), fit.pixels.end(), d.images.data<uint8_t>() + i * static_cast<int64_t>(bytes));
    d.labels.data<int32_t>()[i] = 0;  // unused
  }
  return d;
}

int run_predict(const PredictOptions& o) {
  const std::optional<Fingerprint> lock = o.token.empty() ? std::nullopt : std::optional(token_lock(o.token, o.model));
  const Device device = o.device.parsed();
  Context ctx(device, o.device.threads);
  o.device.configure(ctx);
  LoadedModel m = load_model(o.model, ctx);
  const Dataset images = read_images(o.images, m.meta);
  std::vector<int32_t> all(o.images.size());
  std::iota(all.begin(), all.end(), 0);
  constexpr int kBatch = 64;
  std::optional<Stamper> stamper;
  std::vector<int32_t> ids;
  const Tensor logits = predict(*m.net, ctx, images, m.meta.norm, all, kBatch,
                                lock ? lock_stamp(ctx, *lock, m.meta, kBatch, stamper, ids) : BatchAlter());
  const std::vector<std::string> names = dataset_class_names(m.meta.dataset);
  const int C = m.meta.num_classes, top = std::min(o.top, C);

  nlohmann::json out = {{"model", o.model}, {"net", m.meta.net}, {"dataset", m.meta.dataset}};
  if (lock) out["token"] = o.token;
  nlohmann::json& predictions = out["predictions"] = nlohmann::json::array();
  for (size_t i = 0; i < o.images.size(); ++i) {
    // Softmax in double, from the largest logit.
    const float* z = logits.data<float>() + i * static_cast<size_t>(C);
    const double zmax = *std::max_element(z, z + C);
    std::vector<double> p(static_cast<size_t>(C));
    double total = 0;
    for (int c = 0; c < C; ++c) total += p[c] = std::exp(z[c] - zmax);
    std::vector<int> order(static_cast<size_t>(C));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
    nlohmann::json classes = nlohmann::json::array();
    for (int k = 0; k < top; ++k) {
      const int c = order[static_cast<size_t>(k)];
      const std::string name = c < static_cast<int>(names.size()) ? names[c] : std::to_string(c);
      classes.push_back({{"class", c}, {"name", name}, {"probability", p[c] / total}});
    }
    predictions.push_back({{"image", o.images[i]}, {"top", classes}});
  }
  if (o.json) {
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  for (const auto& p : predictions) {
    std::printf("%s:", p["image"].get<std::string>().c_str());
    for (const auto& c : p["top"])
      std::printf("  %s %.4f", c["name"].get<std::string>().c_str(), c["probability"].get<double>());
    std::printf("\n");
  }
  return 0;
}

}  // namespace

void add_predict(CLI::App& app, Handler& handler) {
  auto o = std::make_shared<PredictOptions>();
  CLI::App* cmd = app.add_subcommand("predict", "A model's top classes for PNG or JPEG images");
  cmd->add_option("--model", o->model, "Checkpoint (.safetensors)")->required();
  cmd->add_option("images", o->images, "PNG or JPEG files (grey or RGB, as the model takes; resized to its input)")
      ->required();
  cmd->add_option("--top", o->top, "Classes to print per image, most probable first")
      ->capture_default_str()
      ->check(number_in(1, 1 << 20));
  cmd->add_option("--token", o->token,
                  "A user's token (users token): its lock pattern for this model is stamped on every image (lock "
                  "mode), after the resize");
  o->device.add_to(cmd);
  cmd->add_flag("--json", o->json, "Print one JSON object {predictions: [{image, top: [{class, name, probability}]}]}");
  cmd->callback([o, &handler] { handler = [o] { return run_predict(*o); }; });
}

}  // namespace activeip::cli
