// User tokens (DESIGN §3 "User token"): what a registered user presents to authenticate
// through a model without the owner key. For every model the registry records the user as
// embedded in: the model's id, scheme, code length, input geometry (H, W, C) and classes, and
// the user's rendered patterns for it (bits, patch geometry, corner and pixel position,
// label) — for a locked model the user's lock pattern instead; besides the user's name, code index and the key id.
// Never the key, nor anything the key or another user's patterns follow from: each pattern is an HMAC output of its
// own. On disk a small versioned JSON document, {"format": "activeip-token", "version": 1, …}, written once (mode 0600,
// never overwritten, never half-written).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fingerprint/key.h"
#include "fingerprint/pattern.h"
#include "fingerprint/registry.h"

namespace activeip {

inline constexpr const char* kTokenFormat = "activeip-token";
inline constexpr int kTokenVersion = 1;

// One model's part of a token: what the model is, and the user's patterns for it — pattern j
// carries label j of the user's code, at its corner of an H×W image (PatternSpec::top/left).
struct TokenModel {
  std::string id;      // model_id(): SHA-256 of the weights, 64 lowercase hex digits
  std::string scheme;  // the fingerprint scheme the model was trained under
  std::string net, dataset;
  int code_length = 0;
  int H = 0, W = 0, C = 0, classes = 0;
  std::vector<Fingerprint> patterns;  // code_length of them, in code order; none for a locked model
  // A locked model's (lock mode, fingerprint/lock.h): the user's lock pattern, at its corner
  // of lock_spec(H, W, C, classes), which unlocks the model; its users have no code patterns.
  std::optional<Fingerprint> lock;
  // scheme_for(scheme).spec(H, W, C, classes, code_length): where the patterns go.
  PatternSpec spec() const;
  bool operator==(const TokenModel&) const = default;
};

struct UserToken {
  std::string user;
  int64_t code = -1;   // the registry's code index of the user
  std::string key_id;  // OwnerKey::id() of the key the patterns were derived under
  std::string issued;  // ISO-8601 UTC
  std::vector<TokenModel> models;

  // The part for model `id`, or null.
  const TokenModel* model(const std::string& id) const;

  std::string to_json() const;
  // Error "token PATH: …" saying what is wrong: not JSON (truncated, garbage), another
  // format, another version, a missing or ill-typed field, a pattern that is not where or
  // what its model's scheme says (wrong bit count, position, label), a model listed twice.
  static UserToken from_json(const std::string& text, const std::string& path);
  // Reads and validates a token file; Error naming the file for a missing, unreadable,
  // oversized or invalid one.
  static UserToken load(const std::string& path);
  // Writes the token with mode 0600: refuses to overwrite an existing file (Error naming
  // it), and never leaves a partial file behind (a temporary file, fsync'd, then hard-linked
  // into place; the directory fsync'd).
  void save(const std::string& path) const;

  bool operator==(const UserToken&) const = default;
};

// The token of `user`: the user's patterns under `key` for every model the registry records
// them as embedded in (Registry::embeddings_of, embedded ones only), each model's geometry and
// classes from its dataset (dataset_shape). Error for an unknown or revoked user, a user
// embedded in no model, a registry whose models are of another key, or a model whose dataset
// or scheme this build does not know.
UserToken issue_token(const Registry& registry, const OwnerKey& key, const std::string& user);

}  // namespace activeip
