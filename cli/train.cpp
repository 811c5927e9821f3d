// activeip train: build a net, train it on a dataset, write a checkpoint every epoch,
// optionally resume one. Progress goes to stderr (a live line on a terminal, one line per
// epoch otherwise), JSON lines to --log, the final summary to stdout.
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "engine/file_io.h"
#include "engine/trainer.h"
#include "nets/nets.h"

namespace activeip::cli {

namespace {

struct TrainOptions {
  std::string net, out, log;
  DataOptions data;
  DeviceOptions device;
  TrainConfig config;
  bool resume = false, no_augment = false;
};

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

int run_train(TrainOptions& o) {
  o.config.augment = !o.no_augment;
  as_usage([&] { o.config.validate(); });
  const Device device = o.device.parsed();
  check_writable(o.out);

  Context ctx(device, o.device.threads);
  const DataSplits data = load_data(o.data.spec());
  auto net = make_net(o.net, {data.train.H, data.train.W, data.train.C, data.train.num_classes});
  net->build(ctx, o.config.seed);
  Trainer trainer(*net, ctx, data, o.config);

  const bool resuming = o.resume && file_exists(o.out);
  if (resuming) {
    trainer.resume(o.out);
    std::fprintf(stderr, "resuming %s at epoch %d of %d\n", o.out.c_str(), trainer.completed_epochs(), o.config.epochs);
  } else if (o.resume) {
    std::fprintf(stderr, "no checkpoint at %s: starting from scratch\n", o.out.c_str());
  }

  std::unique_ptr<std::ofstream> log;
  if (!o.log.empty()) {
    log = std::make_unique<std::ofstream>(o.log, resuming ? std::ios::app : std::ios::trunc);
    if (!*log) throw UsageError(strfmt("--log %s: cannot open for writing", o.log.c_str()));
    nlohmann::json start = {{"event", "start"},
                            {"net", o.net},
                            {"data", o.data.name},
                            {"device", device.str()},
                            {"parameters", net->num_parameters()},
                            {"train_size", data.train.size()},
                            {"test_size", data.test.size()},
                            {"start_epoch", trainer.completed_epochs()},
                            {"config", nlohmann::json::parse(o.config.to_json())}};
    *log << start.dump() << "\n" << std::flush;
  }
  std::fprintf(stderr, "%s (%lld parameters) on %s: %lld train / %lld test images, %lld steps per epoch, %s\n",
               o.net.c_str(), static_cast<long long>(net->num_parameters()), o.data.name.c_str(),
               static_cast<long long>(data.train.size()), static_cast<long long>(data.test.size()),
               static_cast<long long>(trainer.steps_per_epoch()), device.str().c_str());

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

  ModelMeta meta;
  meta.net = o.net;
  meta.dataset = o.data.name;
  meta.H = data.train.H;
  meta.W = data.train.W;
  meta.C = data.train.C;
  meta.num_classes = data.train.num_classes;
  meta.norm = data.norm;
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
    return 0;
  }
  std::fprintf(stdout, "%s %s: test accuracy %.2f%% after %d epochs (%.0f img/s) -> %s\n", o.net.c_str(),
               o.data.name.c_str(), 100 * last.test_accuracy, last.epoch, last.images_per_s, o.out.c_str());
  return 0;
}

}  // namespace

void add_train(CLI::App& app, Handler& handler) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model (writes a checkpoint every epoch)");
  cmd->add_option("--net", o->net, "Network")->required()->check(CLI::IsMember(net_names()));
  o->data.add_to(cmd, true);
  cmd->add_option("--out", o->out, "Checkpoint to write (.safetensors)")->required();
  cmd->add_option("--epochs", o->config.epochs, "Epochs")->capture_default_str()->check(positive_number());
  cmd->add_option("--batch", o->config.batch, "Batch size")->capture_default_str()->check(number_in(2, 1 << 16));
  cmd->add_option("--lr", o->config.lr, "Peak learning rate")->capture_default_str()->check(positive_number());
  cmd->add_option("--momentum", o->config.momentum, "SGD momentum, in [0, 1)")
      ->capture_default_str()
      ->check(non_negative_number());
  cmd->add_flag("--nesterov", o->config.nesterov, "Nesterov momentum");
  cmd->add_option("--wd", o->config.wd, "Weight decay")->capture_default_str()->check(non_negative_number());
  cmd->add_option("--schedule", o->config.schedule, "Learning-rate schedule")
      ->capture_default_str()
      ->check(CLI::IsMember(schedule_names()));
  cmd->add_option("--warmup", o->config.warmup_epochs, "Linear warm-up epochs (cosine, step, constant)")
      ->capture_default_str()
      ->check(non_negative_number());
  cmd->add_option("--milestones", o->config.milestones, "Epochs at which the step schedule multiplies lr by --gamma")
      ->delimiter(',');
  cmd->add_option("--gamma", o->config.gamma, "Step schedule factor")->capture_default_str();
  cmd->add_option("--label-smoothing", o->config.label_smoothing, "Label smoothing")->capture_default_str();
  cmd->add_flag("--no-augment", o->no_augment, "Train without random crop and flip");
  cmd->add_option("--seed", o->config.seed, "Seed of initialisation, shuffling and augmentation")
      ->capture_default_str();
  o->device.add_to(cmd);
  cmd->add_option("--log", o->log, "Append JSON lines (one per epoch) to this file");
  cmd->add_flag("--resume", o->resume, "Continue from --out and its .optim.safetensors if they exist");
  cmd->callback([o, &handler] { handler = [o] { return run_train(*o); }; });
}

}  // namespace activeip::cli
