// The table of fingerprint schemes this build knows (see fingerprint/scheme.h). A new
// version is one implementation file and one row here; an old row is never removed while
// models of that version may exist.
#include "fingerprint/scheme.h"

#include "base/error.h"

namespace activeip {

const Scheme& scheme_v1();  // fingerprint/scheme_v1.cpp
const Scheme& scheme_v2();  // fingerprint/scheme_v2.cpp

namespace {

struct SchemeRow {
  const char* version;
  const Scheme& (*get)();
};

constexpr SchemeRow kSchemes[] = {
    {"v1", scheme_v1},
    {"v2", scheme_v2},
};

constexpr const char* kDefaultVersion = "v2";
constexpr int64_t kCapacityLimit = int64_t{1} << 62;

}  // namespace

const Scheme& scheme_for(const std::string& version) {
  for (const SchemeRow& row : kSchemes)
    if (version == row.version) return row.get();
  std::string known;
  for (const SchemeRow& row : kSchemes) known += (known.empty() ? "" : ", ") + std::string(row.version);
  throw Error(strfmt("unknown fingerprint scheme '%s': this build knows %s", version.c_str(), known.c_str()));
}

const Scheme& default_scheme() {
  return scheme_for(kDefaultVersion);
}

std::vector<std::string> scheme_versions() {
  std::vector<std::string> out;
  for (const SchemeRow& row : kSchemes) out.emplace_back(row.version);
  return out;
}

int64_t code_capacity(int classes, int length) {
  ENSURE(classes >= 2 && length >= 1, "codes of length %d over %d classes", length, classes);
  int64_t n = 1;
  for (int j = 1; j < length && n < kCapacityLimit; ++j)
    n = n > kCapacityLimit / classes ? kCapacityLimit : n * classes;
  return n;
}

int shortest_code_length(int classes, int64_t codes) {
  int m = 2;
  while (code_capacity(classes, m) < codes) ++m;
  return m;
}

std::vector<int> user_code(int64_t index, int classes, int length) {
  ENSURE(length >= 2, "a user code has at least 2 labels, not %d", length);
  const int64_t capacity = code_capacity(classes, length);
  ENSURE(index >= 0 && index < capacity,
         "code %lld does not fit codes of %d labels over %d classes (room for %lld users)",
         static_cast<long long>(index), length, classes, static_cast<long long>(capacity));
  std::vector<int> code(static_cast<size_t>(length));
  int64_t rest = index, sum = 0;
  for (int j = 0; j + 1 < length; ++j) {
    code[static_cast<size_t>(j)] = static_cast<int>(rest % classes);
    sum += code[static_cast<size_t>(j)];
    rest /= classes;
  }
  code[static_cast<size_t>(length - 1)] = static_cast<int>(sum % classes);
  for (int j = 0; j < length; ++j) code[static_cast<size_t>(j)] = (code[static_cast<size_t>(j)] + j) % classes;
  return code;
}

}  // namespace activeip
