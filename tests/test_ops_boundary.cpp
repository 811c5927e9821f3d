// The op boundary (engine/nn/ops.h): for every op and every tensor argument, a call with that
// argument on the wrong device, of the wrong size, of the wrong dtype or without storage fails
// with an Error that names the op and the argument; the same call with good arguments runs.
// The wrong device is a zero-element tensor tagged cuda:0, which needs no device memory.
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/core/context.h"
#include "engine/nn/ops.h"
#include "tests/test_util.h"

namespace activeip {
namespace {

using test::error_of;

// One tensor argument of an op: its name in the op's messages, dtype and shape. `sized` is
// false for the argument whose size the op takes as given (relu's x sets the size of y).
struct ArgSpec {
  std::string name;
  DType dtype;
  Shape shape;
  bool sized = true;
};

using Tensors = std::map<std::string, Tensor>;

struct OpCase {
  std::string op;
  std::vector<ArgSpec> args;
  std::function<void(Context&, Tensors&)> call;
};

// Good contents: positive floats (variances, inverse deviations and the dropout mask stay
// valid) and zero indices (a valid label, argmax, image, patch and origin).
Tensor good(const ArgSpec& a) {
  Tensor t = Tensor::host(a.shape, a.dtype);
  if (a.dtype == DType::F32) {
    const auto v = test::random_floats(static_cast<size_t>(t.numel()), 7, 0.5f, 1.0f);
    for (size_t i = 0; i < v.size(); ++i) t.data<float>()[i] = std::abs(v[i]);
  } else {
    std::fill_n(static_cast<uint8_t*>(t.raw()), t.bytes(), uint8_t{0});
  }
  return t;
}

const Conv2dShape kConv{.N = 2, .H = 5, .W = 5, .C = 3, .K = 4, .R = 3, .S = 3, .stride = 2, .pad = 1};
const BatchNormShape kBn{.M = 6, .C = 3};
const Pool2dShape kPool{.N = 1, .H = 4, .W = 4, .C = 3};
const GlobalPoolShape kGap{.N = 2, .HW = 5, .C = 3};
const PadShortcutShape kPad{.N = 2, .H = 4, .W = 4, .C = 2, .stride = 2, .pad_before = 1, .pad_after = 1};
const LinearShape kLin{.N = 2, .IN = 5, .OUT = 3};
const XentShape kXent{.N = 3, .C = 4};
const AugmentShape kAug{.N = 2, .H = 4, .W = 4, .C = 3, .pad = 1};
const StampShape kStamp{.N = 2, .H = 4, .W = 4, .C = 3, .size = 2, .patches = 2};

int64_t n_of(size_t n) {
  return static_cast<int64_t>(n);
}

std::vector<OpCase> op_cases() {
  const DType F = DType::F32, I = DType::I32, U = DType::U8;
  const int64_t x = n_of(kConv.x_size()), w = n_of(kConv.w_size()), y = n_of(kConv.y_size());
  const int64_t bn = int64_t{kBn.M} * kBn.C, C = kBn.C;
  const int64_t pool_in = 4 * 4 * 3, pool_out = 2 * 2 * 3;
  const int64_t nc = int64_t{kXent.N} * kXent.C;
  const int64_t img = 4 * 4 * 3;
  auto bn_fwd = [](bool training) {
    return [training](Context& c, Tensors& t) {
      ops::batchnorm_fwd(c, kBn, {}, training,
                         {t["x"], t["gamma"], t["beta"], t["running_mean"], t["running_var"], t["save_mean"],
                          t["save_invstd"], t["y"]});
    };
  };
  const std::vector<ArgSpec> bn_fwd_args = {{"x", F, {bn}},           {"gamma", F, {C}},       {"beta", F, {C}},
                                            {"running_mean", F, {C}}, {"running_var", F, {C}}, {"save_mean", F, {C}},
                                            {"save_invstd", F, {C}},  {"y", F, {bn}}};
  return {
      {"conv2d_fprop",
       {{"x", F, {x}}, {"w", F, {w}}, {"bias", F, {kConv.K}}, {"y", F, {y}}},
       [](Context& c, Tensors& t) { ops::conv2d_fprop(c, kConv, t["x"], t["w"], &t["bias"], t["y"]); }},
      {"conv2d_dgrad",
       {{"dy", F, {y}}, {"w", F, {w}}, {"dx", F, {x}}},
       [](Context& c, Tensors& t) { ops::conv2d_dgrad(c, kConv, t["dy"], t["w"], t["dx"]); }},
      {"conv2d_wgrad",
       {{"x", F, {x}}, {"dy", F, {y}}, {"dw", F, {w}}, {"dbias", F, {kConv.K}}},
       [](Context& c, Tensors& t) { ops::conv2d_wgrad(c, kConv, t["x"], t["dy"], t["dw"], &t["dbias"]); }},
      {"batchnorm_fwd", bn_fwd_args, bn_fwd(true)},
      {"batchnorm_fwd", bn_fwd_args, bn_fwd(false)},
      {"batchnorm_bwd",
       {{"x", F, {bn}},
        {"dy", F, {bn}},
        {"gamma", F, {C}},
        {"save_mean", F, {C}},
        {"save_invstd", F, {C}},
        {"dx", F, {bn}},
        {"dgamma", F, {C}},
        {"dbeta", F, {C}}},
       [](Context& c, Tensors& t) {
         ops::batchnorm_bwd(
             c, kBn, {t["x"], t["dy"], t["gamma"], t["save_mean"], t["save_invstd"], t["dx"], t["dgamma"], t["dbeta"]});
       }},
      {"relu_fwd",
       {{"x", F, {7}, false}, {"y", F, {7}}},
       [](Context& c, Tensors& t) { ops::relu_fwd(c, t["x"], t["y"]); }},
      {"relu_bwd",
       {{"y", F, {7}, false}, {"dy", F, {7}}, {"dx", F, {7}}},
       [](Context& c, Tensors& t) { ops::relu_bwd(c, t["y"], t["dy"], t["dx"]); }},
      {"add",
       {{"a", F, {7}, false}, {"b", F, {7}}, {"y", F, {7}}},
       [](Context& c, Tensors& t) { ops::add(c, t["a"], t["b"], t["y"]); }},
      {"axpy",
       {{"x", F, {7}, false}, {"y", F, {7}}},
       [](Context& c, Tensors& t) { ops::axpy(c, 0.5f, t["x"], t["y"]); }},
      {"fill", {{"y", F, {7}, false}}, [](Context& c, Tensors& t) { ops::fill(c, 0.5f, t["y"]); }},
      {"maxpool2d_fwd",
       {{"x", F, {pool_in}}, {"y", F, {pool_out}}, {"argmax", I, {pool_out}}},
       [](Context& c, Tensors& t) { ops::maxpool2d_fwd(c, kPool, t["x"], t["y"], t["argmax"]); }},
      {"maxpool2d_bwd",
       {{"dy", F, {pool_out}}, {"argmax", I, {pool_out}}, {"dx", F, {pool_in}}},
       [](Context& c, Tensors& t) { ops::maxpool2d_bwd(c, kPool, t["dy"], t["argmax"], t["dx"]); }},
      {"global_avgpool_fwd",
       {{"x", F, {2 * 5 * 3}}, {"y", F, {2 * 3}}},
       [](Context& c, Tensors& t) { ops::global_avgpool_fwd(c, kGap, t["x"], t["y"]); }},
      {"global_avgpool_bwd",
       {{"dy", F, {2 * 3}}, {"dx", F, {2 * 5 * 3}}},
       [](Context& c, Tensors& t) { ops::global_avgpool_bwd(c, kGap, t["dy"], t["dx"]); }},
      {"pad_shortcut_fwd",
       {{"x", F, {2 * 4 * 4 * 2}}, {"y", F, {2 * 2 * 2 * 4}}},
       [](Context& c, Tensors& t) { ops::pad_shortcut_fwd(c, kPad, t["x"], t["y"]); }},
      {"pad_shortcut_bwd",
       {{"dy", F, {2 * 2 * 2 * 4}}, {"dx", F, {2 * 4 * 4 * 2}}},
       [](Context& c, Tensors& t) { ops::pad_shortcut_bwd(c, kPad, t["dy"], t["dx"]); }},
      {"linear_fwd",
       {{"x", F, {2, 5}}, {"w", F, {3, 5}}, {"b", F, {3}}, {"y", F, {2, 3}}},
       [](Context& c, Tensors& t) { ops::linear_fwd(c, kLin, t["x"], t["w"], &t["b"], t["y"]); }},
      {"linear_bwd",
       {{"x", F, {2, 5}}, {"w", F, {3, 5}}, {"dy", F, {2, 3}}, {"dx", F, {2, 5}}, {"dw", F, {3, 5}}, {"db", F, {3}}},
       [](Context& c, Tensors& t) { ops::linear_bwd(c, kLin, t["x"], t["w"], t["dy"], t["dx"], t["dw"], &t["db"]); }},
      {"dropout_fwd",
       {{"x", F, {7}, false}, {"y", F, {7}}, {"mask", F, {7}}},
       [](Context& c, Tensors& t) { ops::dropout_fwd(c, {.p = 0.5f, .seed = 1}, t["x"], t["y"], t["mask"]); }},
      {"dropout_bwd",
       {{"dy", F, {7}, false}, {"mask", F, {7}}, {"dx", F, {7}}},
       [](Context& c, Tensors& t) { ops::dropout_bwd(c, t["dy"], t["mask"], t["dx"]); }},
      {"softmax_xent_fwd",
       {{"logits", F, {nc}}, {"labels", I, {kXent.N}}, {"probs", F, {nc}}, {"loss", F, {kXent.N}}},
       [](Context& c, Tensors& t) {
         ops::softmax_xent_fwd(c, kXent, 0.1f, t["logits"], t["labels"], t["probs"], t["loss"]);
       }},
      {"softmax_xent_bwd",
       {{"probs", F, {nc}}, {"labels", I, {kXent.N}}, {"dlogits", F, {nc}}},
       [](Context& c, Tensors& t) {
         ops::softmax_xent_bwd(c, kXent, 0.1f, t["probs"], t["labels"], 1.0f, t["dlogits"]);
       }},
      {"soft_xent_fwd",
       {{"logits", F, {nc}}, {"targets", F, {nc}}, {"probs", F, {nc}}, {"loss", F, {kXent.N}}},
       [](Context& c, Tensors& t) {
         ops::soft_xent_fwd(c, kXent, 2.0f, t["logits"], t["targets"], t["probs"], t["loss"]);
       }},
      {"logit_spread_bwd",
       {{"logits", F, {nc}}, {"rows", F, {kXent.N}}, {"dlogits", F, {nc}}},
       [](Context& c, Tensors& t) { ops::logit_spread_bwd(c, kXent, 0.5f, t["logits"], t["rows"], t["dlogits"]); }},
      {"soft_xent_bwd",
       {{"probs", F, {nc}}, {"targets", F, {nc}}, {"dlogits", F, {nc}}},
       [](Context& c, Tensors& t) {
         ops::soft_xent_bwd(c, kXent, 2.0f, t["probs"], t["targets"], 1.0f, t["dlogits"]);
       }},
      {"softmax_temperature_fwd",
       {{"logits", F, {nc}}, {"probs", F, {nc}}},
       [](Context& c, Tensors& t) { ops::softmax_temperature_fwd(c, kXent, 2.0f, t["logits"], t["probs"]); }},
      {"loss_accumulate",
       {{"loss", F, {kXent.N}}, {"probs", F, {nc}}, {"labels", I, {kXent.N}}, {"acc", U, {16}}},
       [](Context& c, Tensors& t) {
         ops::loss_accumulate(c, kXent, t["loss"], t["probs"], &t["labels"], nullptr, t["acc"]);
       }},
      {"loss_accumulate",
       {{"loss", F, {kXent.N}}, {"probs", F, {nc}}, {"targets", F, {nc}}, {"acc", U, {16}}},
       [](Context& c, Tensors& t) {
         ops::loss_accumulate(c, kXent, t["loss"], t["probs"], nullptr, &t["targets"], t["acc"]);
       }},
      {"sam_ascent",
       {{"w", F, {9}}, {"g", F, {9}}, {"segments", I, {4}}, {"mask", F, {9}}, {"norms", U, {32}}, {"e", F, {9}}},
       [](Context& c, Tensors& t) {
         ops::sam_ascent(c, {9, 2}, 0.05, {t["w"], t["g"], t["segments"], &t["mask"], t["norms"], t["e"]});
       }},
      {"sgd_step",
       {{"w", F, {9}, false}, {"g", F, {9}}, {"v", F, {9}}, {"mask", F, {9}}, {"trainable", F, {9}}},
       [](Context& c, Tensors& t) { ops::sgd_step(c, {}, t["w"], t["g"], t["v"], &t["mask"], &t["trainable"]); }},
      {"magnitude_keys",
       {{"w", F, {5}, false}, {"keys", U, {40}}},
       [](Context& c, Tensors& t) { ops::magnitude_keys(c, 3, t["w"], t["keys"]); }},
      {"kth_smallest_key", {{"keys", U, {40}}}, [](Context& c, Tensors& t) { ops::kth_smallest_key(c, t["keys"], 2); }},
      {"threshold_mask",
       {{"w", F, {5}, false}, {"mask", F, {5}}},
       [](Context& c, Tensors& t) { ops::threshold_mask(c, 3, 7, t["w"], t["mask"]); }},
      {"channel_sum",
       {{"x", F, {4, 3}}, {"sum", U, {24}}},
       [](Context& c, Tensors& t) { ops::channel_sum(c, 3, t["x"], t["sum"]); }},
      {"augment",
       {{"images", U, {3, 4, 4, 3}},
        {"index", I, {2}},
        {"crop", I, {4}},
        {"flip", U, {2}},
        {"mean", F, {3}},
        {"std", F, {3}},
        {"out", F, {2 * img}}},
       [](Context& c, Tensors& t) {
         ops::augment(c, kAug, {t["images"], t["index"], &t["crop"], &t["flip"], t["mean"], t["std"], t["out"]});
       }},
      {"stamp",
       {{"bank", F, {2, 2, 2, 3}}, {"patch", I, {2}}, {"origin", I, {4}}, {"x", F, {2, 4, 4, 3}}},
       [](Context& c, Tensors& t) { ops::stamp(c, kStamp, t["bank"], t["patch"], t["origin"], t["x"]); }},
  };
}

// The argument replaced by a bad one, and what the message must then say about it.
struct Fault {
  const char* what;
  std::function<Tensor(const ArgSpec&)> make;
  std::function<std::string(const ArgSpec&)> says;
};

const Fault kFaults[] = {
    {"on cuda:0", [](const ArgSpec& a) { return Tensor::borrow(nullptr, {0}, a.dtype, Device::cuda(0)); },
     [](const ArgSpec&) { return std::string("is on cuda:0, expected cpu"); }},
    {"wrong dtype",
     [](const ArgSpec& a) {
       return good({a.name, a.dtype == DType::F32 ? DType::I32 : DType::F32, a.shape});
     },
     [](const ArgSpec& a) { return std::string(", expected ") + dtype_name(a.dtype); }},
    {"one element too many",
     [](const ArgSpec& a) {
       return good({a.name, a.dtype, {shape_numel(a.shape) + 1}});
     },
     [](const ArgSpec&) { return std::string("elements"); }},
    {"no storage", [](const ArgSpec& a) { return Tensor::borrow(nullptr, a.shape, a.dtype, Device::cpu()); },
     [](const ArgSpec&) { return std::string("has no storage"); }},
};

TEST_CASE("every op names itself and the argument at fault: wrong device, dtype, size, no storage") {
  Context ctx;
  for (const OpCase& c : op_cases()) {
    Tensors ok;
    for (const ArgSpec& a : c.args) ok[a.name] = good(a);
    {
      CAPTURE(c.op);
      Tensors t = ok;
      CHECK(error_of([&] { c.call(ctx, t); }) == "(no error)");
    }
    for (const ArgSpec& a : c.args)
      for (const Fault& f : kFaults) {
        if (!a.sized && std::string(f.what) == "one element too many") continue;
        CAPTURE(c.op);
        CAPTURE(a.name);
        CAPTURE(f.what);
        Tensors t = ok;
        t[a.name] = f.make(a);
        const std::string e = error_of([&] { c.call(ctx, t); });
        CHECK_MESSAGE(e.find(c.op + ": argument '" + a.name + "'") != std::string::npos, e);
        CHECK_MESSAGE(e.find(f.says(a)) != std::string::npos, e);
      }
  }
}

TEST_CASE("op boundary messages read as the op, the argument and what was expected") {
  Context ctx;
  Tensor x = Tensor::host({2, 3}), y = Tensor::host({2, 4});
  const std::string e = error_of([&] { ops::relu_fwd(ctx, x, y); });
  CHECK_MESSAGE(e.find("relu_fwd: argument 'y' has 8 elements (shape [2, 4]), expected 6") != std::string::npos, e);
  Tensor on_gpu = Tensor::borrow(nullptr, {0}, DType::F32, Device::cuda(0));
  const std::string d = error_of([&] { ops::fill(ctx, 1.0f, on_gpu); });
  CHECK_MESSAGE(d.find("fill: argument 'y' is on cuda:0, expected cpu") != std::string::npos, d);
}

TEST_CASE("augment checks its indices on the host and takes a dataset of any whole number of images") {
  Context ctx;
  Tensor images = Tensor::host({5, 4, 4, 3}, DType::U8), index = Tensor::host({2}, DType::I32);
  Tensor mean = Tensor::host({3}), std = Tensor::host({3}), out = Tensor::host({2, 4, 4, 3});
  std::fill_n(images.data<uint8_t>(), images.numel(), uint8_t{9});
  for (int c = 0; c < 3; ++c) mean.data<float>()[c] = 0.5f, std.data<float>()[c] = 0.25f;
  index.data<int32_t>()[0] = 4, index.data<int32_t>()[1] = 0;
  CHECK(error_of([&] { ops::augment(ctx, kAug, {images, index, nullptr, nullptr, mean, std, out}); }) == "(no error)");
  index.data<int32_t>()[1] = 5;
  const std::string e = error_of([&] { ops::augment(ctx, kAug, {images, index, nullptr, nullptr, mean, std, out}); });
  CHECK_MESSAGE(e.find("augment: sample 1 asks for image 5 of 5") != std::string::npos, e);
}

TEST_CASE("loss_accumulate takes labels or targets, and sam_ascent checks its segments on the host") {
  Context ctx;
  Tensor loss = Tensor::host({3}), probs = Tensor::host({3, 4}), targets = Tensor::host({3, 4});
  Tensor labels = Tensor::host({3}, DType::I32), acc = Tensor::host({16}, DType::U8);
  const std::string both = error_of([&] { ops::loss_accumulate(ctx, kXent, loss, probs, &labels, &targets, acc); });
  CHECK_MESSAGE(both.find("loss_accumulate: give exactly one of labels and targets") != std::string::npos, both);
  const std::string none = error_of([&] { ops::loss_accumulate(ctx, kXent, loss, probs, nullptr, nullptr, acc); });
  CHECK_MESSAGE(none.find("loss_accumulate: give exactly one of labels and targets") != std::string::npos, none);

  Tensor w = Tensor::host({9}), g = Tensor::host({9}), e = Tensor::host({9});
  Tensor segments = Tensor::host({4}, DType::I32), norms = Tensor::host({32}, DType::U8);
  std::fill_n(w.data<float>(), 9, 1.0f);
  std::fill_n(g.data<float>(), 9, 1.0f);
  auto ascent = [&](std::vector<int32_t> pairs) {
    std::copy(pairs.begin(), pairs.end(), segments.data<int32_t>());
    return error_of([&] { ops::sam_ascent(ctx, {9, 2}, 0.05, {w, g, segments, nullptr, norms, e}); });
  };
  CHECK(ascent({0, 4, 4, 9}) == "(no error)");
  const std::string past = ascent({0, 4, 4, 10});
  CHECK_MESSAGE(past.find("sam_ascent: segment 1 is [4, 10)") != std::string::npos, past);
  const std::string overlap = ascent({0, 5, 4, 9});
  CHECK_MESSAGE(overlap.find("sam_ascent: segment 1 is [4, 9), after 5") != std::string::npos, overlap);
  const std::string reversed = ascent({3, 2, 4, 9});
  CHECK_MESSAGE(reversed.find("sam_ascent: segment 0 is [3, 2)") != std::string::npos, reversed);
}

}  // namespace
}  // namespace activeip
