// The owner key: 32 random bytes (OpenSSL's RAND_bytes), stored as 64 hex digits in a file
// of mode 0600. Its id — the first 8 bytes of SHA-256(key), in hex — is what models and the
// registry record, so that a wrong key is detected without ever storing the key.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace activeip {

class OwnerKey {
 public:
  static constexpr size_t kBytes = 32;

  // Fresh bytes from OpenSSL's CSPRNG.
  static OwnerKey generate();
  // A key from given bytes (tests, forged patterns drawn from a seeded stream).
  explicit OwnerKey(const std::array<uint8_t, kBytes>& bytes) : bytes_(bytes) {}

  // Reads a key file. Error when the file is missing, is readable or writable by group or
  // others ("chmod 600 PATH"), or does not hold exactly 64 hex digits (a trailing newline
  // is allowed).
  static OwnerKey load(const std::string& path);
  // Writes the key as hex with mode 0600; refuses to overwrite an existing file, and never
  // leaves a partial file behind (written to a temporary name, then hard-linked into place).
  void save(const std::string& path) const;

  const std::array<uint8_t, kBytes>& bytes() const { return bytes_; }
  std::string id() const;  // 16 hex digits

  // HMAC-SHA256(key, message).
  std::array<uint8_t, 32> hmac(std::string_view message) const;

 private:
  std::array<uint8_t, kBytes> bytes_{};
};

std::string to_hex(const uint8_t* bytes, size_t n);

}  // namespace activeip
