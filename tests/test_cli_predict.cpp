// `activeip predict` through the real binary on the suite's convnet (synthetic, 32×32 RGB):
// test records written as PNG get the probabilities the library's own forward pass gives
// their pixels, JPEG and resized files are answered too, and a file that is not an image, a
// truncated one or one of the wrong channel count stops the command naming the file, with
// nothing printed.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>

#include "engine/train/trainer.h"
#include "nets/model_io.h"
#include "tests/cli_util.h"
#include "tests/image_files.h"

using namespace activeip;
using test::json_of;
using test::TempDir;

namespace {

Image record(const Dataset& d, int64_t i) {
  const size_t n = static_cast<size_t>(d.H) * d.W * d.C;
  const uint8_t* p = d.images.data<uint8_t>() + static_cast<size_t>(i) * n;
  return {d.H, d.W, d.C, {p, p + n}};
}

}  // namespace

TEST_CASE("cli predict: PNG and JPEG files get the model's probabilities for their pixels") {
  TempDir dir;
  test::protected_model(dir, "protected-v2");
  const DataSplits data = load_data({"synthetic", "", 0, 4});
  std::vector<std::string> args = {"predict", "--model", "m.safetensors", "--json", "--top", "3"};
  for (int i = 0; i < 4; ++i) {
    test::write_png(dir / strfmt("r%d.png", i), record(data.test, i));
    args.push_back(strfmt("r%d.png", i));
  }
  const nlohmann::json j = json_of(test::ok(dir, args));
  REQUIRE(j["predictions"].size() == 4);

  // The library's eval-mode forward pass of the same records.
  Context ctx;
  LoadedModel m = load_model(dir / "m.safetensors", ctx);
  const Tensor logits = predict(*m.net, ctx, data.test, m.meta.norm, {0, 1, 2, 3}, 64);
  const int C = m.meta.num_classes;
  for (int i = 0; i < 4; ++i) {
    const auto& p = j["predictions"][i];
    CHECK(p["image"] == strfmt("r%d.png", i));
    REQUIRE(p["top"].size() == 3);
    const float* z = logits.data<float>() + i * C;
    const int best = static_cast<int>(std::max_element(z, z + C) - z);
    double total = 0;
    for (int c = 0; c < C; ++c) total += std::exp(static_cast<double>(z[c]) - z[best]);
    CHECK(p["top"][0]["class"] == best);
    CHECK(p["top"][0]["name"] == strfmt("class%d", best));
    CHECK(p["top"][0]["probability"].get<double>() == doctest::Approx(1.0 / total).epsilon(1e-5));
    CHECK(p["top"][0]["probability"] >= p["top"][1]["probability"]);
    CHECK(p["top"][1]["probability"] >= p["top"][2]["probability"]);
  }

  // JPEG, and an image of another size (resized to 32×32); the human form names the file.
  test::write_jpeg(dir / "r0.jpg", record(data.test, 0), 95);
  Image big{64, 48, 3, {}};
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 48; ++x)
      for (int c = 0; c < 3; ++c) big.pixels.push_back(record(data.test, 1).pixels[((y / 2) * 32 + x * 2 / 3) * 3 + c]);
  test::write_png(dir / "big.png", big);
  const test::CliRun human = test::ok(dir, {"predict", "--model", "m.safetensors", "--top", "2", "r0.jpg", "big.png"});
  CHECK(human.out.rfind("r0.jpg:  class", 0) == 0);
  CHECK(human.out.find("\nbig.png:  class") != std::string::npos);
}

TEST_CASE("cli predict: a bad file stops the command, naming it, with nothing printed") {
  TempDir dir;
  test::protected_model(dir, "protected-v2");
  const DataSplits data = load_data({"synthetic", "", 0, 1});
  test::write_png(dir / "good.png", record(data.test, 0));
  Image grey{32, 32, 1, std::vector<uint8_t>(32 * 32, 128)};
  test::write_png(dir / "grey.png", grey);
  Image rgba{32, 32, 4, std::vector<uint8_t>(32 * 32 * 4, 200)};
  test::write_png(dir / "rgba.png", rgba);
  test::write_bytes(dir / "notes.txt", {'t', 'e', 'x', 't', '\n'});
  const std::vector<std::string> predict = {"predict", "--model", "m.safetensors", "good.png"};
  const auto refused = [&](const std::string& file, std::initializer_list<std::string> needles) {
    const test::CliRun r = test::rejected(dir, test::with(predict, {file}), 1, needles);
    CHECK(r.out.empty());
  };
  refused("notes.txt", {"notes.txt: not a PNG or JPEG image"});
  refused("grey.png", {"grey.png: a grey image", "takes colour (RGB) images"});
  refused("rgba.png", {"rgba.png", "alpha channel"});
  refused("none.png", {"none.png"});
  test::rejected(dir, test::with(predict, {"--top", "0"}), 2, {"--top"});
  test::rejected(dir, {"predict", "--model", "m.safetensors"}, 2, {"images"});
}
