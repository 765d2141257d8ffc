// A storage whose private key items (account.key, <id>.key and saved
// orders, which carry a new key) are sealed (sealed_value.h) on their way
// in and opened on their way out; everything else passes through. The
// cluster puts it around RedisStorage when acme_storage has
// encrypt_key_file=, so that Redis (its dumps, replicas and anyone who can
// GET) never holds a key in the clear; the node's state directory keeps
// them as plain 0600 files as always.
//
// A sealed item that does not open is an Error naming the item (it is not
// served, and the engine says so before it orders anew). A plain item read
// while a key is configured is accepted and written back sealed: keys
// stored before encrypt_key_file= was set migrate as they are read.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "storage.h"

namespace acme {

// Whether an item holds a private key, by its name (storage_keys).
bool holds_private_key(std::string_view name);

class SealedStorage : public Storage {
public:
    using Notice = std::function<void(const std::string&)>;
    // `key` is sealing_key_size bytes; `notice` hears of migrated items.
    SealedStorage(std::unique_ptr<Storage> inner, std::string key, Notice notice = {});

    std::string describe() const override { return inner_->describe() + ", keys encrypted"; }
    std::string locate(std::string_view key) const override { return inner_->locate(key); }
    std::optional<std::string> load(std::string_view key) override;
    std::optional<std::string> load_secret(std::string_view key) override;
    void store(std::string_view key, std::string_view value, Access access) override;
    void store_all(const std::vector<StoredItem>& items) override;
    void store_hint(std::string_view key, std::string_view value, Access access) override;
    void remove(std::string_view key) override { inner_->remove(key); }
    std::vector<std::string> list(std::string_view prefix) override { return inner_->list(prefix); }
    std::optional<ItemStat> stat(std::string_view key) override { return inner_->stat(key); }
    bool try_lock() override { return inner_->try_lock(); }
    std::unique_ptr<Lease> try_lease(std::string_view cert_id, std::chrono::seconds ttl) override {
        return inner_->try_lease(cert_id, ttl);
    }
    std::size_t remove_unfinished() override { return inner_->remove_unfinished(); }
    bool shared() const override { return inner_->shared(); }
    std::uint64_t change_sequence() const override { return inner_->change_sequence(); }
    bool take_changed(std::string_view cert_id) override { return inner_->take_changed(cert_id); }

private:
    std::optional<std::string> open(std::string_view key, std::optional<std::string> value);

    std::unique_ptr<Storage> inner_;
    std::string key_;
    Notice notice_;
};

}  // namespace acme
