// Whole-file reads for the store, account key files and the glue.
#include "file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "error.h"

namespace acme {

namespace {

Error read_error(const std::string& path, int err, const char* call) {
    return Error(std::string(call) + " \"" + path + "\" failed: " + std::strerror(err));
}

}  // namespace

int read_fd(int fd, std::string* out) {
    out->clear();
    char buf[16384];
    int err = 0;
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            err = errno;
            break;
        }
        if (n == 0) break;
        out->append(buf, static_cast<std::size_t>(n));
    }
    // The buffer may have held a private key: leave no copy on the stack
    // (a forked worker inherits the master's).
    ::explicit_bzero(buf, sizeof(buf));
    return err;
}

int read_whole_file(const std::string& path, std::string* out, int open_flags,
                    const char** failed_call) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | open_flags);
    if (fd < 0) {
        if (failed_call != nullptr) *failed_call = "open()";
        return errno;
    }
    int err = read_fd(fd, out);
    if (err != 0 && failed_call != nullptr) *failed_call = "read()";
    ::close(fd);
    return err;
}

std::optional<std::string> read_file_if_exists(const std::string& path) {
    std::string content;
    const char* call = "open()";
    int err = read_whole_file(path, &content, 0, &call);
    if (err == ENOENT) return std::nullopt;
    if (err != 0) throw read_error(path, err, call);
    return content;
}

std::string read_file(const std::string& path) {
    std::optional<std::string> content = read_file_if_exists(path);
    if (!content) throw read_error(path, ENOENT, "open()");
    return *content;
}

std::string untrusted_file(const struct stat& st, bool secret, uid_t owner) {
    if (!S_ISREG(st.st_mode)) return "is not a regular file";
    if (st.st_nlink != 1) return "has other hard links";
    if (st.st_uid != 0 && st.st_uid != owner) {
        return "belongs to uid " + std::to_string(st.st_uid) + ", not to root or uid " +
               std::to_string(owner);
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) return "is writable by group or others";
    if (secret && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) return "is readable by group or others";
    return "";
}

TrustedRead read_trusted_file(const std::string& path, bool secret, uid_t owner, std::string* out,
                              struct stat* st, std::string* why) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) return TrustedRead::missing;
        *why = "\"" + path + "\" " +
               (errno == ELOOP ? std::string("is a symbolic link")
                               : "cannot be opened: " + std::string(std::strerror(errno)));
        return TrustedRead::refused;
    }
    std::string problem;
    if (::fstat(fd, st) != 0) {
        problem = std::string("cannot be examined: ") + std::strerror(errno);
    } else {
        problem = untrusted_file(*st, secret, owner);
    }
    if (problem.empty()) {
        if (int err = read_fd(fd, out))
            problem = std::string("cannot be read: ") + std::strerror(err);
    }
    ::close(fd);
    if (!problem.empty()) {
        *why = "\"" + path + "\" " + problem;
        return TrustedRead::refused;
    }
    return TrustedRead::ok;
}

}  // namespace acme
