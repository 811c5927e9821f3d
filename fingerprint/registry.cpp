// The SQLite registry: schema creation and the header check on open, writes as single
// BEGIN IMMEDIATE transactions (so that a check and the insert it guards cannot interleave with
// another process), and reads. All user data goes through bound parameters; every SQLite error
// becomes an Error naming the registry file.
#include "fingerprint/registry.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iterator>
#include <map>
#include <set>

#include "base/error.h"

namespace activeip {

namespace {

// "AIPR": tells our files apart from any other SQLite database.
constexpr int64_t kApplicationId = 0x41495052;
constexpr int kBusyTimeoutMs = 5000;
constexpr size_t kMaxNameLength = 64;

// No user data here: the schema is fixed. The audit log refuses UPDATE and DELETE at the
// database level so that no code path (ours or a hand-run sqlite3 shell) rewrites history by
// accident.
constexpr const char* kSchema = R"sql(
CREATE TABLE users(
  name TEXT PRIMARY KEY,
  created TEXT NOT NULL,
  status TEXT NOT NULL CHECK(status IN ('active','revoked')),
  code INTEGER CHECK(code >= 0));
CREATE UNIQUE INDEX users_by_code ON users(code);
CREATE TABLE models(
  id TEXT PRIMARY KEY,
  parent TEXT REFERENCES models(id),
  path TEXT,
  net TEXT,
  dataset TEXT,
  key_id TEXT NOT NULL,
  created TEXT NOT NULL,
  owner_detection REAL,
  scheme TEXT,
  code_length INTEGER CHECK(code_length >= 1),
  locked INTEGER NOT NULL DEFAULT 0 CHECK(locked IN (0, 1)));
CREATE TABLE embeddings(
  model TEXT NOT NULL REFERENCES models(id),
  user TEXT NOT NULL REFERENCES users(name),
  detection REAL,
  embedded INTEGER NOT NULL DEFAULT 1 CHECK(embedded IN (0, 1)),
  PRIMARY KEY(model, user));
CREATE INDEX embeddings_by_user ON embeddings(user);
CREATE TABLE events(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time TEXT NOT NULL,
  kind TEXT NOT NULL,
  subject TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT '');
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
)sql";

// The schema's history, one row per step from schema `from` to from + 1. An older registry
// is brought up to date by its steps in order, all in one transaction, each with its own
// "registry.upgrade" event. A new schema is one row here, with kSchema (what a new file
// gets) changed to match what the steps make.
struct Migration {
  int64_t from;
  const char* description;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    // Schema 1's models were never measured: their detections stay NULL and every user
    // trained in counts as embedded, as before.
    {1,
     "embeddings record the detection measured at the end of training and whether it reached tau; models the "
     "owner's detection",
     R"sql(
ALTER TABLE models ADD COLUMN owner_detection REAL;
ALTER TABLE embeddings ADD COLUMN detection REAL;
ALTER TABLE embeddings ADD COLUMN embedded INTEGER NOT NULL DEFAULT 1 CHECK(embedded IN (0, 1));
)sql"},
    // Users get the codes of scheme v2 in the order they were added (rowid order: users are
    // never deleted), revoked ones included, so that no code is ever given twice. Models
    // record their scheme and code length; those of schema 2 were all v1 (NULL reads so).
    {2,
     "users get the index of their code (fingerprint scheme v2), in the order they were added; models their "
     "fingerprint scheme and code length",
     R"sql(
ALTER TABLE models ADD COLUMN scheme TEXT;
ALTER TABLE models ADD COLUMN code_length INTEGER CHECK(code_length >= 1);
ALTER TABLE users ADD COLUMN code INTEGER CHECK(code >= 0);
UPDATE users SET code = (SELECT count(*) FROM users AS earlier WHERE earlier.rowid < users.rowid);
CREATE UNIQUE INDEX users_by_code ON users(code);
)sql"},
    // Lock mode: a locked model's users are those whose lock patterns unlock it.
    {3, "models record whether they are locked (lock mode)", R"sql(
ALTER TABLE models ADD COLUMN locked INTEGER NOT NULL DEFAULT 0 CHECK(locked IN (0, 1));
)sql"},
};

constexpr int64_t kSchemaVersion = 1 + static_cast<int64_t>(std::size(kMigrations));

constexpr bool migrations_are_consecutive() {
  for (size_t i = 0; i < std::size(kMigrations); ++i)
    if (kMigrations[i].from != static_cast<int64_t>(i) + 1) return false;
  return true;
}
static_assert(migrations_are_consecutive(), "kMigrations[i] must take schema i + 1 to i + 2");

[[noreturn]] void fail(sqlite3* db, const std::string& path, const std::string& sql) {
  // A file that is not SQLite at all only shows up on the first read of its header.
  if (sqlite3_errcode(db) == SQLITE_NOTADB)
    throw Error(strfmt("%s is not an activeip registry (%s)", path.c_str(), sqlite3_errmsg(db)));
  std::string where = sql.substr(std::min(sql.size(), sql.find_first_not_of(" \n")), 60);
  std::replace(where.begin(), where.end(), '\n', ' ');
  // An I/O error says what failed (a full disk or a file size limit fails a write), and the
  // system's reason when SQLite kept it.
  static constexpr std::pair<int, const char*> kFailedOps[] = {{SQLITE_IOERR_WRITE, " while writing"},
                                                               {SQLITE_IOERR_FSYNC, " while syncing to disk"},
                                                               {SQLITE_IOERR_READ, " while reading"},
                                                               {SQLITE_IOERR_TRUNCATE, " while truncating"}};
  std::string io;
  for (const auto& [code, op] : kFailedOps)
    if (sqlite3_extended_errcode(db) == code) io = op;
  if (!io.empty() && sqlite3_system_errno(db) != 0) io += strfmt(" (%s)", std::strerror(sqlite3_system_errno(db)));
  throw Error(strfmt("registry %s: %s%s (in `%s%s`)", path.c_str(), sqlite3_errmsg(db), io.c_str(), where.c_str(),
                     where.size() < 60 ? "" : "..."));
}

void exec(sqlite3* db, const std::string& path, const char* sql) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) fail(db, path, sql);
}

// A prepared statement; text is bound as a copy so that a statement reused in a loop never
// points at a string that has gone away.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& path, std::string sql) : db_(db), path_(path), sql_(std::move(sql)) {
    if (sqlite3_prepare_v2(db, sql_.c_str(), -1, &stmt_, nullptr) != SQLITE_OK) fail(db_, path_, sql_);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, const std::string& v) {
    if (sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8) != SQLITE_OK)
      fail(db_, path_, sql_);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    if (sqlite3_bind_int64(stmt_, i, v) != SQLITE_OK) fail(db_, path_, sql_);
    return *this;
  }
  Stmt& bind_or_null(int i, const std::string& v) {
    if (!v.empty()) return bind(i, v);
    return bind_null(i);
  }
  Stmt& bind_or_null(int i, const std::optional<double>& v) {
    if (!v) return bind_null(i);
    if (sqlite3_bind_double(stmt_, i, *v) != SQLITE_OK) fail(db_, path_, sql_);
    return *this;
  }
  Stmt& bind_null(int i) {
    if (sqlite3_bind_null(stmt_, i) != SQLITE_OK) fail(db_, path_, sql_);
    return *this;
  }
  // True when a row is available, false when done.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, path_, sql_);
  }
  void run() {
    while (step()) {
    }
  }
  Stmt& reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    return *this;
  }
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
  }
  int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::optional<double> real_or_null(int col) const {
    if (is_null(col)) return std::nullopt;
    return sqlite3_column_double(stmt_, col);
  }

 private:
  sqlite3* db_;
  const std::string& path_;
  std::string sql_;
  sqlite3_stmt* stmt_ = nullptr;
};

// A transaction that rolls back unless committed. Writers take the write lock up front
// (IMMEDIATE): a deferred transaction that reads and then writes can fail with SQLITE_BUSY
// mid-way without the busy timeout helping. Readers use one too, so that a record and its
// embeddings come from the same snapshot.
class Transaction {
 public:
  enum Mode { kRead, kWrite };
  Transaction(sqlite3* db, const std::string& path, Mode mode) : db_(db), path_(path) {
    exec(db_, path_, mode == kWrite ? "BEGIN IMMEDIATE" : "BEGIN");
  }
  ~Transaction() {
    // Some errors (a full disk, an I/O error) already rolled back on their own.
    if (!done_ && !sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void commit() {
    exec(db_, path_, "COMMIT");
    done_ = true;
  }

 private:
  sqlite3* db_;
  const std::string& path_;
  bool done_ = false;
};

int64_t query_int(sqlite3* db, const std::string& path, const char* sql) {
  Stmt s(db, path, sql);
  return s.step() ? s.int64(0) : 0;
}

// A name as it appears in a message: quoted, control and non-ASCII bytes escaped, long ones cut.
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 80) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\')
      out += static_cast<char>(c);
    else
      out += strfmt("\\x%02x", c);
  }
  return out + "'";
}

bool is_alnum(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool is_sha256_hex(const std::string& s) {
  return s.size() == 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

void ensure_distinct(const std::vector<std::string>& names, const char* what) {
  std::set<std::string> seen;
  for (const auto& n : names) ENSURE(seen.insert(n).second, "user %s is listed twice%s", quoted(n).c_str(), what);
}

std::string join(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

void append_event(Stmt& ins, const std::string& time, const char* kind, const std::string& subject,
                  const std::string& detail = "") {
  ins.reset().bind(1, time).bind(2, kind).bind(3, subject).bind(4, detail).run();
}

constexpr const char* kInsertEvent = "INSERT INTO events(time, kind, subject, detail) VALUES(?1, ?2, ?3, ?4)";

}  // namespace

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void check_user_name(const std::string& name) {
  ENSURE(!name.empty(), "invalid user name '': a name has 1 to %zu characters", kMaxNameLength);
  ENSURE(name.size() <= kMaxNameLength, "invalid user name %s: %zu characters, at most %zu", quoted(name).c_str(),
         name.size(), kMaxNameLength);
  ENSURE(is_alnum(name[0]), "invalid user name %s: it must start with a letter or a digit", quoted(name).c_str());
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    ENSURE(is_alnum(c) || c == '.' || c == '_' || c == '@' || c == '-',
           "invalid user name %s: character %s at position %zu is not allowed (letters, digits and . _ @ - only)",
           quoted(name).c_str(), quoted(std::string(1, c)).c_str(), i + 1);
  }
  ENSURE(name != "owner", "user name 'owner' is reserved: it names the owner's trigger");
}

Registry Registry::open(const std::string& path, bool create) {
  ENSURE(!path.empty(), "the registry path is empty");
  std::error_code ec;
  ENSURE(create || std::filesystem::exists(path, ec), "registry %s does not exist", path.c_str());
  // A relative name is passed as ./NAME so that SQLite never reads ":memory:" or a
  // "file:" URI into it: the registry is always the file the user named.
  const std::string file = path[0] == '/' ? path : "./" + path;
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0), nullptr);
  Registry r(db, path);  // owns the handle, which SQLite returns even when opening failed
  if (rc != SQLITE_OK) {
    ENSURE(db != nullptr, "cannot open registry %s: out of memory", path.c_str());
    throw Error(strfmt("cannot open registry %s: %s", path.c_str(), sqlite3_errmsg(db)));
  }
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  exec(db, path, "PRAGMA foreign_keys = ON");
  r.check_header(create);
  // Write-ahead logging, as SQLite recommends for several processes on one local file: readers
  // never block the writer, and a commit is one append and one fsync (synchronous FULL: a
  // committed change survives a power cut). The mode is stored in the file, so this changes
  // only a registry that is ours (after check_header) and still in rollback mode; a file opened
  // read-only is read as it is.
  if (!sqlite3_db_readonly(db, "main")) {
    exec(db, path, "PRAGMA journal_mode = WAL");
    exec(db, path, "PRAGMA synchronous = FULL");
  }
  return r;
}

void Registry::check_header(bool create) {
  const auto is_empty = [&] {
    return query_int(db_, path_, "PRAGMA application_id") == 0 && query_int(db_, path_, "PRAGMA user_version") == 0 &&
           query_int(db_, path_, "SELECT count(*) FROM sqlite_master") == 0;
  };
  // Only a database with nothing in it is ours to initialise; anything else is left untouched.
  if (create && is_empty()) {
    Transaction tx(db_, path_, Transaction::kWrite);
    if (is_empty()) create_schema();  // another process may have won the race
    tx.commit();
  }
  const int64_t app = query_int(db_, path_, "PRAGMA application_id");
  ENSURE(app == kApplicationId, "%s is not an activeip registry (application id %lld)", path_.c_str(),
         static_cast<long long>(app));
  const int64_t version = query_int(db_, path_, "PRAGMA user_version");
  ENSURE(version <= kSchemaVersion,
         "registry %s has schema version %lld, written by a newer build; this build reads versions 1 to %lld",
         path_.c_str(), static_cast<long long>(version), static_cast<long long>(kSchemaVersion));
  ENSURE(version >= 1, "registry %s has schema version %lld; this build reads versions 1 to %lld", path_.c_str(),
         static_cast<long long>(version), static_cast<long long>(kSchemaVersion));
  if (version < kSchemaVersion) upgrade_schema();
}

void Registry::upgrade_schema() {
  Transaction tx(db_, path_, Transaction::kWrite);
  const int64_t from = query_int(db_, path_, "PRAGMA user_version");
  if (from == kSchemaVersion) return;  // another process upgraded it first
  try {
    const std::string now = utc_now();
    for (const Migration& m : kMigrations) {
      if (m.from < from) continue;
      exec(db_, path_, m.sql);
      exec(db_, path_, strfmt("PRAGMA user_version = %lld", static_cast<long long>(m.from + 1)).c_str());
      Stmt event(db_, path_, kInsertEvent);  // prepared after the step changed the schema
      append_event(event, now, "registry.upgrade", strfmt("schema %lld", static_cast<long long>(m.from + 1)),
                   strfmt("from schema %lld", static_cast<long long>(m.from)));
    }
    tx.commit();
  } catch (const Error& e) {
    throw Error(strfmt("registry %s has schema version %lld and could not be upgraded to %lld: %s", path_.c_str(),
                       static_cast<long long>(from), static_cast<long long>(kSchemaVersion), e.what()));
  }
}

void Registry::create_schema() {
  exec(db_, path_, kSchema);
  exec(db_, path_, strfmt("PRAGMA application_id = %lld", static_cast<long long>(kApplicationId)).c_str());
  exec(db_, path_, strfmt("PRAGMA user_version = %lld", static_cast<long long>(kSchemaVersion)).c_str());
}

void Registry::close() noexcept {
  if (db_) sqlite3_close_v2(db_);
  db_ = nullptr;
}

Registry::~Registry() {
  close();
}

Registry::Registry(Registry&& other) noexcept : db_(std::exchange(other.db_, nullptr)), path_(std::move(other.path_)) {}

Registry& Registry::operator=(Registry&& other) noexcept {
  if (this != &other) {
    close();
    db_ = std::exchange(other.db_, nullptr);
    path_ = std::move(other.path_);
  }
  return *this;
}

void Registry::add_users(const std::vector<std::string>& names) {
  ENSURE(!names.empty(), "no user names given");
  for (const auto& n : names) check_user_name(n);
  ensure_distinct(names, "");
  const std::string now = utc_now();
  Transaction tx(db_, path_, Transaction::kWrite);
  Stmt find(db_, path_, "SELECT status FROM users WHERE name = ?1");
  // The next code follows the largest ever given: codes are never reused.
  Stmt ins(db_, path_,
           "INSERT INTO users(name, created, status, code) "
           "VALUES(?1, ?2, 'active', (SELECT coalesce(max(code), -1) + 1 FROM users))");
  Stmt event(db_, path_, kInsertEvent);
  for (const auto& n : names) {
    // A revoked name stays taken: its fingerprint is derived from the name alone, so a new
    // user under it would carry the revoked user's fingerprint.
    ENSURE(!find.reset().bind(1, n).step(), "user %s is already registered in %s (status %s)", quoted(n).c_str(),
           path_.c_str(), find.text(0).c_str());
    ins.reset().bind(1, n).bind(2, now).run();
    append_event(event, now, "user.add", n);
  }
  tx.commit();
}

void Registry::revoke_in(const std::vector<std::string>& names, const std::string& now, const std::string& detail) {
  ensure_distinct(names, "");
  Stmt find(db_, path_, "SELECT status FROM users WHERE name = ?1");
  Stmt upd(db_, path_, "UPDATE users SET status = 'revoked' WHERE name = ?1");
  Stmt event(db_, path_, kInsertEvent);
  for (const auto& n : names) {
    ENSURE(find.reset().bind(1, n).step(), "no user %s in %s", quoted(n).c_str(), path_.c_str());
    ENSURE(find.text(0) == "active", "user %s is already revoked", quoted(n).c_str());
    upd.reset().bind(1, n).run();
    append_event(event, now, "user.revoke", n, detail);
  }
}

void Registry::revoke_users(const std::vector<std::string>& names) {
  ENSURE(!names.empty(), "no user names given");
  const std::string now = utc_now();
  Transaction tx(db_, path_, Transaction::kWrite);
  revoke_in(names, now, "");
  tx.commit();
}

void Registry::add_model(const ModelRecord& m, const std::vector<std::string>& revoke) {
  ENSURE(is_sha256_hex(m.id), "model id %s is not a SHA-256 in hex (64 characters 0-9a-f)", quoted(m.id).c_str());
  ENSURE(!m.key_id.empty(), "model %s has no key id", m.id.c_str());
  std::vector<std::string> names;
  for (const EmbeddingRecord& e : m.embeddings) {
    names.push_back(e.user);
    ENSURE(!e.detection || (*e.detection >= 0 && *e.detection <= 1), "detection %g of user %s is outside [0, 1]",
           *e.detection, quoted(e.user).c_str());
  }
  ENSURE(!m.owner_detection || (*m.owner_detection >= 0 && *m.owner_detection <= 1),
         "the owner's detection %g is outside [0, 1]", *m.owner_detection);
  ENSURE(!m.scheme.empty() && m.code_length >= 1, "model %s has no scheme or a code length of %d", m.id.c_str(),
         m.code_length);
  ensure_distinct(names, strfmt(" for model %s", m.id.c_str()).c_str());
  const std::string now = utc_now();
  Transaction tx(db_, path_, Transaction::kWrite);
  {
    Stmt find(db_, path_, "SELECT created FROM models WHERE id = ?1");
    ENSURE(!find.bind(1, m.id).step(), "model %s is already recorded in %s (created %s)", m.id.c_str(), path_.c_str(),
           find.text(0).c_str());
  }
  if (!m.parent.empty()) {
    Stmt find(db_, path_, "SELECT 1 FROM models WHERE id = ?1");
    ENSURE(find.bind(1, m.parent).step(), "parent model %s of %s is not recorded in %s", quoted(m.parent).c_str(),
           m.id.c_str(), path_.c_str());
  }
  Stmt(db_, path_,
       "INSERT INTO models(id, parent, path, net, dataset, key_id, created, owner_detection, scheme, code_length, "
       "locked) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")
      .bind(1, m.id)
      .bind_or_null(2, m.parent)
      .bind(3, m.path)
      .bind(4, m.net)
      .bind(5, m.dataset)
      .bind(6, m.key_id)
      .bind(7, m.created.empty() ? now : m.created)
      .bind_or_null(8, m.owner_detection)
      .bind(9, m.scheme)
      .bind(10, int64_t{m.code_length})
      .bind(11, int64_t{m.locked})
      .run();
  Stmt find(db_, path_, "SELECT 1 FROM users WHERE name = ?1");
  Stmt ins(db_, path_, "INSERT INTO embeddings(model, user, detection, embedded) VALUES(?1, ?2, ?3, ?4)");
  std::vector<std::string> short_of;
  for (const EmbeddingRecord& e : m.embeddings) {
    ENSURE(find.reset().bind(1, e.user).step(), "user %s of model %s is not registered in %s", quoted(e.user).c_str(),
           m.id.c_str(), path_.c_str());
    ins.reset().bind(1, m.id).bind(2, e.user).bind_or_null(3, e.detection).bind(4, int64_t{e.embedded}).run();
    if (!e.embedded) short_of.push_back(e.user);
  }
  Stmt event(db_, path_, kInsertEvent);
  append_event(event, now, "model.add", m.id,
               join(names) + (short_of.empty() ? "" : "; not embedded: " + join(short_of)));
  revoke_in(revoke, now, "model " + m.id);
  tx.commit();
}

std::vector<UserRecord> Registry::users() const {
  Stmt s(db_, path_, "SELECT name, created, status, code FROM users ORDER BY name");
  std::vector<UserRecord> out;
  while (s.step()) out.push_back({s.text(0), s.text(1), s.text(2), s.int64(3)});
  return out;
}

std::optional<UserRecord> Registry::user(const std::string& name) const {
  Stmt s(db_, path_, "SELECT name, created, status, code FROM users WHERE name = ?1");
  if (!s.bind(1, name).step()) return std::nullopt;
  return UserRecord{s.text(0), s.text(1), s.text(2), s.int64(3)};
}

int64_t Registry::codes() const {
  return query_int(db_, path_, "SELECT coalesce(max(code), -1) + 1 FROM users");
}

namespace {

constexpr const char* kModelColumns =
    "SELECT id, parent, path, net, dataset, key_id, created, owner_detection, coalesce(scheme, 'v1'), "
    "coalesce(code_length, 1), locked FROM models";
constexpr const char* kEmbeddingColumns = "SELECT model, user, detection, embedded FROM embeddings";

EmbeddingRecord embedding_row(const Stmt& s) {  // from kEmbeddingColumns
  return {s.text(1), s.real_or_null(2), s.int64(3) != 0};
}

ModelRecord model_row(const Stmt& s) {
  ModelRecord m;
  m.id = s.text(0);
  m.parent = s.text(1);  // NULL reads as ""
  m.path = s.text(2);
  m.net = s.text(3);
  m.dataset = s.text(4);
  m.key_id = s.text(5);
  m.created = s.text(6);
  m.owner_detection = s.real_or_null(7);
  m.scheme = s.text(8);
  m.code_length = static_cast<int>(s.int64(9));
  m.locked = s.int64(10) != 0;
  return m;
}

}  // namespace

std::optional<ModelRecord> Registry::model(const std::string& id) const {
  Transaction tx(db_, path_, Transaction::kRead);
  Stmt s(db_, path_, std::string(kModelColumns) + " WHERE id = ?1");
  if (!s.bind(1, id).step()) return std::nullopt;
  ModelRecord m = model_row(s);
  Stmt u(db_, path_, std::string(kEmbeddingColumns) + " WHERE model = ?1 ORDER BY user");
  u.bind(1, id);
  while (u.step()) m.embeddings.push_back(embedding_row(u));
  tx.commit();
  return m;
}

std::vector<ModelRecord> Registry::models() const {
  Transaction tx(db_, path_, Transaction::kRead);
  std::map<std::string, std::vector<EmbeddingRecord>> embeddings_of;
  Stmt e(db_, path_, std::string(kEmbeddingColumns) + " ORDER BY model, user");
  while (e.step()) embeddings_of[e.text(0)].push_back(embedding_row(e));
  std::vector<ModelRecord> out;
  Stmt s(db_, path_, std::string(kModelColumns) + " ORDER BY created, id");
  while (s.step()) {
    out.push_back(model_row(s));
    out.back().embeddings = std::move(embeddings_of[out.back().id]);
  }
  tx.commit();
  return out;
}

std::vector<std::string> Registry::models_of(const std::string& user) const {
  Stmt s(db_, path_,
         "SELECT models.id FROM embeddings JOIN models ON models.id = embeddings.model "
         "WHERE embeddings.user = ?1 AND embeddings.embedded = 1 ORDER BY models.created, models.id");
  s.bind(1, user);
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text(0));
  return out;
}

std::vector<std::pair<std::string, EmbeddingRecord>> Registry::embeddings_of(const std::string& user) const {
  Stmt s(db_, path_,
         "SELECT embeddings.model, embeddings.user, embeddings.detection, embeddings.embedded FROM embeddings "
         "JOIN models ON models.id = embeddings.model WHERE embeddings.user = ?1 ORDER BY models.created, models.id");
  s.bind(1, user);
  std::vector<std::pair<std::string, EmbeddingRecord>> out;
  while (s.step()) out.emplace_back(s.text(0), embedding_row(s));
  return out;
}

std::optional<EmbeddingRecord> Registry::embedding(const std::string& model_id, const std::string& user) const {
  Transaction tx(db_, path_, Transaction::kRead);
  Stmt has(db_, path_, std::string(kEmbeddingColumns) + " WHERE model = ?1 AND user = ?2");
  Stmt parent(db_, path_, "SELECT parent FROM models WHERE id = ?1");
  // The API only links to models already recorded, so the chain cannot loop; a file edited
  // by hand still must not hang us.
  std::set<std::string> seen;
  for (std::string id = model_id; seen.insert(id).second;) {
    if (has.reset().bind(1, id).bind(2, user).step()) return embedding_row(has);
    if (!parent.reset().bind(1, id).step() || parent.is_null(0)) return std::nullopt;
    id = parent.text(0);
  }
  return std::nullopt;
}

bool Registry::embedded(const std::string& model_id, const std::string& user) const {
  const std::optional<EmbeddingRecord> e = embedding(model_id, user);
  return e && e->embedded;
}

std::vector<std::string> ModelRecord::embedded_users() const {
  std::vector<std::string> out;
  for (const EmbeddingRecord& e : embeddings)
    if (e.embedded) out.push_back(e.user);
  return out;
}

int64_t Registry::schema_version() const {
  return query_int(db_, path_, "PRAGMA user_version");
}

int64_t Registry::latest_schema_version() {
  return kSchemaVersion;
}

std::vector<SchemaUpgrade> Registry::schema_history() const {
  std::vector<SchemaUpgrade> out;
  for (const EventRecord& e : events()) {
    if (e.kind != "registry.upgrade") continue;
    SchemaUpgrade u;
    u.time = e.time;
    long long to = 0, from = 0;
    ENSURE(std::sscanf(e.subject.c_str(), "schema %lld", &to) == 1 &&
               std::sscanf(e.detail.c_str(), "from schema %lld", &from) == 1,
           "registry %s: upgrade event %lld reads '%s' / '%s', not 'schema N' / 'from schema M'", path_.c_str(),
           static_cast<long long>(e.id), e.subject.c_str(), e.detail.c_str());
    u.from = from;
    u.to = to;
    for (const Migration& m : kMigrations)
      if (m.from == u.from && m.from + 1 == u.to) u.description = m.description;
    out.push_back(std::move(u));
  }
  return out;
}

std::vector<EventRecord> Registry::events() const {
  Stmt s(db_, path_, "SELECT id, time, kind, subject, detail FROM events ORDER BY id");
  std::vector<EventRecord> out;
  while (s.step()) out.push_back({s.int64(0), s.text(1), s.text(2), s.text(3), s.text(4)});
  return out;
}

}  // namespace activeip
