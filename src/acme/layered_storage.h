// A shared store (Redis) as the truth, with the node's state directory as
// its cache: workers serve certificates from the files as always, a node
// serves what it has while the shared store is out of reach, and it starts
// serving from its files before the shared store answers.
//
// Reads go to the truth and refresh the cache when the item differs; when
// the truth is out of reach they fall back to the cache, and an item the
// truth lost (a Redis restarted without persistence) is put back from the
// cache, saved orders excepted. Writes go to the
// truth first (out of reach: StorageUnavailable, nothing is written, the
// engine retries), then to the cache. The store lock is the cache's (it
// keeps a reloading node's old and new helpers apart); leases are the
// truth's (they keep the nodes apart).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <set>

#include "file_storage.h"
#include "storage.h"

namespace acme {

class LayeredStorage : public Storage {
public:
    LayeredStorage(std::unique_ptr<Storage> truth, std::unique_ptr<FileStorage> cache);

    std::string describe() const override;
    std::string locate(std::string_view key) const override { return truth_->locate(key); }
    std::optional<std::string> load(std::string_view key) override;
    std::optional<std::string> load_secret(std::string_view key) override;
    void store(std::string_view key, std::string_view value, Access access) override;
    void store_all(const std::vector<StoredItem>& items) override;
    void store_hint(std::string_view key, std::string_view value, Access access) override;
    void remove(std::string_view key) override;
    std::vector<std::string> list(std::string_view prefix) override;
    std::optional<ItemStat> stat(std::string_view key) override { return truth_->stat(key); }
    bool try_lock() override { return cache_->try_lock(); }
    std::unique_ptr<Lease> try_lease(std::string_view cert_id, std::chrono::seconds ttl) override {
        return truth_->try_lease(cert_id, ttl);
    }
    std::size_t remove_unfinished() override { return cache_->remove_unfinished(); }
    // What refresh_certificate() brought in, for the engine's scheduler.
    std::uint64_t change_sequence() const override { return changes_.load(); }
    bool take_changed(std::string_view cert_id) override;

    // Copies a certificate's chain, key and record from the truth into the
    // cache; true when the chain or key changed (workers must reload).
    bool refresh_certificate(const std::string& cert_id);
    // Whether the last call reached the truth (for the status page).
    bool truth_reachable() const { return reachable_.load(); }
    FileStorage& cache() { return *cache_; }

private:
    std::optional<std::string> load_layered(std::string_view key, Access access);
    std::optional<std::string> reseed(std::string_view key, Access access);
    template <typename Write>
    void write_through(Write write);
    // Writes the truth's value into the cache if it differs; true if it did.
    bool update_cache(std::string_view key, const std::string& value, Access access);

    std::unique_ptr<Storage> truth_;
    std::unique_ptr<FileStorage> cache_;
    std::atomic<bool> reachable_{true};
    std::atomic<std::uint64_t> changes_{0};
    std::mutex changed_mutex_;
    std::set<std::string, std::less<>> changed_;  // certificate ids
};

}  // namespace acme
