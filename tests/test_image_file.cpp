// Image files (engine/data/image_file.h): PNG and JPEG decoded as written (libpng's and
// TurboJPEG's own encoders write them here), every bad file refused naming it, and the resize
// against Pillow's Image.resize(BILINEAR) (values computed with Pillow 13).
#include <doctest/doctest.h>

#include <cstdlib>
#include <vector>

#include "base/error.h"
#include "engine/core/file_io.h"
#include "engine/data/image_file.h"
#include "tests/cli_util.h"
#include "tests/image_files.h"

using namespace activeip;

namespace {

Image pattern(int H, int W, int C) {
  Image im{H, W, C, std::vector<uint8_t>(static_cast<size_t>(H) * W * C)};
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x)
      for (int c = 0; c < C; ++c)
        im.pixels[(static_cast<size_t>(y) * W + x) * C + c] =
            static_cast<uint8_t>((y * 37 + x * 11 + c * 91 + y * x * 13) % 256);
  return im;
}

void check_near(const Image& got, int H, int W, int C, const std::vector<int>& want, int tolerance) {
  REQUIRE(got.H == H);
  REQUIRE(got.W == W);
  REQUIRE(got.C == C);
  REQUIRE(got.pixels.size() == want.size());
  int worst = 0;
  for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::abs(got.pixels[i] - want[i]));
  CHECK(worst <= tolerance);
}

}  // namespace

TEST_CASE("image files: PNG (grey, RGB) and JPEG decode to what was written") {
  const test::TempDir dir;
  for (const int C : {1, 3}) {
    const Image im = pattern(13, 9, C);
    const std::string png = dir / strfmt("p%d.png", C), jpg = dir / strfmt("j%d.jpg", C);
    test::write_png(png, im);
    const Image back = read_image(png);
    CHECK(back.H == 13);
    CHECK(back.W == 9);
    CHECK(back.C == C);
    CHECK(back.pixels == im.pixels);
    test::write_jpeg(jpg, im, 100);
    const Image j = read_image(jpg);
    REQUIRE(j.C == C);
    REQUIRE(j.pixels.size() == im.pixels.size());
    double err = 0;
    for (size_t i = 0; i < im.pixels.size(); ++i) err += std::abs(j.pixels[i] - im.pixels[i]);
    CHECK(err / static_cast<double>(im.pixels.size()) < 8);  // lossy, at quality 100
  }
}

TEST_CASE("image files: bad files are refused, naming the file and what is wrong") {
  const test::TempDir dir;
  const Image im = pattern(64, 64, 3);
  test::write_png(dir / "good.png", im);
  test::write_jpeg(dir / "good.jpg", im, 90);
  const std::vector<uint8_t> png = read_file(dir / "good.png"), jpg = read_file(dir / "good.jpg");
  const auto write = [&](const std::string& name, const std::vector<uint8_t>& bytes) {
    test::write_bytes(dir / name, bytes);
    return dir / name;
  };
  const std::string text = write("notes.png", {'h', 'e', 'l', 'l', 'o', '\n'});
  CHECK_THROWS_WITH_AS(read_image(text), doctest::Contains((text + ": not a PNG or JPEG image").c_str()), Error);
  const std::string half_png = write("half.png", {png.begin(), png.begin() + png.size() / 2});
  CHECK_THROWS_WITH_AS(read_image(half_png), doctest::Contains((half_png + ": damaged or truncated PNG").c_str()),
                       Error);
  const std::string half_jpg = write("half.jpg", {jpg.begin(), jpg.begin() + jpg.size() / 2});
  CHECK_THROWS_WITH_AS(read_image(half_jpg), doctest::Contains((half_jpg + ": damaged or truncated JPEG").c_str()),
                       Error);
  const std::string header_only = write("head.jpg", {jpg.begin(), jpg.begin() + 4});
  CHECK_THROWS_WITH_AS(read_image(header_only),
                       doctest::Contains((header_only + ": damaged or truncated JPEG").c_str()), Error);
  const std::string head_png = write("head.png", {png.begin(), png.begin() + 12});
  CHECK_THROWS_WITH_AS(read_image(head_png), doctest::Contains((head_png + ": damaged or truncated PNG").c_str()),
                       Error);
  test::write_png(dir / "alpha.png", pattern(4, 4, 4));
  CHECK_THROWS_WITH_AS(read_image(dir / "alpha.png"), doctest::Contains("alpha channel"), Error);
  CHECK_THROWS_WITH_AS(read_image(dir / "missing.png"), doctest::Contains("missing.png"), Error);
}

TEST_CASE("image files: the resize is Pillow's bilinear, shrinking and enlarging") {
  const Image rgb = pattern(7, 5, 3);
  // Image.frombytes('RGB', (5, 7), …).resize((3, 4), Image.BILINEAR).tobytes()
  check_near(resize_image(rgb, 4, 3), 4, 3, 3,
             {27,  118, 197, 55, 143, 140, 83,  162, 143, 93,  184, 70,  137, 159, 90,  141, 99,  139,
              150, 154, 98,  98, 120, 126, 110, 172, 108, 133, 80,  164, 114, 172, 101, 164, 134, 166},
             1);
  // …resize((9, 11)): the first three rows (27 pixels) of the 11×9 result.
  const Image big = resize_image(rgb, 11, 9);
  check_near(Image{3, 9, 3, {big.pixels.begin(), big.pixels.begin() + 81}}, 3, 9, 3,
             {0,  91,  182, 4,  95,  186, 10,  101, 192, 16,  107, 198, 22,  113, 204, 28,  119, 210, 34, 125, 216,
              40, 131, 222, 44, 135, 226, 17,  108, 199, 23,  114, 205, 32,  123, 214, 41,  132, 172, 51, 142, 116,
              60, 151, 125, 69, 160, 135, 79,  170, 144, 84,  175, 150, 40,  131, 199, 49,  140, 207, 62, 153, 221,
              77, 168, 132, 91, 182, 17,  104, 182, 30,  119, 187, 45,  133, 200, 59,  141, 209, 67},
             1);
  // A grey image, shrunk in both directions: …frombytes('L', …).resize((3, 2)).
  Image grey{7, 5, 1, {}};
  for (size_t i = 0; i < rgb.pixels.size(); i += 3) grey.pixels.push_back(rgb.pixels[i]);
  check_near(resize_image(grey, 2, 3), 2, 3, 1, {72, 99, 112, 136, 109, 140}, 1);
  CHECK(resize_image(rgb, 7, 5).pixels == rgb.pixels);  // the same size: untouched
}
