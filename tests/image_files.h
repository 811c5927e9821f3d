// Writes test images with the libraries' own encoders: PNG through libpng's simplified API
// (grey, RGB or RGBA by the channel count), JPEG through TurboJPEG (grey or RGB, 4:4:4).
#pragma once

#include <png.h>
#include <turbojpeg.h>

#include <doctest/doctest.h>

#include <string>

#include "engine/data/image_file.h"
#include "tests/test_util.h"

namespace activeip::test {

inline void write_png(const std::string& path, const Image& im) {
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(im.W);
  png.height = static_cast<png_uint_32>(im.H);
  png.format = im.C == 1 ? PNG_FORMAT_GRAY : im.C == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
  REQUIRE_MESSAGE(png_image_write_to_file(&png, path.c_str(), 0, im.pixels.data(), 0, nullptr), png.message);
}

inline void write_jpeg(const std::string& path, const Image& im, int quality) {
  tjhandle tj = tjInitCompress();
  REQUIRE(tj != nullptr);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  const int rc = tjCompress2(tj, im.pixels.data(), im.W, 0, im.H, im.C == 1 ? TJPF_GRAY : TJPF_RGB, &buf, &size,
                             im.C == 1 ? TJSAMP_GRAY : TJSAMP_444, quality, 0);
  tjDestroy(tj);
  REQUIRE(rc == 0);
  write_bytes(path, {buf, buf + size});
  tjFree(buf);
}

}  // namespace activeip::test
