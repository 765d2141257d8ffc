// The state directory as storage: atomic file replacement (so nginx and a
// crash never see half a certificate), the engine's exclusive lock, leases.
#include "file_storage.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "file_io.h"

namespace acme {

namespace {

constexpr const char* lock_file = ".lock";

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
    int release() {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }
    // Closes now and reports close()'s error: for written files it can be
    // the first sign of a failed write (NFS, quota).
    int close() { return ::close(release()); }

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

// Byte offset of a certificate's lease in the lock file: a hash, so that
// no file is needed per certificate (a collision only makes two
// certificates wait for each other).
off_t lease_offset(std::string_view cert_id) {
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (unsigned char c : cert_id) h = (h ^ c) * 1099511628211ull;
    return static_cast<off_t>(1 + (h & 0x3fffffffffffull));
}

// An open file description lock (F_OFD_SETLK) on one byte of the lock file:
// exclusive between processes and between descriptors of one process,
// released when the descriptor is closed, so a killed holder loses it.
class FileLease : public Lease {
public:
    explicit FileLease(int fd) : fd_(fd) {}
    ~FileLease() override { ::close(fd_); }
    bool renew() override { return true; }

private:
    int fd_;
};

}  // namespace

FileStorage::FileStorage(std::string dir) : dir_(std::move(dir)) {
    while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
}

FileStorage::~FileStorage() {
    if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::string FileStorage::path(std::string_view key) const {
    std::string p = dir_;
    p += '/';
    p += key;
    return p;
}

std::optional<std::string> FileStorage::load(std::string_view key) {
    return load_checked(key, false);
}

std::optional<std::string> FileStorage::load_secret(std::string_view key) {
    return load_checked(key, true);
}

std::optional<std::string> FileStorage::load_checked(std::string_view key, bool secret) {
    std::string content, why;
    struct stat st;
    switch (read_trusted_file(path(key), secret, ::geteuid(), &content, &st, &why)) {
        case TrustedRead::ok:
            return content;
        case TrustedRead::missing:
            return std::nullopt;
        case TrustedRead::refused:
            break;
    }
    throw Error(why);
}

// Writes and flushes <name>.tmp.<pid>.<tid>; returns its path. Nothing is
// left behind when this throws.
std::string FileStorage::write_temporary(std::string_view key, std::string_view content,
                                         Access access) {
    // Keys are the engine's user's alone; workers read certificates.
    mode_t mode = access == Access::secret ? 0600 : 0644;
    std::string target = path(key);
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
        // The umask may have narrowed the mode; the mode is the contract.
        if (::fchmod(fd.get(), mode) != 0) throw Error(sys_error("fchmod()", tmp, errno));
        write_all(fd.get(), content, tmp);
        if (::fsync(fd.get()) != 0) throw Error(sys_error("fsync()", tmp, errno));
        if (fd.close() != 0) throw Error(sys_error("close()", tmp, errno));
    } catch (...) {
        ::unlink(tmp.c_str());
        throw;
    }
    return tmp;
}

// Make the renames themselves durable: without this a crash can bring back
// the old file (or none) although store() returned.
void FileStorage::sync_dir() {
    int draw = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (draw < 0) throw Error(sys_error("open()", dir_, errno));
    Fd dfd(draw);
    if (::fsync(dfd.get()) != 0 && errno != EINVAL) throw Error(sys_error("fsync()", dir_, errno));
}

void FileStorage::store(std::string_view key, std::string_view content, Access access) {
    store_all({{std::string(key), std::string(content), access}});
}

// Every item goes to a temporary file first, and only when all of them are
// written are they renamed into place, in order. A full disk or a failed
// write thus leaves every old item as it was: never a new key beside the
// old certificate, which the master would refuse at the next reload.
void FileStorage::store_all(const std::vector<StoredItem>& items) {
    ensure_dir(dir_);
    std::vector<std::string> temps;
    std::size_t renamed = 0;
    try {
        for (const StoredItem& item : items) {
            temps.push_back(write_temporary(item.key, item.value, item.access));
        }
        for (; renamed < items.size(); ++renamed) {
            std::string target = path(items[renamed].key);
            if (::rename(temps[renamed].c_str(), target.c_str()) != 0) {
                throw Error(sys_error("rename() to \"" + target + "\" of", temps[renamed], errno));
            }
        }
    } catch (...) {
        for (std::size_t i = renamed; i < temps.size(); ++i) ::unlink(temps[i].c_str());
        throw;
    }
    sync_dir();
}

void FileStorage::store_hint(std::string_view key, std::string_view content, Access access) {
    ensure_dir(dir_);
    mode_t mode = access == Access::secret ? 0600 : 0644;
    std::string target = path(key);
    int raw = ::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
    if (raw < 0) throw Error(sys_error("open()", target, errno));
    Fd fd(raw);
    try {
        if (::fchmod(fd.get(), mode) != 0) throw Error(sys_error("fchmod()", target, errno));
        write_all(fd.get(), content, target);
        if (fd.close() != 0) throw Error(sys_error("close()", target, errno));
    } catch (...) {
        // Half a hint is none: leave nothing to be read.
        ::unlink(target.c_str());
        throw;
    }
}

void FileStorage::remove(std::string_view key) {
    std::string p = path(key);
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) throw Error(sys_error("unlink()", p, errno));
}

std::vector<std::string> FileStorage::list(std::string_view prefix) {
    std::vector<std::string> found;
    DIR* d = ::opendir(dir_.c_str());
    if (d == nullptr) {
        if (errno == ENOENT) return found;
        throw Error(sys_error("opendir()", dir_, errno));
    }
    while (struct dirent* e = ::readdir(d)) {
        std::string_view name = e->d_name;
        if (name == "." || name == ".." || name == lock_file || is_temporary(name)) continue;
        if (name.substr(0, prefix.size()) == prefix) found.emplace_back(name);
    }
    ::closedir(d);
    return found;
}

std::optional<ItemStat> FileStorage::stat(std::string_view key) {
    std::string p = path(key);
    struct stat st;
    if (::stat(p.c_str(), &st) != 0) {
        if (errno == ENOENT) return std::nullopt;
        throw Error(sys_error("stat()", p, errno));
    }
    ItemStat s;
    s.modified = st.st_mtime;
    s.version = std::to_string(st.st_ino) + "." + std::to_string(st.st_mtim.tv_sec) + "." +
                std::to_string(st.st_mtim.tv_nsec);
    return s;
}

int FileStorage::open_lock_file() {
    ensure_dir(dir_);
    std::string p = path(lock_file);
    int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) throw Error(sys_error("open()", p, errno));
    return fd;
}

bool FileStorage::try_lock() {
    if (lock_fd_ >= 0) return true;
    Fd fd(open_lock_file());
    while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EWOULDBLOCK) return false;
        throw Error(sys_error("flock()", path(lock_file), err));
    }
    lock_fd_ = fd.release();
    return true;
}

std::unique_ptr<Lease> FileStorage::try_lease(std::string_view cert_id, std::chrono::seconds) {
    Fd fd(open_lock_file());
    struct flock lk {};
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET;
    lk.l_start = lease_offset(cert_id);
    lk.l_len = 1;
    while (::fcntl(fd.get(), F_OFD_SETLK, &lk) != 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EACCES) return nullptr;
        throw Error(sys_error("fcntl(F_OFD_SETLK)", path(lock_file), err));
    }
    return std::make_unique<FileLease>(fd.release());
}

std::size_t FileStorage::remove_unfinished() {
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

}  // namespace acme
