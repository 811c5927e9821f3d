// What the fuzz harnesses share: each defines LLVMFuzzerTestOneInput over one input format,
// runs the project's own reader on the bytes and accepts exactly one outcome besides success,
// an activeip::Error; any other exception, a crash, a leak or undefined behaviour is a defect.
// Readers that take a path get the bytes as a file in a directory of this process's own.
#pragma once

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace activeip::fuzz {

// This process's scratch directory (under $TMPDIR, else /tmp; scripts/fuzz.sh points TMPDIR
// at a tmpfs when there is one), made on first use.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string d = std::string(tmp && *tmp ? tmp : "/tmp") + "/activeip-fuzz-XXXXXX";
    if (::mkdtemp(d.data()) == nullptr) std::abort();
    return d;
  }();
  static const int removed_at_exit = std::atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(scratch_dir(), ec);
  });
  (void)removed_at_exit;
  return dir;
}

// Writes the bytes to scratch_dir()/NAME (replacing it, mode 0600, not synced: nothing here
// needs to survive) and returns the path.
inline std::string scratch_file(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || (size > 0 && ::write(fd, data, size) != static_cast<ssize_t>(size)) || ::close(fd) != 0) std::abort();
  return path;
}

// Writes the bytes as scratch_file does, gzipped first when `gzip` (one member, fast level):
// the readers' gunzip path then sees valid streams of arbitrary content.
inline std::string scratch_file(const std::string& name, const uint8_t* data, size_t size, bool gzip) {
  if (!gzip) return scratch_file(name, data, size);
  std::vector<uint8_t> out(compressBound(static_cast<uLong>(size)) + 32);
  z_stream zs{};
  if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  zs.next_in = const_cast<Bytef*>(data);
  zs.avail_in = static_cast<uInt>(size);
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return scratch_file(name, out.data(), out.size());
}

}  // namespace activeip::fuzz
