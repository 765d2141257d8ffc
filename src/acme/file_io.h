// Reading whole files: the one reader the engine and the glue share, so
// that every caller handles EINTR, short reads and errors the same way.
#pragma once

#include <optional>
#include <string>

namespace acme {

// Reads the file into *out (replacing its content). Returns 0, or the errno
// of the failed call, whose name ("open()" or "read()") goes to *failed_call
// when given; never throws but for std::bad_alloc. `open_flags` are added to
// O_RDONLY | O_CLOEXEC (O_NOFOLLOW, say).
int read_whole_file(const std::string& path, std::string* out, int open_flags = 0,
                    const char** failed_call = nullptr);

// The content, nullopt when the file does not exist; throws acme::Error
// naming the path and the system error otherwise.
std::optional<std::string> read_file_if_exists(const std::string& path);

// The content; throws acme::Error naming the path for any failure.
std::string read_file(const std::string& path);

}  // namespace acme
