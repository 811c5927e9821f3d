// Owner keys: generation (OpenSSL RAND_bytes), the key file (hex, mode 0600, never
// overwritten, never half-written), the key id (SHA-256 prefix) and HMAC-SHA256.
#include "fingerprint/key.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/error.h"
#include "engine/core/file_io.h"

namespace activeip {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string to_hex(const uint8_t* bytes, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 15];
  }
  return out;
}

OwnerKey OwnerKey::generate() {
  std::array<uint8_t, kBytes> b{};
  ENSURE(RAND_bytes(b.data(), static_cast<int>(b.size())) == 1, "OpenSSL could not produce random bytes for a key");
  return OwnerKey(b);
}

OwnerKey OwnerKey::load(const std::string& path) {
  struct stat st {};
  ENSURE(stat(path.c_str(), &st) == 0, "key file %s: %s", path.c_str(), std::strerror(errno));
  ENSURE(S_ISREG(st.st_mode), "key file %s is not a regular file", path.c_str());
  ENSURE((st.st_mode & 077) == 0, "key file %s is accessible by group or others (mode %04o); run: chmod 600 %s",
         path.c_str(), static_cast<unsigned>(st.st_mode & 07777), path.c_str());
  const std::vector<uint8_t> text = read_file(path);
  size_t len = text.size();
  while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ')) --len;
  ENSURE(len == 2 * kBytes, "key file %s must hold %zu hex digits, it holds %zu characters", path.c_str(), 2 * kBytes,
         len);
  std::array<uint8_t, kBytes> b{};
  for (size_t i = 0; i < kBytes; ++i) {
    const int hi = hex_digit(static_cast<char>(text[2 * i])), lo = hex_digit(static_cast<char>(text[2 * i + 1]));
    ENSURE(hi >= 0 && lo >= 0, "key file %s: character %zu is not a hex digit", path.c_str(),
           hi < 0 ? 2 * i : 2 * i + 1);
    b[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return OwnerKey(b);
}

void OwnerKey::save(const std::string& path) const {
  ENSURE(!std::filesystem::exists(std::filesystem::symlink_status(path)),
         "%s already exists; a key is never overwritten (remove it first if you really mean to)", path.c_str());
  const std::filesystem::path target(path);
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  std::string tmp = (dir / (".key.XXXXXX")).string();
  // mkstemp creates the file with mode 0600 whatever the umask.
  const int fd = mkstemp(tmp.data());
  ENSURE(fd >= 0, "cannot write key file %s: %s", path.c_str(), std::strerror(errno));
  const std::string text = to_hex(bytes_.data(), bytes_.size()) + "\n";
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
  const int write_errno = errno;
  close(fd);
  if (!written) {
    unlink(tmp.c_str());
    throw Error(strfmt("cannot write key file %s: %s", path.c_str(), std::strerror(write_errno)));
  }
  // link() fails if the target appeared meanwhile: the check above and the write are one
  // atomic step as far as an existing file is concerned.
  const int linked = link(tmp.c_str(), path.c_str());
  const int link_errno = errno;
  unlink(tmp.c_str());
  ENSURE(linked == 0, "cannot create key file %s: %s", path.c_str(), std::strerror(link_errno));
}

std::string OwnerKey::id() const {
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(bytes_.data(), bytes_.size(), digest);
  return to_hex(digest, 8);
}

std::array<uint8_t, 32> OwnerKey::hmac(std::string_view message) const {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  const uint8_t* ok = HMAC(EVP_sha256(), bytes_.data(), static_cast<int>(bytes_.size()),
                           reinterpret_cast<const uint8_t*>(message.data()), message.size(), out.data(), &len);
  ENSURE(ok != nullptr && len == out.size(), "OpenSSL HMAC-SHA256 failed");
  return out;
}

}  // namespace activeip
