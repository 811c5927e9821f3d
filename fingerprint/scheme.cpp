// The table of fingerprint schemes this build knows (see fingerprint/scheme.h). A new
// version is one implementation file and one row here; an old row is never removed while
// models of that version may exist.
#include "fingerprint/scheme.h"

#include "base/error.h"

namespace activeip {

const Scheme& scheme_v1();  // fingerprint/scheme_v1.cpp

namespace {

struct SchemeRow {
  const char* version;
  const Scheme& (*get)();
};

constexpr SchemeRow kSchemes[] = {
    {"v1", scheme_v1},
};

constexpr const char* kDefaultVersion = "v1";

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

}  // namespace activeip
