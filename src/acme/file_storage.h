// Storage in a state directory: one file per item, written atomically (temp
// file, fsync, rename, fsync directory), so a reader or a crash never sees
// half a file (store_hint's items excepted); keys 0600, the rest 0644, the directory 0700. The
// store lock is a flock on <dir>/.lock; certificate leases are byte-range locks on the same file,
// so they need no files of their own and end with the process.
#pragma once

#include <string>

#include "storage.h"

namespace acme {

class FileStorage : public Storage {
public:
    explicit FileStorage(std::string dir);
    ~FileStorage() override;
    FileStorage(const FileStorage&) = delete;
    FileStorage& operator=(const FileStorage&) = delete;

    const std::string& dir() const { return dir_; }
    // <dir>/<key>
    std::string path(std::string_view key) const;

    std::string describe() const override { return dir_; }
    std::string locate(std::string_view key) const override { return path(key); }
    // Refuses (throws) what the root master would not trust either
    // (acme::untrusted_file): a symbolic or hard link, a file of another
    // user, one others may write, and a secret others may read.
    std::optional<std::string> load(std::string_view key) override;
    std::optional<std::string> load_secret(std::string_view key) override;
    void store(std::string_view key, std::string_view value, Access access) override;
    // All temporary files are written before the first rename.
    void store_all(const std::vector<StoredItem>& items) override;
    // Rewrites the file in place: no temporary file, no rename, no fsync.
    // Creating files is what an order's storage costs most (on ext4
    // without a journal each new inode is searched for past the recently
    // deleted ones), and a saved order is written twice per order.
    void store_hint(std::string_view key, std::string_view value, Access access) override;
    void remove(std::string_view key) override;
    std::vector<std::string> list(std::string_view prefix) override;
    std::optional<ItemStat> stat(std::string_view key) override;
    bool try_lock() override;
    std::unique_ptr<Lease> try_lease(std::string_view cert_id, std::chrono::seconds ttl) override;
    // Removes the temporary files of writes that never finished (a writer
    // killed between create and rename).
    std::size_t remove_unfinished() override;

private:
    std::optional<std::string> load_checked(std::string_view key, bool secret);
    std::string write_temporary(std::string_view key, std::string_view content, Access access);
    void sync_dir();
    int open_lock_file();

    std::string dir_;
    int lock_fd_ = -1;
};

}  // namespace acme
