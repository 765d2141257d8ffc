// Storage in Redis, shared by the engines of several nginx nodes. Items are
// string keys "<prefix>:<issuer>:<item>" (the item names of storage_keys);
// a certificate's lease is "<prefix>:<issuer>:lease:<id>", taken with
// SET NX PX and kept alive by the holder, so that a node that dies lets
// it expire. Storing a certificate publishes "cert" on "<prefix>:events"
// (see cluster_node.h). Every call may throw StorageUnavailable.
#pragma once

#include <memory>
#include <string>

#include "redis_connection.h"
#include "storage.h"

namespace acme {

// How long a lease lives without its holder: a node killed mid-order holds
// up the certificate this long. The holder refreshes it every third of it.
inline constexpr std::chrono::milliseconds redis_lease_ttl{15000};

namespace redis_keys {
// "<prefix>:<issuer>"
std::string issuer_space(const RedisTarget& t, std::string_view issuer);
std::string item(std::string_view space, std::string_view key);
std::string lease(std::string_view space, std::string_view cert_id);
// Pub/sub channel of the cluster, and the hash of pending challenge answers.
std::string events(const RedisTarget& t);
std::string challenges(const RedisTarget& t);
// A glob pattern matching exactly the keys that start with `literal`.
std::string glob_prefix(std::string_view literal);
}  // namespace redis_keys

// The Lua scripts of the leases: a holder only extends or deletes a lease
// that still carries its token.
namespace redis_scripts {
extern const char* const renew_lease;
extern const char* const release_lease;
}  // namespace redis_scripts

class RedisStorage : public Storage {
public:
    // `node` names this node in messages (its own are ignored).
    RedisStorage(std::shared_ptr<RedisConnection> redis, std::string issuer, std::string node);

    std::string describe() const override;
    std::string locate(std::string_view key) const override;
    std::optional<std::string> load(std::string_view key) override;
    void store(std::string_view key, std::string_view value, Access access) override;
    // One MULTI/EXEC: other nodes see all of the items or none.
    void store_all(const std::vector<StoredItem>& items) override;
    void remove(std::string_view key) override;
    std::vector<std::string> list(std::string_view prefix) override;
    std::optional<ItemStat> stat(std::string_view key) override;
    // The store is shared by design: engines are kept apart per
    // certificate by leases.
    bool try_lock() override { return true; }
    std::unique_ptr<Lease> try_lease(std::string_view cert_id, std::chrono::seconds ttl) override;

    const std::string& issuer() const { return issuer_; }

private:
    void announce(const std::vector<StoredItem>& items);

    std::shared_ptr<RedisConnection> redis_;
    std::string issuer_;
    std::string node_;
    std::string space_;
};

}  // namespace acme
