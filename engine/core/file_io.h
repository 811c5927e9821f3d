// Whole-file reads (optionally gunzipped) and atomic whole-file writes. Loaders and
// checkpoints go through here so that every I/O error names its file, and so that a
// crash or a full disk never leaves a half-written model or registry behind.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace activeip {

// The bytes of PATH; Error "cannot open PATH: <strerror>", "PATH: read error: …".
std::vector<uint8_t> read_file(const std::string& path);

// Reads PATH, or PATH.gz when PATH is missing, and gunzips the content when it starts with
// the gzip magic (1f 8b; concatenated members are joined, as gzip does). Errors name the
// file that was read: "PATH.gz: corrupt gzip stream (…)", "PATH.gz: truncated gzip stream".
// A gzip stream that decodes to more than max_bytes is an Error ("PATH.gz: the gzip stream
// holds more than N bytes"), raised before more than max_bytes is allocated for it, so that
// a gzip bomb costs no memory (a file that is not compressed is returned whatever its size).
std::vector<uint8_t> read_file_maybe_gzip(const std::string& path, size_t max_bytes);
// The first n bytes of what read_file_maybe_gzip reads (fewer when it is shorter),
// decompressing no further: enough to read a header that bounds the rest.
std::vector<uint8_t> read_head_maybe_gzip(const std::string& path, size_t n);

// Writes the pieces, in order, to a temporary file in PATH's directory, flushes it to disk
// (fsync), renames it over PATH and fsyncs the directory. On any error the temporary file
// is removed, PATH is left as it was, and Error names PATH and the failing step. A new file
// gets mode 0666 minus the umask.
void write_file_atomic(const std::string& path, const std::vector<std::pair<const void*, size_t>>& pieces);

// Renames FROM over TO (one step, within a directory) and fsyncs TO's directory, so that
// the rename survives a power cut. Error names both paths.
void rename_durable(const std::string& from, const std::string& to);

// True when PATH names an existing file that is not a directory (symlinks followed).
bool file_exists(const std::string& path);

}  // namespace activeip
