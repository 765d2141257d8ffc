// SealedStorage: private key items sealed in, opened out.
#include "sealed_storage.h"

#include "sealed_value.h"

namespace acme {

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

bool holds_private_key(std::string_view name) {
    return ends_with(name, storage_keys::key_suffix) || ends_with(name, storage_keys::order_suffix);
}

SealedStorage::SealedStorage(std::unique_ptr<Storage> inner, std::string key, Notice notice)
    : inner_(std::move(inner)), key_(std::move(key)), notice_(std::move(notice)) {
    if (key_.size() != sealing_key_size) throw Error("sealing key is not 32 bytes");
}

std::optional<std::string> SealedStorage::open(std::string_view key,
                                               std::optional<std::string> value) {
    if (!value || !holds_private_key(key)) return value;
    if (is_sealed(*value)) {
        try {
            return open_sealed(key_, key, *value);
        } catch (const SealError& e) {
            throw SealError(locate(key) + ": " + e.what());
        }
    }
    // Stored before encrypt_key_file= was set: sealed from now on. Not a
    // compare-and-set: a renewal storing a new key in the same instant
    // would get the old one back, which the engine then finds not to match
    // the chain ("key mismatch") and orders again.
    try {
        inner_->store(key, seal_value(key_, key, *value), Access::secret);
        if (notice_) notice_(locate(key) + " was stored unencrypted: encrypted it");
    } catch (const StorageUnavailable&) {
        // Read again (and migrated) later.
    }
    return value;
}

std::optional<std::string> SealedStorage::load(std::string_view key) {
    return open(key, inner_->load(key));
}

std::optional<std::string> SealedStorage::load_secret(std::string_view key) {
    return open(key, inner_->load_secret(key));
}

void SealedStorage::store(std::string_view key, std::string_view value, Access access) {
    store_all({{std::string(key), std::string(value), access}});
}

void SealedStorage::store_hint(std::string_view key, std::string_view value, Access access) {
    if (!holds_private_key(key)) return inner_->store_hint(key, value, access);
    inner_->store_hint(key, seal_value(key_, key, value), access);
}

void SealedStorage::store_all(const std::vector<StoredItem>& items) {
    std::vector<StoredItem> sealed = items;
    for (StoredItem& item : sealed) {
        if (holds_private_key(item.key)) item.value = seal_value(key_, item.key, item.value);
    }
    inner_->store_all(sealed);
}

}  // namespace acme
