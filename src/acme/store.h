// The state directory of one issuer: account and certificate files, written
// atomically (temp file, fsync, rename, fsync directory), so a reader or a
// crash never sees half a file.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto.h"
#include "identifier.h"

namespace acme {

namespace store_files {
inline constexpr const char* account_key = "account.key";
inline constexpr const char* account_json = "account.json";
inline constexpr const char* lock = ".lock";
inline constexpr const char* cert_suffix = ".crt";
inline constexpr const char* key_suffix = ".key";
inline constexpr const char* json_suffix = ".json";
// An order in progress (URL, and the new key once the CSR is sent), so an
// engine that dies mid-order resumes it instead of ordering again.
inline constexpr const char* order_suffix = ".order.json";
}  // namespace store_files

class Store {
public:
    explicit Store(std::string dir);
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    const std::string& dir() const { return dir_; }
    std::string path(std::string_view name) const;

    // nullopt when the file does not exist; throws acme::Error on other errors.
    std::optional<std::string> read(std::string_view name) const;
    // Atomic replace with the given mode. Throws acme::Error.
    void write(std::string_view name, std::string_view content, mode_t mode = 0644);
    // Removes a file; a missing one is fine. Throws acme::Error.
    void remove(std::string_view name);

    // Exclusive, non-blocking flock on <dir>/.lock, held until destruction.
    // False when another process (engine) holds it.
    bool try_lock();

    // Removes the temporary files of writes that never finished (a writer
    // killed between create and rename); returns how many. Only for the
    // holder of the lock: another writer's file may be in progress.
    std::size_t remove_unfinished();

private:
    std::string dir_;
    int lock_fd_ = -1;
};

// "<first identifier>-<8 hex digits of SHA-256 over the sorted identifiers
// and the key type>", e.g. "example.test-1a2b3c4d"; '*' becomes '_'.
// The store keeps <base>.crt, <base>.key and <base>.json.
std::string certificate_basename(const std::vector<Identifier>& ids, KeyType key_type);

}  // namespace acme
