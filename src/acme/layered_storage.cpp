// LayeredStorage: the truth first, the cache as its copy and stand-in.
#include "layered_storage.h"

namespace acme {

LayeredStorage::LayeredStorage(std::unique_ptr<Storage> truth, std::unique_ptr<FileStorage> cache)
    : truth_(std::move(truth)), cache_(std::move(cache)) {}

std::string LayeredStorage::describe() const {
    return truth_->describe() + " (cache " + cache_->describe() + ")";
}

bool LayeredStorage::update_cache(std::string_view key, const std::string& value, Access access) {
    std::optional<std::string> cached;
    try {
        cached = access == Access::secret ? cache_->load_secret(key) : cache_->load(key);
    } catch (const Error&) {
        // A damaged or untrusted cache file is replaced.
    }
    if (cached && *cached == value) return false;
    cache_->store(key, value, access);
    return true;
}

std::optional<std::string> LayeredStorage::load_layered(std::string_view key, Access access) {
    std::optional<std::string> value;
    try {
        value = truth_->load(key);
        reachable_ = true;
    } catch (const StorageUnavailable&) {
        reachable_ = false;
        // What this node had: enough to serve and to know when to renew.
        return access == Access::secret ? cache_->load_secret(key) : cache_->load(key);
    }
    if (value) {
        update_cache(key, *value, access);
        return value;
    }
    return reseed(key, access);
}

// A Redis that restarted without its data (no persistence) must not make
// the cluster order everything again: what a node has is put back. Saved
// orders are not: another node may have finished and removed one.
std::optional<std::string> LayeredStorage::reseed(std::string_view key, Access access) {
    std::string_view suffix = storage_keys::order_suffix;
    if (key.size() >= suffix.size() && key.substr(key.size() - suffix.size()) == suffix) {
        return std::nullopt;
    }
    std::optional<std::string> cached;
    try {
        cached = access == Access::secret ? cache_->load_secret(key) : cache_->load(key);
    } catch (const Error&) {
        return std::nullopt;
    }
    if (!cached) return std::nullopt;
    try {
        truth_->store(key, *cached, access);
    } catch (const StorageUnavailable&) {
        reachable_ = false;
    }
    return cached;
}

std::optional<std::string> LayeredStorage::load(std::string_view key) {
    return load_layered(key, Access::shared);
}

std::optional<std::string> LayeredStorage::load_secret(std::string_view key) {
    return load_layered(key, Access::secret);
}

void LayeredStorage::store(std::string_view key, std::string_view value, Access access) {
    store_all({{std::string(key), std::string(value), access}});
}

// Writes go to the truth first: one it did not take is not cached either.
template <typename Write>
void LayeredStorage::write_through(Write write) {
    try {
        write(*truth_);
        reachable_ = true;
    } catch (const StorageUnavailable&) {
        reachable_ = false;
        throw;
    }
    write(static_cast<Storage&>(*cache_));
}

void LayeredStorage::store_all(const std::vector<StoredItem>& items) {
    write_through([&](Storage& s) { s.store_all(items); });
}

void LayeredStorage::store_hint(std::string_view key, std::string_view value, Access access) {
    write_through([&](Storage& s) { s.store_hint(key, value, access); });
}

void LayeredStorage::remove(std::string_view key) {
    write_through([&](Storage& s) { s.remove(key); });
}

std::vector<std::string> LayeredStorage::list(std::string_view prefix) {
    try {
        auto out = truth_->list(prefix);
        reachable_ = true;
        return out;
    } catch (const StorageUnavailable&) {
        reachable_ = false;
        return cache_->list(prefix);
    }
}

bool LayeredStorage::refresh_certificate(const std::string& cert_id) {
    std::string crt_key = cert_id + storage_keys::cert_suffix;
    std::string key_key = cert_id + storage_keys::key_suffix;
    std::string json_key = cert_id + storage_keys::json_suffix;
    auto crt = truth_->load(crt_key);
    auto key = truth_->load(key_key);
    auto json = truth_->load(json_key);
    reachable_ = true;
    if (!crt || !key) return false;
    bool changed = false;
    // The key first: a worker that reloads between the two finds the old
    // chain with a new key, refuses the pair and keeps what it serves.
    changed |= update_cache(key_key, *key, Access::secret);
    changed |= update_cache(crt_key, *crt, Access::shared);
    if (json) update_cache(json_key, *json, Access::shared);
    if (changed) {
        std::lock_guard<std::mutex> lk(changed_mutex_);
        changed_.insert(cert_id);
        ++changes_;
    }
    return changed;
}

bool LayeredStorage::take_changed(std::string_view cert_id) {
    std::lock_guard<std::mutex> lk(changed_mutex_);
    auto it = changed_.find(cert_id);
    if (it == changed_.end()) return false;
    changed_.erase(it);
    return true;
}

}  // namespace acme
