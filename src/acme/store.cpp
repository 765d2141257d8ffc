// The on-disk state directory: atomic file replacement (so nginx and a crash
// never see half a certificate), the engine's exclusive lock, and file names.
#include "store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "error.h"

namespace acme {

namespace {

std::string sys_error(const std::string& what, const std::string& path, int err) {
    return what + " \"" + path + "\" failed: " + std::strerror(err);
}

// Closes a descriptor on scope exit unless released.
class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }
    // Closes now and reports close()'s error: for written files it can be
    // the first sign of a failed write (NFS, quota).
    int close() {
        int fd = fd_;
        fd_ = -1;
        return ::close(fd);
    }

private:
    int fd_;
};

// The directory is normally created by nginx (it is the helper's ngx_path_t),
// but the engine also runs from tests and with fresh paths.
void ensure_dir(const std::string& dir) {
    struct stat st;
    if (::stat(dir.c_str(), &st) == 0) return;
    if (errno != ENOENT) throw Error(sys_error("stat()", dir, errno));
    std::string::size_type slash = dir.find_last_of('/');
    if (slash != std::string::npos && slash > 0) ensure_dir(dir.substr(0, slash));
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        throw Error(sys_error("mkdir()", dir, errno));
    }
}

// Temporary files are "<name>.tmp.<pid>.<tid>".
constexpr std::string_view temp_marker = ".tmp.";

bool is_temporary(std::string_view name) {
    std::size_t at = name.rfind(temp_marker);
    if (at == std::string_view::npos || at == 0) return false;
    std::string_view ids = name.substr(at + temp_marker.size());
    std::size_t dot = ids.find('.');
    auto digits = [](std::string_view s) {
        return !s.empty() &&
               std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    return dot != std::string_view::npos && digits(ids.substr(0, dot)) &&
           digits(ids.substr(dot + 1));
}

void write_all(int fd, std::string_view content, const std::string& path) {
    const char* p = content.data();
    std::size_t left = content.size();
    while (left > 0) {
        ssize_t n = ::write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw Error(sys_error("write()", path, errno));
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}

}  // namespace

Store::Store(std::string dir) : dir_(std::move(dir)) {
    while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
}

Store::~Store() {
    if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::string Store::path(std::string_view name) const {
    std::string p = dir_;
    p += '/';
    p += name;
    return p;
}

std::optional<std::string> Store::read(std::string_view name) const {
    std::string p = path(name);
    int raw = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (raw < 0) {
        if (errno == ENOENT) return std::nullopt;
        throw Error(sys_error("open()", p, errno));
    }
    Fd fd(raw);
    std::string content;
    char buf[16384];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR) continue;
            throw Error(sys_error("read()", p, errno));
        }
        if (n == 0) break;
        content.append(buf, static_cast<std::size_t>(n));
    }
    return content;
}

void Store::write(std::string_view name, std::string_view content, mode_t mode) {
    ensure_dir(dir_);
    std::string target = path(name);
    // pid and thread id make the name unique among concurrent writers, so
    // O_EXCL never meets a live writer's file.
    std::string tmp = target + std::string(temp_marker) + std::to_string(::getpid()) + "." +
                      std::to_string(static_cast<long>(::syscall(SYS_gettid)));

    int raw = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (raw < 0 && errno == EEXIST) {
        // Left over by a crashed process that had our pid and tid.
        ::unlink(tmp.c_str());
        raw = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    }
    if (raw < 0) throw Error(sys_error("open()", tmp, errno));

    Fd fd(raw);
    try {
        // The umask may have narrowed the mode; the caller's mode is the contract
        // (0600 for keys, 0644 for what workers must read).
        if (::fchmod(fd.get(), mode) != 0) throw Error(sys_error("fchmod()", tmp, errno));
        write_all(fd.get(), content, tmp);
        if (::fsync(fd.get()) != 0) throw Error(sys_error("fsync()", tmp, errno));
        if (fd.close() != 0) throw Error(sys_error("close()", tmp, errno));
        if (::rename(tmp.c_str(), target.c_str()) != 0) {
            throw Error(sys_error("rename() to \"" + target + "\" of", tmp, errno));
        }
    } catch (...) {
        ::unlink(tmp.c_str());
        throw;
    }

    // Make the rename itself durable: without this a crash can bring back
    // the old file (or none) although write() returned.
    int draw = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (draw < 0) throw Error(sys_error("open()", dir_, errno));
    Fd dfd(draw);
    if (::fsync(dfd.get()) != 0 && errno != EINVAL) throw Error(sys_error("fsync()", dir_, errno));
}

void Store::remove(std::string_view name) {
    std::string p = path(name);
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) throw Error(sys_error("unlink()", p, errno));
}

bool Store::try_lock() {
    if (lock_fd_ >= 0) return true;
    ensure_dir(dir_);
    std::string p = path(store_files::lock);
    int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) throw Error(sys_error("open()", p, errno));
    while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        if (err == EINTR) continue;
        ::close(fd);
        if (err == EWOULDBLOCK) return false;
        throw Error(sys_error("flock()", p, err));
    }
    lock_fd_ = fd;
    return true;
}

std::size_t Store::remove_unfinished() {
    DIR* d = ::opendir(dir_.c_str());
    if (d == nullptr) throw Error(sys_error("opendir()", dir_, errno));
    std::vector<std::string> found;
    while (struct dirent* e = ::readdir(d)) {
        if (is_temporary(e->d_name)) found.emplace_back(e->d_name);
    }
    ::closedir(d);
    for (const std::string& name : found) remove(name);
    return found.size();
}

std::string certificate_basename(const std::vector<Identifier>& ids, KeyType key_type) {
    if (ids.empty()) throw Error("a certificate needs at least one identifier");

    // The hash covers the identifier set and the key type, so reordering
    // server_name keeps the files while any real change gets new ones.
    std::vector<Identifier> sorted = ids;
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    std::string input;
    for (const Identifier& id : sorted) {
        input += id.type_name();
        input += ':';
        input += id.value;
        input += '\n';
    }
    input += key_type_name(key_type);

    std::string name = ids.front().value;
    std::replace(name.begin(), name.end(), '*', '_');
    return name + "-" + hex(sha256(input)).substr(0, 8);
}

}  // namespace acme
