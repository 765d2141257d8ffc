// The storage seam: everything the engine persists (account key and record,
// certificate chains, keys and records, saved orders) goes through this
// interface, and so do the locks that keep engines apart. FileStorage keeps
// it in a state directory; a remote backend (Redis) fits the same calls: it
// may be briefly unavailable (every call may throw StorageUnavailable) and
// shared by several engines (leases expire unless renewed).
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto.h"
#include "error.h"
#include "identifier.h"

namespace acme {

// The names of the items the engine keeps. A certificate's items are its
// id (certificate_basename) plus a suffix; the file backend uses them as
// file names, a remote one as keys under its prefix.
namespace storage_keys {
inline constexpr const char* account_key = "account.key";
inline constexpr const char* account_json = "account.json";
inline constexpr const char* cert_suffix = ".crt";
inline constexpr const char* key_suffix = ".key";
inline constexpr const char* json_suffix = ".json";
// An order in progress (URL, and the new key once the CSR is sent), so an
// engine that dies mid-order resumes it instead of ordering again.
inline constexpr const char* order_suffix = ".order.json";
// The checked DER OCSP response for the stored certificate, which workers
// staple (only for certificates of servers with ssl_stapling on).
inline constexpr const char* ocsp_suffix = ".ocsp";
}  // namespace storage_keys

// "<first identifier>-<8 hex digits of SHA-256 over the sorted identifiers
// and the key type>", e.g. "example.test-1a2b3c4d"; '*' becomes '_', and
// a first identifier longer than max_basename_name is cut to that length.
// Storage keeps <id>.crt, <id>.key and <id>.json.
std::string certificate_basename(const std::vector<Identifier>& ids, KeyType key_type);
inline constexpr std::size_t max_basename_name = 200;

// The backend cannot be reached just now: try again later; nothing was lost.
struct StorageUnavailable : Error {
    using Error::Error;
};

// Who may read an item: secrets (private keys, saved orders with a key)
// only the engine's user.
enum class Access { shared, secret };

struct StoredItem {
    std::string key;
    std::string value;
    Access access = Access::shared;
};

struct ItemStat {
    std::time_t modified = 0;
    std::string version;  // changes with every write (file: inode and mtime)
};

// A lease on one certificate: while held, no other engine orders it. A
// lease that is not renewed within its time to live expires (a remote
// store); the file backend's ends with the process.
class Lease {
public:
    virtual ~Lease() = default;  // releases it
    // False when the lease was lost (expired and taken by another engine):
    // the holder must stop acting on the certificate.
    virtual bool renew() = 0;
};

class Storage {
public:
    virtual ~Storage() = default;

    // For log lines: the directory, or the server and prefix.
    virtual std::string describe() const = 0;
    // Where an item lives, for log lines (a path, or a key).
    virtual std::string locate(std::string_view key) const = 0;

    // nullopt when the item does not exist; throws Error on other failures.
    virtual std::optional<std::string> load(std::string_view key) = 0;
    // An item stored with Access::secret: a backend that can tell also
    // refuses one that others could have read.
    virtual std::optional<std::string> load_secret(std::string_view key) { return load(key); }
    // Replaces the item atomically: a reader sees the old or the new value.
    virtual void store(std::string_view key, std::string_view value, Access access) = 0;
    // Replaces an item whose loss costs only repeated work (the saved
    // order): cheaper than store(), neither atomic nor durable, so after a
    // crash a reader may find it torn or gone and must take damage for
    // absence. A backend without a cheaper way just stores it.
    virtual void store_hint(std::string_view key, std::string_view value, Access access) {
        store(key, value, access);
    }
    // Stores several items, each atomically, in the given order.
    virtual void store_all(const std::vector<StoredItem>& items) {
        for (const StoredItem& item : items) store(item.key, item.value, item.access);
    }
    // Removes an item; a missing one is fine.
    virtual void remove(std::string_view key) = 0;
    // The keys that start with `prefix`, in no particular order.
    virtual std::vector<std::string> list(std::string_view prefix) = 0;
    virtual std::optional<ItemStat> stat(std::string_view key) = 0;

    // Exclusive use of the whole store by this engine, held until the
    // storage is destroyed. False when another engine holds it.
    virtual bool try_lock() = 0;
    // A lease on one certificate; nullptr when another engine holds it.
    virtual std::unique_ptr<Lease> try_lease(std::string_view cert_id,
                                             std::chrono::seconds ttl) = 0;
    // Cleans up what writers killed mid-write left behind; returns how
    // many items. Only for the holder of the store lock.
    virtual std::size_t remove_unfinished() { return 0; }
    // Shared with the engines of other nodes (a cluster store): a lease
    // taken means the item may have changed since it was last read.
    virtual bool shared() const { return false; }
    // A shared store learns of certificates other engines stored: the
    // sequence changes with every one, and take_changed() says (once)
    // whether this certificate was one of them.
    virtual std::uint64_t change_sequence() const { return 0; }
    virtual bool take_changed(std::string_view cert_id) {
        (void)cert_id;
        return false;
    }
};

}  // namespace acme
