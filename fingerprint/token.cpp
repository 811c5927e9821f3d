// User tokens: issuing one from the registry and the key, the JSON document (written once,
// mode 0600, never half-written), and reading it back with every field validated against
// what its model's scheme says, so that a truncated, tampered or foreign file is an Error
// naming the file and the field instead of a pattern stamped in the wrong place.
#include "fingerprint/token.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "base/error.h"
#include "engine/core/file_io.h"
#include "engine/data/dataset.h"
#include "fingerprint/lock.h"
#include "fingerprint/scheme.h"

namespace activeip {

namespace {

// A token holds a few patterns per model: anything this large is not one.
constexpr int64_t kMaxTokenBytes = 16 << 20;

bool is_hex(const std::string& s, size_t n) {
  if (s.size() != n) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// Field access that names the token and the field in every Error.
class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path) {}

  [[noreturn]] void fail(const std::string& where, const std::string& what) const {
    throw Error("token " + path_ + ": " + (where.empty() ? "" : where + ": ") + what);
  }

  const nlohmann::json& field(const nlohmann::json& obj, const std::string& where, const char* key) const {
    const auto it = obj.find(key);
    if (it == obj.end()) fail(where, strfmt("field \"%s\" is missing", key));
    return *it;
  }

  std::string string(const nlohmann::json& obj, const std::string& where, const char* key) const {
    const nlohmann::json& v = field(obj, where, key);
    if (!v.is_string()) fail(where, strfmt("field \"%s\" must be a string", key));
    return v.get<std::string>();
  }

  int64_t integer(const nlohmann::json& obj, const std::string& where, const char* key, int64_t lo, int64_t hi) const {
    const nlohmann::json& v = field(obj, where, key);
    if (!v.is_number_integer()) fail(where, strfmt("field \"%s\" must be an integer", key));
    // Values beyond int64 parse as unsigned: out of range all the same.
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))
      fail(where,
           strfmt("field \"%s\" must be in [%lld, %lld]", key, static_cast<long long>(lo), static_cast<long long>(hi)));
    const int64_t x = v.get<int64_t>();
    if (x < lo || x > hi)
      fail(where, strfmt("field \"%s\" must be in [%lld, %lld], got %lld", key, static_cast<long long>(lo),
                         static_cast<long long>(hi), static_cast<long long>(x)));
    return x;
  }

  const nlohmann::json& array(const nlohmann::json& obj, const std::string& where, const char* key) const {
    const nlohmann::json& v = field(obj, where, key);
    if (!v.is_array()) fail(where, strfmt("field \"%s\" must be an array", key));
    return v;
  }

  const nlohmann::json& object(const nlohmann::json& obj, const std::string& where, const char* key) const {
    const nlohmann::json& v = field(obj, where, key);
    if (!v.is_object()) fail(where, strfmt("field \"%s\" must be an object", key));
    return v;
  }

 private:
  std::string path_;
};

// A locked model's lock pattern: where and what lock_spec() says it is.
Fingerprint read_lock(const Reader& in, const nlohmann::json& j, const std::string& at, const TokenModel& m) {
  PatternSpec spec;
  try {
    spec = lock_spec(m.H, m.W, m.C, m.classes);
  } catch (const Error& e) {
    in.fail(at, e.what());
  }
  if (in.integer(j, at, "grid", 1, 1 << 10) != spec.grid || in.integer(j, at, "cell", 1, 1 << 10) != spec.cell)
    in.fail(at, strfmt("a lock pattern for %d×%d×%d images is a %d×%d grid of %d-pixel cells", m.H, m.W, m.C, spec.grid,
                       spec.grid, spec.cell));
  Fingerprint fp;
  fp.label = -1;
  fp.corner = static_cast<int>(in.integer(j, at, "corner", 0, 3));
  if (in.integer(j, at, "top", 0, m.H) != spec.top(fp.corner) ||
      in.integer(j, at, "left", 0, m.W) != spec.left(fp.corner))
    in.fail(at, strfmt("the position is not corner %d of a lock pattern (top %d, left %d)", fp.corner,
                       spec.top(fp.corner), spec.left(fp.corner)));
  const std::string bits = in.string(j, at, "bits");
  if (static_cast<int>(bits.size()) != spec.bits() || bits.find_first_not_of("01") != std::string::npos)
    in.fail(at, strfmt("\"bits\" must be %d characters 0 or 1, got %zu characters", spec.bits(), bits.size()));
  for (char c : bits) fp.bits.push_back(static_cast<uint8_t>(c - '0'));
  return fp;
}

TokenModel read_model(const Reader& in, const nlohmann::json& j, const std::string& where, int64_t code) {
  if (!j.is_object()) in.fail(where, "must be an object");
  TokenModel m;
  m.id = in.string(j, where, "id");
  if (!is_hex(m.id, 64)) in.fail(where, "\"id\" must be a model id: 64 lowercase hex digits");
  m.scheme = in.string(j, where, "scheme");
  m.net = in.string(j, where, "net");
  m.dataset = in.string(j, where, "dataset");
  m.code_length = static_cast<int>(in.integer(j, where, "code_length", 1, 64));
  const nlohmann::json& input = in.object(j, where, "input");
  const std::string at_input = where + ".input";
  m.H = static_cast<int>(in.integer(input, at_input, "H", 1, 1 << 16));
  m.W = static_cast<int>(in.integer(input, at_input, "W", 1, 1 << 16));
  m.C = static_cast<int>(in.integer(input, at_input, "C", 1, 64));
  m.classes = static_cast<int>(in.integer(j, where, "classes", 2, 1 << 20));
  PatternSpec spec;
  try {
    spec = m.spec();
  } catch (const Error& e) {
    in.fail(where, e.what());
  }
  const nlohmann::json& patch = in.object(j, where, "patch");
  const std::string at_patch = where + ".patch";
  const int grid = static_cast<int>(in.integer(patch, at_patch, "grid", 1, 1 << 10));
  const int cell = static_cast<int>(in.integer(patch, at_patch, "cell", 1, 1 << 10));
  const int channels = static_cast<int>(in.integer(patch, at_patch, "channels", 1, 64));
  if (grid != spec.grid || cell != spec.cell || channels != spec.channels)
    in.fail(at_patch, strfmt("a %d×%d grid of %d-pixel cells with %d channels is not scheme %s's patch for %d×%d×%d "
                             "images (a %d×%d grid of %d-pixel cells with %d channels)",
                             grid, grid, cell, channels, m.scheme.c_str(), m.H, m.W, m.C, spec.grid, spec.grid,
                             spec.cell, spec.channels));

  std::vector<int> labels;
  try {
    labels = scheme_for(m.scheme).code_labels(code, spec);
  } catch (const Error& e) {
    in.fail(where, e.what());
  }
  const nlohmann::json& patterns = in.array(j, where, "patterns");
  if (j.contains("lock")) {
    m.lock = read_lock(in, in.object(j, where, "lock"), where + ".lock", m);
    if (!patterns.empty()) in.fail(where, "a locked model's entry holds a lock pattern and no code patterns");
    return m;
  }
  if (static_cast<int64_t>(patterns.size()) != m.code_length)
    in.fail(where, strfmt("%zu patterns for a code of length %d", patterns.size(), m.code_length));
  for (size_t i = 0; i < patterns.size(); ++i) {
    const std::string at = strfmt("%s.patterns[%zu]", where.c_str(), i);
    const nlohmann::json& p = patterns[i];
    if (!p.is_object()) in.fail(at, "must be an object");
    Fingerprint fp;
    if (in.integer(p, at, "index", 0, m.code_length - 1) != static_cast<int64_t>(i))
      in.fail(at, strfmt("\"index\" must be %zu (patterns are listed in code order)", i));
    fp.label = static_cast<int>(in.integer(p, at, "label", 0, m.classes - 1));
    if (!labels.empty() && fp.label != labels[i])
      in.fail(at, strfmt("label %d is not label %zu of code %lld (%d)", fp.label, i, static_cast<long long>(code),
                         labels[i]));
    fp.corner = static_cast<int>(in.integer(p, at, "corner", 0, 3));
    const int64_t top = in.integer(p, at, "top", 0, m.H), left = in.integer(p, at, "left", 0, m.W);
    if (top != spec.top(fp.corner) || left != spec.left(fp.corner))
      in.fail(at, strfmt("position (top %lld, left %lld) is not corner %d of a %d×%d image under scheme %s (top %d, "
                         "left %d)",
                         static_cast<long long>(top), static_cast<long long>(left), fp.corner, m.H, m.W,
                         m.scheme.c_str(), spec.top(fp.corner), spec.left(fp.corner)));
    const std::string bits = in.string(p, at, "bits");
    if (static_cast<int>(bits.size()) != spec.bits() || bits.find_first_not_of("01") != std::string::npos)
      in.fail(at, strfmt("\"bits\" must be %d characters 0 or 1, got %zu characters", spec.bits(), bits.size()));
    for (char c : bits) fp.bits.push_back(static_cast<uint8_t>(c - '0'));
    m.patterns.push_back(std::move(fp));
  }
  return m;
}

// Writes `text` to a new file of mode 0600 at `path`, atomically: Error when it exists.
void write_new_private_file(const std::string& path, const std::string& text) {
  namespace fs = std::filesystem;
  std::error_code ec;
  ENSURE(!fs::exists(fs::symlink_status(path, ec)),
         "%s already exists; a token is never overwritten (remove it first if you mean to replace it)", path.c_str());
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmp = (dir / ".token.XXXXXX").string();
  // mkstemp creates the file with mode 0600 whatever the umask.
  const int fd = mkstemp(tmp.data());
  ENSURE(fd >= 0, "cannot write token %s: %s", path.c_str(), std::strerror(errno));
  size_t done = 0;
  bool written = true;
  while (written && done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    written = n > 0;
    if (written) done += static_cast<size_t>(n);
  }
  written = written && fsync(fd) == 0;
  const int write_errno = errno;
  close(fd);
  if (!written) {
    unlink(tmp.c_str());
    throw Error(strfmt("cannot write token %s: %s", path.c_str(), std::strerror(write_errno)));
  }
  // link() fails when the target appeared meanwhile: an existing file is never replaced.
  const int linked = link(tmp.c_str(), path.c_str());
  const int link_errno = errno;
  unlink(tmp.c_str());
  ENSURE(linked == 0, "cannot create token %s: %s", path.c_str(), std::strerror(link_errno));
  // The new name on disk too, as write_file_atomic does.
  const int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
}

}  // namespace

PatternSpec TokenModel::spec() const {
  return scheme_for(scheme).spec(H, W, C, classes, code_length);
}

const TokenModel* UserToken::model(const std::string& id) const {
  for (const TokenModel& m : models)
    if (m.id == id) return &m;
  return nullptr;
}

std::string UserToken::to_json() const {
  nlohmann::ordered_json j;
  j["format"] = kTokenFormat;
  j["version"] = kTokenVersion;
  j["user"] = user;
  j["code"] = code;
  j["key_id"] = key_id;
  j["issued"] = issued;
  j["models"] = nlohmann::ordered_json::array();
  for (const TokenModel& m : models) {
    const PatternSpec spec = m.spec();
    nlohmann::ordered_json jm;
    jm["id"] = m.id;
    jm["scheme"] = m.scheme;
    jm["net"] = m.net;
    jm["dataset"] = m.dataset;
    jm["code_length"] = m.code_length;
    jm["input"] = {{"H", m.H}, {"W", m.W}, {"C", m.C}};
    jm["classes"] = m.classes;
    jm["patch"] = {{"grid", spec.grid}, {"cell", spec.cell}, {"channels", spec.channels}};
    if (m.lock) {
      const PatternSpec ls = lock_spec(m.H, m.W, m.C, m.classes);
      std::string bits;
      for (uint8_t b : m.lock->bits) bits += b ? '1' : '0';
      jm["lock"] = {{"grid", ls.grid},
                    {"cell", ls.cell},
                    {"corner", m.lock->corner},
                    {"top", ls.top(m.lock->corner)},
                    {"left", ls.left(m.lock->corner)},
                    {"bits", bits}};
    }
    jm["patterns"] = nlohmann::ordered_json::array();
    for (size_t i = 0; i < m.patterns.size(); ++i) {
      const Fingerprint& fp = m.patterns[i];
      std::string bits;
      for (uint8_t b : fp.bits) bits += b ? '1' : '0';
      nlohmann::ordered_json p;
      p["index"] = i;
      p["label"] = fp.label;
      p["corner"] = fp.corner;
      p["top"] = spec.top(fp.corner);
      p["left"] = spec.left(fp.corner);
      p["bits"] = bits;
      jm["patterns"].push_back(p);
    }
    j["models"].push_back(jm);
  }
  return j.dump(2) + "\n";
}

UserToken UserToken::from_json(const std::string& text, const std::string& path) {
  const Reader in(path);
  // The JSON parser stops at a NUL byte: what follows one would go unread.
  if (const size_t nul = text.find('\0'); nul != std::string::npos)
    in.fail("", strfmt("not a token: not JSON (a binary file: byte %zu is NUL)", nul));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for a number too large
    in.fail("", strfmt("not a token: not JSON, or truncated (%s)", e.what()));
  }
  if (!j.is_object() || !j.contains("format") || !j["format"].is_string())
    in.fail("", strfmt("not an activeip token: it has no \"format\": \"%s\"", kTokenFormat));
  if (j["format"] != kTokenFormat)
    in.fail("", strfmt("not an activeip token: its format is \"%s\", not \"%s\"",
                       j["format"].get<std::string>().c_str(), kTokenFormat));
  const int64_t version = in.integer(j, "", "version", 0, INT32_MAX);
  if (version != kTokenVersion)
    in.fail("",
            strfmt("token version %lld; this build reads version %d", static_cast<long long>(version), kTokenVersion));
  UserToken t;
  t.user = in.string(j, "", "user");
  try {
    check_user_name(t.user);
  } catch (const Error& e) {
    in.fail("user", e.what());
  }
  t.code = in.integer(j, "", "code", 0, INT64_MAX);
  t.key_id = in.string(j, "", "key_id");
  if (!is_hex(t.key_id, 16)) in.fail("key_id", "must be a key id: 16 lowercase hex digits");
  t.issued = in.string(j, "", "issued");
  const nlohmann::json& models = in.array(j, "", "models");
  if (models.empty()) in.fail("models", "the token holds no model");
  std::set<std::string> seen;
  for (size_t i = 0; i < models.size(); ++i) {
    TokenModel m = read_model(in, models[i], strfmt("models[%zu]", i), t.code);
    for (Fingerprint& fp : m.patterns) fp.name = t.user;
    if (m.lock) m.lock->name = t.user;
    if (!seen.insert(m.id).second) in.fail(strfmt("models[%zu]", i), "model " + m.id + " is listed twice");
    t.models.push_back(std::move(m));
  }
  return t;
}

UserToken UserToken::load(const std::string& path) {
  struct stat st {};
  ENSURE(stat(path.c_str(), &st) == 0, "token %s: %s", path.c_str(), std::strerror(errno));
  ENSURE(S_ISREG(st.st_mode), "token %s is not a regular file", path.c_str());
  ENSURE(st.st_size <= kMaxTokenBytes, "token %s: %lld bytes is far too large for a token (at most %lld)", path.c_str(),
         static_cast<long long>(st.st_size), static_cast<long long>(kMaxTokenBytes));
  const std::vector<uint8_t> bytes = read_file(path);
  ENSURE(!bytes.empty(), "token %s is empty", path.c_str());
  return from_json(std::string(bytes.begin(), bytes.end()), path);
}

void UserToken::save(const std::string& path) const {
  write_new_private_file(path, to_json());
}

UserToken issue_token(const Registry& registry, const OwnerKey& key, const std::string& user) {
  check_user_name(user);
  const std::optional<UserRecord> record = registry.user(user);
  ENSURE(record.has_value(), "no user '%s' in %s", user.c_str(), registry.path().c_str());
  ENSURE(record->status == "active", "user '%s' is %s in %s: a token is issued to active users only", user.c_str(),
         record->status.c_str(), registry.path().c_str());
  UserToken t;
  t.user = user;
  t.code = record->code;
  t.key_id = key.id();
  t.issued = utc_now();
  for (const auto& [id, e] : registry.embeddings_of(user)) {
    if (!e.embedded) continue;
    const std::optional<ModelRecord> m = registry.model(id);
    ENSURE(m.has_value(), "model %s of user '%s' is missing from %s", id.c_str(), user.c_str(),
           registry.path().c_str());
    ENSURE(m->key_id == key.id(), "model %s is recorded in %s under another key (id %s; this key is %s)", id.c_str(),
           registry.path().c_str(), m->key_id.c_str(), key.id().c_str());
    TokenModel tm;
    tm.id = m->id;
    tm.scheme = m->scheme;
    tm.net = m->net;
    tm.dataset = m->dataset;
    tm.code_length = m->code_length;
    try {
      const DataShape shape = dataset_shape(m->dataset);
      tm.H = shape.H;
      tm.W = shape.W;
      tm.C = shape.C;
      tm.classes = shape.num_classes;
      if (m->locked)
        tm.lock = lock_pattern(key, user, lock_spec(tm.H, tm.W, tm.C, tm.classes));
      else
        tm.patterns = scheme_for(tm.scheme).patterns(key, Identity{user, record->code}, tm.spec());
    } catch (const Error& e) {
      throw Error(strfmt("model %s in %s: %s", id.c_str(), registry.path().c_str(), e.what()));
    }
    t.models.push_back(std::move(tm));
  }
  ENSURE(!t.models.empty(),
         "user '%s' is embedded in no model recorded in %s: there is nothing to present yet (train or enroll a "
         "model with them first)",
         user.c_str(), registry.path().c_str());
  return t;
}

}  // namespace activeip
