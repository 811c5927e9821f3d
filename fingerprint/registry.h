// The model owner's user registry: one SQLite file holding the users (active or revoked),
// the models issued (id = SHA-256 of the weights, parent, key id) with the users embedded in
// each, and an append-only audit log. Every write is one transaction; the registry never
// holds the key or any fingerprint, so leaking it reveals who was issued what, not how to forge.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

struct sqlite3;

namespace activeip {

struct UserRecord {
  std::string name, created, status;  // status "active" | "revoked"; created ISO-8601 UTC
  // The index of the user's code (fingerprint scheme v2): 0, 1, 2, … in the order users were
  // added, never given twice.
  int64_t code = -1;
  bool operator==(const UserRecord&) const = default;
};

// A user's fingerprint as trained into a model: its detection on held-out probes at the end
// of training, and whether that reached τ. A pattern below τ is not embedded: the user does
// not authenticate through this model. Models recorded before training measured anything
// (schema 1) have no detection and count as embedded.
struct EmbeddingRecord {
  std::string user;
  std::optional<double> detection;
  bool embedded = true;
  bool operator==(const EmbeddingRecord&) const = default;
};

struct ModelRecord {
  std::string id;      // SHA-256 of the weights, 64 lowercase hex digits (computed by the caller)
  std::string parent;  // id of the model this one was derived from; "" when none
  std::string path, net, dataset, key_id, created;
  std::optional<double> owner_detection;    // the owner's trigger, measured as the users' are
  std::string scheme = "v1";                // its fingerprint scheme (schema-2 models read as v1)
  int code_length = 1;                      // labels per user code
  bool locked = false;                      // lock mode (fingerprint/lock.h)
  std::vector<EmbeddingRecord> embeddings;  // every user trained into this model, by name
  // The users recorded as embedded in this model itself (not its parents), by name.
  std::vector<std::string> embedded_users() const;
  bool operator==(const ModelRecord&) const = default;
};

struct EventRecord {
  int64_t id = 0;
  // kind "user.add" | "user.revoke" | "model.add" | "registry.upgrade"
  std::string time, kind, subject, detail;
  bool operator==(const EventRecord&) const = default;
};

// One step of a registry's schema upgrades, from its "registry.upgrade" event.
struct SchemaUpgrade {
  std::string time;
  int64_t from = 0, to = 0;
  std::string description;  // what the step changed; empty for a step this build does not know
  bool operator==(const SchemaUpgrade&) const = default;
};

// Now, as ISO-8601 UTC to the second ("2026-12-06T23:14:11Z"): the time stamp of the
// registry's records and of the files issued from it.
std::string utc_now();

// Valid user name: 1..64 chars of [A-Za-z0-9._@-], first char alphanumeric; "owner" is
// reserved (it names the owner's trigger). Throws Error saying what is wrong with the name.
void check_user_name(const std::string& name);

class Registry {
 public:
  // Opens an existing registry: Error "registry PATH does not exist" when missing, "PATH is
  // not an activeip registry" when it is not a SQLite file with our application id, or an
  // Error naming the schema version when it was written by a newer build. A registry of an
  // older schema is upgraded in place by each step from its version on, in order, in one
  // transaction (one event "registry.upgrade" per step); a failed step leaves it as it was. With
  // create=true a missing (or empty) file gets the schema; an existing foreign database is
  // never altered.
  static Registry open(const std::string& path, bool create);

  ~Registry();
  Registry(Registry&& other) noexcept;
  Registry& operator=(Registry&& other) noexcept;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  const std::string& path() const { return path_; }

  // Each write is one transaction (BEGIN IMMEDIATE … COMMIT) that appends one event per change
  // to the audit log; on any error it is rolled back and nothing is written.

  // Error for an empty list, an invalid name, a name listed twice, or one already registered
  // (revoked included: the fingerprint is a function of the name, so a name is never reissued).
  // Each new user gets the next code.
  void add_users(const std::vector<std::string>& names);
  // Error for an empty list, a name listed twice, an unknown user or one already revoked.
  void revoke_users(const std::vector<std::string>& names);
  // Records the model and its embeddings. Error when the id is not 64 lowercase hex digits or
  // is already recorded, when key_id is empty, when the parent is not a recorded model, when
  // a user is listed twice or not registered (revoked users are accepted: they are in the
  // weights all the same), or when a detection is outside [0, 1]. `created` is set to now when
  // empty. `revoke`: active users revoked in the same transaction (as revoke_users() does,
  // the event naming the model), for a model retrained so that their patterns are refused.
  void add_model(const ModelRecord& m, const std::vector<std::string>& revoke = {});

  std::vector<UserRecord> users() const;  // ordered by name
  std::optional<UserRecord> user(const std::string& name) const;
  // How many codes the registry has given: one more than the largest (revoked users' too).
  int64_t codes() const;
  std::optional<ModelRecord> model(const std::string& id) const;  // with its users, sorted
  std::vector<ModelRecord> models() const;                        // ordered by created, then id
  // Ids of the models that embed `user` directly, ordered by created, then id.
  std::vector<std::string> models_of(const std::string& user) const;
  // Every model `user` was trained into, embedded or not, ordered by created, then id.
  std::vector<std::pair<std::string, EmbeddingRecord>> embeddings_of(const std::string& user) const;
  // The record of `user` in model `model_id`, or else in the nearest model it was derived
  // from that trained the user in (a derived model's measurement overrides its parent's).
  std::optional<EmbeddingRecord> embedding(const std::string& model_id, const std::string& user) const;
  // True when embedding(model_id, user) exists and is embedded.
  bool embedded(const std::string& model_id, const std::string& user) const;
  std::vector<EventRecord> events() const;  // in the order they were appended

  int64_t schema_version() const;                     // after any upgrade on open: latest_schema_version()
  static int64_t latest_schema_version();             // the schema this build writes
  std::vector<SchemaUpgrade> schema_history() const;  // the upgrades applied, oldest first

 private:
  Registry(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  void close() noexcept;
  void check_header(bool create);
  void create_schema();
  void upgrade_schema();
  // Inside a write transaction: marks `names` revoked, one "user.revoke" event each.
  void revoke_in(const std::vector<std::string>& names, const std::string& now, const std::string& detail);

  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace activeip
