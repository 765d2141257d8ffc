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

int read_whole_file(const std::string& path, std::string* out, int open_flags,
                    const char** failed_call) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | open_flags);
    if (fd < 0) {
        if (failed_call != nullptr) *failed_call = "open()";
        return errno;
    }
    out->clear();
    char buf[16384];
    int err = 0;
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            err = errno;
            if (failed_call != nullptr) *failed_call = "read()";
            break;
        }
        if (n == 0) break;
        out->append(buf, static_cast<std::size_t>(n));
    }
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

}  // namespace acme
