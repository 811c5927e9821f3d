// The benchmark harness on the CPU: the layer shapes it reads off resnet18 / vgg16 and their
// FLOP counts, its statistics, `activeip bench` option checking (exit 2 naming the option),
// and the JSON each of `bench conv|gemm|train` prints with tiny settings. The timings
// themselves are not checked: on the CPU they only show that every path runs.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "tests/cli_util.h"

using namespace activeip;
using nlohmann::json;
using test::ok;
using test::rejected;
using test::TempDir;

namespace {

const bench::ConvCase* find_case(const std::vector<bench::ConvCase>& cases, const Conv2dShape& s) {
  for (const auto& c : cases)
    if (c.shape.N == s.N && c.shape.H == s.H && c.shape.W == s.W && c.shape.C == s.C && c.shape.K == s.K &&
        c.shape.R == s.R && c.shape.S == s.S && c.shape.stride == s.stride && c.shape.pad == s.pad)
      return &c;
  return nullptr;
}

size_t layer_count(const std::vector<bench::ConvCase>& cases) {
  size_t n = 0;
  for (const auto& c : cases) n += c.layers.size();
  return n;
}

json run_json(const TempDir& dir, const std::vector<std::string>& args) {
  const test::CliRun r = ok(dir, args);
  INFO(r.out);
  json j;
  REQUIRE_NOTHROW(j = json::parse(r.out));
  REQUIRE(j.is_object());
  return j;
}

void check_timing(const json& t) {
  REQUIRE(t.is_object());
  for (const char* k : {"median_ms", "min_ms", "max_ms", "tflops"}) {
    INFO(k);
    REQUIRE(t[k].is_number());
    CHECK(t[k].get<double>() >= 0);
  }
  CHECK(t["min_ms"].get<double>() <= t["median_ms"].get<double>());
  CHECK(t["median_ms"].get<double>() <= t["max_ms"].get<double>());
  CHECK(t["reps"].get<int>() >= 1);
}

void check_machine(const json& m) {
  CHECK(m["device"] == "cpu");
  CHECK(m["cpu"].is_string());
  CHECK(m["threads"].get<int>() >= 1);
  CHECK(m["build"]["cuda"].is_boolean());
  CHECK(m["build"]["cudnn"].is_boolean());
}

}  // namespace

TEST_CASE("bench shapes: resnet18 on CIFAR has 20 convolutions of 11 distinct shapes") {
  const auto cases = bench::conv_cases("resnet18", 256);
  CHECK(cases.size() == 11);
  CHECK(layer_count(cases) == 20);
  // layer1's four 3×3 64→64 convolutions on 32×32: one shape, 2·N·P·Q·K·R·S·C FLOPs.
  const bench::ConvCase* l1 = find_case(cases, {256, 32, 32, 64, 64, 3, 3, 1, 1});
  REQUIRE(l1);
  CHECK(l1->layers == std::vector<std::string>{"layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1", "layer1.1.conv2"});
  CHECK(!l1->bias);
  CHECK(l1->shape.flops() == 2.0 * 256 * 32 * 32 * 64 * 3 * 3 * 64);
  // The stem, a stride-2 conv and a projection shortcut.
  const bench::ConvCase* stem = find_case(cases, {256, 32, 32, 3, 64, 3, 3, 1, 1});
  REQUIRE(stem);
  CHECK(stem->layers == std::vector<std::string>{"conv1"});
  CHECK(stem->shape.flops() == 2.0 * 256 * 32 * 32 * 64 * 3 * 3 * 3);
  const bench::ConvCase* s2 = find_case(cases, {256, 32, 32, 64, 128, 3, 3, 2, 1});
  REQUIRE(s2);
  CHECK(s2->shape.P() == 16);
  CHECK(s2->shape.flops() == 2.0 * 256 * 16 * 16 * 128 * 3 * 3 * 64);
  const bench::ConvCase* down = find_case(cases, {256, 32, 32, 64, 128, 1, 1, 2, 0});
  REQUIRE(down);
  CHECK(down->layers == std::vector<std::string>{"layer2.0.downsample.0"});
  CHECK(down->shape.flops() == 2.0 * 256 * 16 * 16 * 128 * 64);
  const bench::ConvCase* l4 = find_case(cases, {256, 4, 4, 512, 512, 3, 3, 1, 1});
  REQUIRE(l4);
  CHECK(l4->layers.size() == 3);  // layer4.0.conv2, layer4.1.conv1, layer4.1.conv2
  for (const auto& c : cases) CHECK(c.net == "resnet18");

  const auto fc = bench::linear_layers("resnet18");
  REQUIRE(fc.size() == 1);
  CHECK(fc[0].name == "fc");
  CHECK(fc[0].in_features == 512);
  CHECK(fc[0].out_features == 10);
}

TEST_CASE("bench shapes: vgg16 on CIFAR has 13 convolutions with bias, 9 distinct shapes") {
  const auto cases = bench::conv_cases("vgg16", 128);
  CHECK(cases.size() == 9);
  CHECK(layer_count(cases) == 13);
  for (const auto& c : cases) {
    CHECK(c.bias);
    CHECK(c.shape.R == 3);
    CHECK(c.shape.stride == 1);
    CHECK(c.shape.N == 128);
  }
  const bench::ConvCase* last = find_case(cases, {128, 2, 2, 512, 512, 3, 3, 1, 1});
  REQUIRE(last);
  CHECK(last->layers.size() == 3);
  CHECK(last->shape.flops() == 2.0 * 128 * 2 * 2 * 512 * 3 * 3 * 512);
  const bench::ConvCase* first = find_case(cases, {128, 32, 32, 3, 64, 3, 3, 1, 1});
  REQUIRE(first);
  CHECK(first->layers == std::vector<std::string>{"features.0"});
  const auto head = bench::linear_layers("vgg16", NetSpec{32, 32, 3, 100});
  REQUIRE(head.size() == 1);
  CHECK(head[0].name == "classifier");
  CHECK(head[0].out_features == 100);
}

TEST_CASE("bench shapes: model FLOPs are the layers' FLOPs at N = 1") {
  for (const std::string net : {"resnet18", "vgg16", "resnet20"}) {
    CAPTURE(net);
    double sum = 0;
    for (const auto& c : bench::conv_cases(net, 1)) sum += c.shape.flops() * static_cast<double>(c.layers.size());
    for (const auto& l : bench::linear_layers(net)) sum += 2.0 * l.in_features * l.out_features;
    CHECK(bench::forward_flops_per_image(net) == sum);
    // Scaling: N images cost N times one.
    double at8 = 0;
    for (const auto& c : bench::conv_cases(net, 8)) at8 += c.shape.flops() * static_cast<double>(c.layers.size());
    for (const auto& l : bench::linear_layers(net)) at8 += 8 * 2.0 * l.in_features * l.out_features;
    CHECK(at8 == doctest::Approx(8 * sum));
  }
  // The published multiply-add counts: 0.56 G (CIFAR ResNet-18), 0.31 G (VGG-16), 41 M (ResNet-20).
  CHECK(bench::forward_flops_per_image("resnet18") / 2 == doctest::Approx(0.556e9).epsilon(0.01));
  CHECK(bench::forward_flops_per_image("vgg16") / 2 == doctest::Approx(0.313e9).epsilon(0.01));
  CHECK(bench::forward_flops_per_image("resnet20") / 2 == doctest::Approx(40.6e6).epsilon(0.02));
  // resnet20's option-A shortcuts have no convolution: 19 layers.
  CHECK(layer_count(bench::conv_cases("resnet20", 1)) == 19);
}

TEST_CASE("bench statistics: median, extremes, geometric mean") {
  const bench::TimeStats odd = bench::summarise_ms({5, 1, 3});
  CHECK(odd.median_ms == 3);
  CHECK(odd.min_ms == 1);
  CHECK(odd.max_ms == 5);
  CHECK(odd.reps == 3);
  CHECK(bench::summarise_ms({4, 1, 2, 3}).median_ms == 2.5);
  CHECK(bench::geomean({2, 8}) == doctest::Approx(4));
  CHECK(std::isnan(bench::geomean({})));
  CHECK_THROWS(bench::summarise_ms({}));
}

TEST_CASE("bench cli: bad values are usage errors naming the option") {
  const TempDir dir;
  rejected(dir, {"bench"}, 2, {});
  rejected(dir, {"bench", "fft"}, 2, {"bench fft"});
  rejected(dir, {"bench", "conv", "--batch", "0"}, 2, {"--batch"});
  rejected(dir, {"bench", "conv", "--batch", "many"}, 2, {"--batch"});
  rejected(dir, {"bench", "conv", "--reps", "0"}, 2, {"--reps"});
  rejected(dir, {"bench", "conv", "--warmup", "-1"}, 2, {"--warmup"});
  rejected(dir, {"bench", "conv", "--nets", "resnet18,resnet99"}, 2, {"--nets", "resnet99"});
  rejected(dir, {"bench", "conv", "--passes", "xgrad"}, 2, {"--passes", "xgrad"});
  rejected(dir, {"bench", "conv", "--tol", "-1"}, 2, {"--tol"});
  rejected(dir, {"bench", "conv", "--device", "gpu", "--json"}, 2, {"--device", "gpu"});
  rejected(dir, {"bench", "gemm", "--squares", "1024,-5"}, 2, {"--squares"});
  rejected(dir, {"bench", "gemm", "--classes", "0"}, 2, {"--classes"});
  rejected(dir, {"bench", "gemm", "--batch", "x"}, 2, {"--batch"});
  rejected(dir, {"bench", "train", "--batch", "1"}, 2, {"--batch"});
  rejected(dir, {"bench", "train", "--conv-impl", "tensorrt"}, 2, {"--conv-impl", "tensorrt"});
  rejected(dir, {"bench", "train", "--data", "imagenet"}, 2, {"--data", "imagenet"});
  rejected(dir, {"bench", "train", "--steps", "0"}, 2, {"--steps"});
  rejected(dir, {"bench", "train", "--peak-tflops", "0"}, 2, {"--peak-tflops"});
  rejected(dir, {"bench", "train", "--bogus"}, 2, {"--bogus"});
}

TEST_CASE("bench cli: conv on the CPU prints the JSON schema") {
  const TempDir dir;
  const json j = run_json(dir, {"bench", "conv", "--device", "cpu", "--threads", "2", "--nets", "resnet20", "--batch",
                                "2", "--warmup", "0", "--reps", "2", "--json"});
  CHECK(j["command"] == "conv");
  check_machine(j["machine"]);
  CHECK(j["config"]["batch"] == 2);
  CHECK(j["config"]["precisions"] == json::array({"fp32"}));
  CHECK(j["config"]["nets"] == json::array({"resnet20"}));
  CHECK(j["comparator"]["name"] == "cudnn");
  CHECK(j["comparator"]["available"] == false);
  CHECK(j["comparator"]["reason"].is_string());
  CHECK(j["all_valid"] == true);
  const auto expected = bench::conv_cases("resnet20", 2);
  REQUIRE(j["layers"].size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const json& l = j["layers"][i];
    CAPTURE(l.dump());
    CHECK(l["net"] == "resnet20");
    CHECK(l["name"].is_string());
    CHECK(l["uses"] == expected[i].layers.size());
    CHECK(l["layers"].size() == expected[i].layers.size());
    CHECK(l["shape"]["N"] == 2);
    CHECK(l["shape"]["C"] == expected[i].shape.C);
    CHECK(l["shape"]["P"] == expected[i].shape.P());
    CHECK(l["precision"] == "fp32");
    CHECK(l["gflops"].get<double>() == doctest::Approx(expected[i].shape.flops() / 1e9));
    for (const char* pass : {"fprop", "dgrad", "wgrad"}) {
      CAPTURE(pass);
      const json& p = l["passes"][pass];
      check_timing(p["ours"]);
      CHECK(p["cudnn"].is_null());
      CHECK(p["ratio"].is_null());
      CHECK(p["reason"].is_string());
      CHECK(p["validation"]["ok"] == true);
      CHECK(p["validation"]["rel_l2"].get<double>() <= 1e-4);
    }
  }
  const json& s = j["summary"]["resnet20"];
  CHECK(s["distinct_shapes"] == expected.size());
  CHECK(s["conv_layers"] == 19);
  CHECK(s["geomean_ratio"].is_null());
  CHECK(s["step_ms_ours"].get<double>() > 0);

  // The table form runs too.
  const test::CliRun table = ok(dir, {"bench", "conv", "--device", "cpu", "--threads", "2", "--nets", "resnet20",
                                      "--batch", "2", "--passes", "fprop", "--warmup", "0", "--reps", "1"});
  CHECK(table.out.find("bench conv") != std::string::npos);
  CHECK(table.out.find("resnet20") != std::string::npos);
}

TEST_CASE("bench cli: gemm on the CPU prints the JSON schema") {
  const TempDir dir;
  const json j = run_json(dir, {"bench", "gemm", "--device", "cpu", "--threads", "2", "--batch", "4,8", "--classes",
                                "10", "--squares", "48", "--warmup", "0", "--reps", "2", "--json"});
  CHECK(j["command"] == "gemm");
  check_machine(j["machine"]);
  CHECK(j["config"]["precisions"] == json::array({"fp32"}));
  CHECK(j["comparator"]["name"] == "cublas");
  CHECK(j["comparator"]["available"] == false);
  REQUIRE(j["cases"].size() == 2 * 3 + 1);  // two batches × fprop/dgrad/wgrad, one square
  const json& fprop = j["cases"][0];
  CHECK(fprop["kind"] == "linear");
  CHECK(fprop["pass"] == "fprop");
  CHECK(fprop["shape"]["M"] == 4);
  CHECK(fprop["shape"]["N"] == 10);
  CHECK(fprop["shape"]["K"] == 512);
  CHECK(fprop["layers"] == json::array({"resnet18.fc", "vgg16.classifier"}));
  CHECK(j["cases"][2]["pass"] == "wgrad");
  CHECK(j["cases"][2]["shape"]["K"] == 4);
  for (const json& c : j["cases"]) {
    CAPTURE(c.dump());
    check_timing(c["ours"]);
    CHECK(c["cublas"].is_null());
    CHECK(c["ratio"].is_null());
    CHECK(c["validation"]["ok"] == true);
    CHECK(c["gflops"].get<double>() ==
          doctest::Approx(2.0 * c["shape"]["M"].get<double>() * c["shape"]["N"].get<double>() *
                          c["shape"]["K"].get<double>() / 1e9));
  }
  CHECK(j["cases"].back()["kind"] == "square");
  CHECK(j["peak"]["tflops"].get<double>() > 0);
  CHECK(j["peak"]["source"].is_string());
  CHECK(j["all_valid"] == true);
}

TEST_CASE("bench cli: train on the CPU prints the JSON schema") {
  const TempDir dir;
  const json j =
      run_json(dir, {"bench",         "train",   "--device", "cpu",         "--threads",    "2",      "--nets",
                     "resnet20",      "--batch", "4",        "--conv-impl", "custom,cudnn", "--data", "synthetic",
                     "--limit-train", "16",      "--warmup", "1",           "--steps",      "2",      "--json"});
  CHECK(j["command"] == "train");
  check_machine(j["machine"]);
  CHECK(j["config"]["data"] == "synthetic");
  CHECK(j["config"]["train_records"] == 16);
  CHECK(j["config"]["precisions"] == json::array({"fp32"}));
  CHECK(j["peak"]["tflops"].get<double>() > 0);  // measured: gemm_cpu
  REQUIRE(j["runs"].size() == 2);
  const json& custom = j["runs"][0];
  CAPTURE(custom.dump());
  CHECK(custom["net"] == "resnet20");
  CHECK(custom["batch"] == 4);
  CHECK(custom["conv_impl"] == "custom");
  CHECK(custom["gemm_impl"] == "custom");
  CHECK(custom["images_per_s"].get<double>() > 0);
  CHECK(custom["step_ms"]["steps"] == 2);
  CHECK(custom["step_ms"]["median"].get<double>() > 0);
  CHECK(custom["model_gflops_per_image"].get<double>() ==
        doctest::Approx(3 * bench::forward_flops_per_image("resnet20") / 1e9));
  CHECK(custom["achieved_tflops"].get<double>() > 0);
  CHECK(custom["mfu"].get<double>() > 0);
  CHECK(custom["memory"]["peak_allocated_bytes"].is_null());
  CHECK(custom["memory"]["dataset_bytes"] == 16 * 32 * 32 * 3);
  const json& cudnn = j["runs"][1];
  CHECK(cudnn["conv_impl"] == "cudnn");
  CHECK(cudnn["gemm_impl"] == "cublas");
  CHECK(cudnn["images_per_s"].is_null());
  CHECK(cudnn["reason"].is_string());
  CHECK(j["best"]["resnet20"]["conv_impl"] == "custom");

  // A given peak is used as is.
  const json k =
      run_json(dir, {"bench",   "train", "--device",      "cpu",    "--threads",     "2", "--nets",   "resnet20",
                     "--batch", "2",     "--conv-impl",   "custom", "--limit-train", "8", "--warmup", "0",
                     "--steps", "1",     "--peak-tflops", "2",      "--json"});
  CHECK(k["peak"]["tflops"] == 2.0);
  CHECK(k["runs"][0]["mfu"].get<double>() == doctest::Approx(k["runs"][0]["achieved_tflops"].get<double>() / 2));
}

TEST_CASE("bench cli: infer on the CPU times forward passes and counts forward FLOPs once") {
  const TempDir dir;
  const json j = run_json(dir, {"bench", "infer", "--device", "cpu", "--threads", "1", "--nets", "resnet20", "--batch",
                                "3", "--conv-impl", "custom", "--data", "synthetic", "--limit-train", "16",
                                "--warmup", "1", "--reps", "2", "--peak-tflops", "1", "--json"});
  CHECK(j["command"] == "infer");
  CHECK(j["config"]["input"].is_string());
  CHECK_FALSE(j["config"].contains("optimizer"));
  REQUIRE(j["runs"].size() == 1);
  const json& run = j["runs"][0];
  CAPTURE(run.dump());
  CHECK(run["batch"] == 3);
  CHECK(run["images_per_batch"] == 3);
  CHECK(run["step_ms"]["steps"] == 2);
  CHECK(run["images_per_s"].get<double>() ==
        doctest::Approx(3 / (run["step_ms"]["median"].get<double>() * 1e-3)));
  CHECK(run["model_gflops_per_image"].get<double>() ==
        doctest::Approx(bench::forward_flops_per_image("resnet20") / 1e9));
  CHECK(run["achieved_tflops"].get<double>() ==
        doctest::Approx(run["model_gflops_per_image"].get<double>() * run["images_per_s"].get<double>() / 1e3));
  CHECK(j["best"]["resnet20"]["batch"] == 3);
  // The table names the command and what was timed.
  const std::string table = ok(dir, {"bench", "infer", "--device", "cpu", "--threads", "1", "--nets", "resnet20",
                                     "--batch", "2", "--conv-impl", "custom", "--limit-train", "8", "--warmup", "0",
                                     "--reps", "1", "--peak-tflops", "1"})
                                  .out;
  CHECK(table.find("bench infer on") != std::string::npos);
  CHECK(table.find("forward passes") != std::string::npos);
}

TEST_CASE("bench cli: --profile splits the timed steps by layer kind and pass, the rest as other") {
  const TempDir dir;
  const json j = run_json(dir, {"bench", "train", "--device", "cpu", "--threads", "1", "--nets", "resnet20", "--batch",
                                "4", "--conv-impl", "custom", "--limit-train", "16", "--warmup", "1", "--steps",
                                "2", "--peak-tflops", "1", "--profile", "--json"});
  CHECK(j["config"]["profile"] == true);
  const json& run = j["runs"][0];
  REQUIRE(run["profile"].is_array());
  double share = 0, ms = 0;
  std::map<std::string, double> calls;
  for (const json& p : run["profile"]) {
    share += p["share"].get<double>();
    ms += p["ms_per_step"].get<double>();
    calls[p["what"].get<std::string>() + " " + p["phase"].get<std::string>()] = p["calls_per_step"].get<double>();
  }
  CHECK(share == doctest::Approx(1.0));  // every timed second is somewhere, "other" included
  CHECK(ms == doctest::Approx(run["step_ms"]["median"].get<double>()).epsilon(0.5));
  // resnet20: 19 convolutions and 19 batch norms, 9 residual blocks, one classifier, per step.
  // Every batch norm runs fused: 10 with the ReLU after it (the stem and each block's bn1),
  // 9 with their block's shortcut add and ReLU; the sum's gradient is added by each block's
  // first convolution, in its dgrad.
  CHECK(calls["Conv2d forward"] == 19);
  CHECK(calls["Conv2d backward"] == 19);
  CHECK(calls.count("BatchNorm2d forward") == 0);
  CHECK(calls["BatchNorm2d+ReLU forward"] == 10);
  CHECK(calls["BatchNorm2d+ReLU backward"] == 10);
  CHECK(calls["BatchNorm2d+add+ReLU forward"] == 9);
  CHECK(calls["BatchNorm2d+add+ReLU backward"] == 9);
  CHECK(calls.count("Residual add backward") == 0);
  CHECK(calls["Linear backward"] == 1);
  CHECK(calls["batch: compose, load, augment step"] == 1);
  CHECK(calls["loss forward"] == 1);
  CHECK(calls["optimizer step"] == 1);
  CHECK(calls.count("other step") == 1);
  CHECK(calls.count("Sequential forward") == 0);  // containers are timed through their children
}
