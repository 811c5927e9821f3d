// Whole-file reads, zlib gunzip and atomic writes on POSIX file descriptors. The atomic
// write relies on rename(2) replacing the destination in one step within a directory; the
// fsync of the file before the rename and of the directory after it make the new content
// durable, so that after a power cut PATH holds either the old or the new bytes.
#include "engine/core/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "base/error.h"

namespace activeip {

namespace {

std::string errno_text(int err) {
  return std::strerror(err);
}

// Closes the descriptor when the scope ends, whatever path it ends by.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  // Closes now, returning close(2)'s errno (0 on success): a deferred write error of some
  // file systems surfaces only here.
  int close_now() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

bool has_gzip_magic(const std::vector<uint8_t>& bytes) {
  return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

// Gunzips `in` into at most max_bytes. With head, stops (without error) once max_bytes are
// out; otherwise more content than max_bytes is an Error. The output grows with what is
// actually decoded, so a stream claiming (in its trailer) or producing a huge size costs
// at most max_bytes.
std::vector<uint8_t> gunzip(const std::vector<uint8_t>& in, const std::string& path, size_t max_bytes, bool head) {
  z_stream zs{};
  // 16 + MAX_WBITS: accept the gzip wrapper only (header and CRC-32/ISIZE trailer checked).
  ENSURE(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, "%s: cannot initialise zlib", path.c_str());
  struct InflateEnd {
    z_stream* zs;
    ~InflateEnd() { inflateEnd(zs); }
  } end_guard{&zs};

  // The trailer's ISIZE is the size of the last member mod 2^32: a good first guess only,
  // capped by deflate's maximal ratio (about 1032:1) and by max_bytes.
  size_t guess = in.size() * 4;
  if (in.size() >= 4) {
    const size_t n = in.size();
    const size_t isize = size_t(in[n - 4]) | size_t(in[n - 3]) << 8 | size_t(in[n - 2]) << 16 | size_t(in[n - 1]) << 24;
    guess = std::max(guess, std::min(isize, n * 1032));
  }
  // One byte over max_bytes tells "exactly max_bytes" from "more".
  const size_t cap = head ? max_bytes : max_bytes + 1;
  std::vector<uint8_t> out(std::min(std::max<size_t>(guess, 4096), cap));

  size_t in_pos = 0, out_pos = 0;
  constexpr size_t kChunk = size_t(1) << 30;  // z_stream counts in uInt
  for (;;) {
    if (out_pos == out.size()) {
      if (out_pos == cap) break;
      out.resize(std::min(out.size() * 2, cap));
    }
    const size_t in_n = std::min(in.size() - in_pos, kChunk);
    const size_t out_n = std::min(out.size() - out_pos, kChunk);
    zs.next_in = const_cast<Bytef*>(in.data() + in_pos);
    zs.avail_in = static_cast<uInt>(in_n);
    zs.next_out = out.data() + out_pos;
    zs.avail_out = static_cast<uInt>(out_n);
    const int rc = inflate(&zs, Z_NO_FLUSH);
    in_pos += in_n - zs.avail_in;
    out_pos += out_n - zs.avail_out;
    if (rc == Z_STREAM_END) {
      if (in_pos == in.size()) break;
      // Another gzip member follows (what `cat a.gz b.gz` or pigz produce).
      const bool member = in.size() - in_pos >= 2 && in[in_pos] == 0x1f && in[in_pos + 1] == 0x8b;
      ENSURE(member, "%s: %zu bytes of trailing data after the gzip stream", path.c_str(), in.size() - in_pos);
      ENSURE(inflateReset(&zs) == Z_OK, "%s: cannot reset zlib", path.c_str());
      continue;
    }
    ENSURE(rc != Z_DATA_ERROR, "%s: corrupt gzip stream (%s)", path.c_str(), zs.msg ? zs.msg : "invalid data");
    ENSURE(rc != Z_MEM_ERROR, "%s: out of memory while decompressing", path.c_str());
    ENSURE(rc == Z_OK || rc == Z_BUF_ERROR, "%s: gzip error %d (%s)", path.c_str(), rc, zs.msg ? zs.msg : "?");
    // No progress possible with input left to give: the stream ended before its trailer.
    ENSURE(!(in_pos == in.size() && out_pos < out.size()), "%s: truncated gzip stream (%zu bytes decoded)",
           path.c_str(), out_pos);
  }
  ENSURE(out_pos <= max_bytes, "%s: the gzip stream holds more than %zu bytes, the most this file may hold",
         path.c_str(), max_bytes);
  out.resize(out_pos);
  return out;
}

std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Errors name `path`, the file being written, not its temporary name.
void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t(1) << 30));
    if (w < 0 && errno == EINTR) continue;
    ENSURE(w > 0, "cannot write %s: %s", path.c_str(), errno_text(w < 0 ? errno : EIO).c_str());
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// Opens a fresh temporary file next to `path` (O_EXCL, so two writers never share one).
std::pair<int, std::string> open_temp_beside(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  const auto now = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  const size_t slash = path.find_last_of('/');
  const std::string dir_prefix = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string base = path.substr(dir_prefix.size());
  for (int attempt = 0;; ++attempt) {
    const std::string tmp =
        strfmt("%s.%s.tmp-%ld-%llx", dir_prefix.c_str(), base.c_str(), static_cast<long>(::getpid()),
               static_cast<unsigned long long>(now + counter.fetch_add(1)));
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return {fd, tmp};
    const int err = errno;
    ENSURE(err == EEXIST && attempt < 100, "cannot write %s: cannot create a temporary file in %s: %s", path.c_str(),
           parent_dir(path).c_str(), errno_text(err).c_str());
  }
}

// Makes a rename into PATH's directory durable. Some file systems cannot fsync a directory
// (EINVAL); there the rename is as durable as that file system allows.
void sync_dir_of(const std::string& path) {
  const std::string dir = parent_dir(path);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ENSURE(dfd >= 0, "wrote %s but cannot open its directory to sync it: %s", path.c_str(), errno_text(errno).c_str());
  FdGuard dir_guard(dfd);
  int rc;
  do rc = ::fsync(dfd);
  while (rc != 0 && errno == EINTR);
  ENSURE(rc == 0 || errno == EINVAL || errno == ENOTSUP, "wrote %s but the fsync of %s failed: %s", path.c_str(),
         dir.c_str(), errno_text(errno).c_str());
}

}  // namespace

std::vector<uint8_t> read_file(const std::string& path) {
  int fd;
  do fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  ENSURE(fd >= 0, "cannot open %s: %s", path.c_str(), errno_text(errno).c_str());
  FdGuard guard(fd);
  struct stat st {};
  ENSURE(::fstat(fd, &st) == 0, "cannot stat %s: %s", path.c_str(), errno_text(errno).c_str());
  ENSURE(!S_ISDIR(st.st_mode), "cannot read %s: it is a directory", path.c_str());

  // st_size is only a hint (pipes and /proc files report 0): read until end of file.
  std::vector<uint8_t> bytes(st.st_size > 0 ? static_cast<size_t>(st.st_size) : 0);
  size_t pos = 0;
  for (;;) {
    if (pos == bytes.size()) bytes.resize(std::max<size_t>(bytes.size() * 2, 65536));
    const ssize_t r = ::read(fd, bytes.data() + pos, std::min<size_t>(bytes.size() - pos, size_t(1) << 30));
    if (r < 0 && errno == EINTR) continue;
    ENSURE(r >= 0, "%s: read error: %s", path.c_str(), errno_text(errno).c_str());
    if (r == 0) break;
    pos += static_cast<size_t>(r);
  }
  bytes.resize(pos);
  return bytes;
}

namespace {

std::vector<uint8_t> read_maybe_gzip(const std::string& path, size_t max_bytes, bool head) {
  const std::string gz = path + ".gz";
  const std::string& source = file_exists(path) || !file_exists(gz) ? path : gz;
  std::vector<uint8_t> bytes = read_file(source);
  if (has_gzip_magic(bytes)) return gunzip(bytes, source, max_bytes, head);
  if (head && bytes.size() > max_bytes) bytes.resize(max_bytes);
  return bytes;  // what is on disk: its size is the caller's to judge
}

}  // namespace

std::vector<uint8_t> read_file_maybe_gzip(const std::string& path, size_t max_bytes) {
  return read_maybe_gzip(path, max_bytes, false);
}

std::vector<uint8_t> read_head_maybe_gzip(const std::string& path, size_t n) {
  return read_maybe_gzip(path, n, true);
}

void write_file_atomic(const std::string& path, const std::vector<std::pair<const void*, size_t>>& pieces) {
  ENSURE(!path.empty() && path.back() != '/', "cannot write '%s': not a file name", path.c_str());
  auto [fd, tmp] = open_temp_beside(path);
  FdGuard guard(fd);
  try {
    for (const auto& [data, n] : pieces) write_all(fd, data, n, path);
    int rc;
    do rc = ::fsync(fd);
    while (rc != 0 && errno == EINTR);
    ENSURE(rc == 0, "cannot write %s: fsync failed: %s", path.c_str(), errno_text(errno).c_str());
    const int close_err = guard.close_now();
    ENSURE(close_err == 0, "cannot write %s: close failed: %s", path.c_str(), errno_text(close_err).c_str());
    ENSURE(::rename(tmp.c_str(), path.c_str()) == 0, "cannot write %s: rename failed: %s", path.c_str(),
           errno_text(errno).c_str());
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }

  sync_dir_of(path);
}

void rename_durable(const std::string& from, const std::string& to) {
  ENSURE(::rename(from.c_str(), to.c_str()) == 0, "cannot rename %s to %s: %s", from.c_str(), to.c_str(),
         errno_text(errno).c_str());
  sync_dir_of(to);
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode);
}

}  // namespace activeip
