// Reading whole files: the one reader the engine and the glue share, so
// that every caller handles EINTR, short reads and errors the same way.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <optional>
#include <string>

namespace acme {

// Reads the file into *out (replacing its content). Returns 0, or the errno
// of the failed call, whose name ("open()" or "read()") goes to *failed_call
// when given; never throws but for std::bad_alloc. `open_flags` are added to
// O_RDONLY | O_CLOEXEC (O_NOFOLLOW, say).
int read_whole_file(const std::string& path, std::string* out, int open_flags = 0,
                    const char** failed_call = nullptr);

// Reads from an open descriptor to its end into *out; 0 or the errno of
// the failed read().
int read_fd(int fd, std::string* out);

// The content, nullopt when the file does not exist; throws acme::Error
// naming the path and the system error otherwise.
std::optional<std::string> read_file_if_exists(const std::string& path);

// The content; throws acme::Error naming the path for any failure.
std::string read_file(const std::string& path);

// Files in the state directory are written by the worker user and read by
// the root master too: a worker that was taken over must not make root
// load another file through a planted symbolic or hard link or a FIFO.
// Why a file must not be trusted ("" when it may): not a regular file,
// other hard links, owned by neither root nor `owner`, writable by group
// or others, or (a secret) readable by them.
std::string untrusted_file(const struct stat& st, bool secret, uid_t owner);

enum class TrustedRead { ok, missing, refused };

// Opens `path` without following a symbolic link (and without blocking on
// a FIFO), checks it with untrusted_file() and reads it. `refused` with
// *why naming the path and the reason; *st is the file's.
TrustedRead read_trusted_file(const std::string& path, bool secret, uid_t owner, std::string* out,
                              struct stat* st, std::string* why);

}  // namespace acme
