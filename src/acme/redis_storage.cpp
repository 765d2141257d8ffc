// RedisStorage: items, leases and the "cert" announcement.
#include "redis_storage.h"

#include <openssl/rand.h>

#include <condition_variable>
#include <cstring>
#include <thread>

#include "crypto.h"
#include "text.h"

namespace acme {

namespace redis_keys {

std::string issuer_space(const RedisTarget& t, std::string_view issuer) {
    return t.prefix + ":" + std::string(issuer);
}
std::string item(std::string_view space, std::string_view key) {
    return std::string(space) + ":" + std::string(key);
}
std::string lease(std::string_view space, std::string_view cert_id) {
    return std::string(space) + ":lease:" + std::string(cert_id);
}
std::string events(const RedisTarget& t) { return t.prefix + ":events"; }
std::string challenges(const RedisTarget& t) { return t.prefix + ":challenges"; }

std::string glob_prefix(std::string_view literal) {
    std::string out;
    for (char c : literal) {
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
        out += c;
    }
    return out + "*";
}

}  // namespace redis_keys

namespace redis_scripts {
const char* const renew_lease =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
const char* const release_lease =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) else return 0 end";
}  // namespace redis_scripts

namespace {

constexpr const char* lease_infix = "lease:";

std::string random_token() {
    unsigned char bytes[12];
    if (RAND_bytes(bytes, sizeof bytes) != 1) throw Error("RAND_bytes failed");
    return hex(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Held while the object lives. A thread of its own refreshes it every third
// of its time to live, so that an order waiting minutes for the CA keeps it
// and a killed node loses it soon.
class RedisLease : public Lease {
public:
    RedisLease(std::shared_ptr<RedisConnection> redis, std::string key, std::string token)
        : redis_(std::move(redis)), key_(std::move(key)), token_(std::move(token)) {
        keeper_ = std::thread([this] { keep(); });
    }
    ~RedisLease() override {
        {
            std::lock_guard<std::mutex> lk(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        keeper_.join();
        try {
            redis_->command({"EVAL", redis_scripts::release_lease, "1", key_, token_});
        } catch (const std::exception&) {
            // It expires by itself.
        }
    }

    bool renew() override {
        try {
            return refresh();
        } catch (const StorageUnavailable&) {
            // Out of reach is not lost: the keeper keeps trying, and the
            // CA's answers are waited for all the same.
            std::lock_guard<std::mutex> lk(mutex_);
            return !lost_;
        }
    }

private:
    bool refresh() {
        RedisReply r = redis_->command({"EVAL", redis_scripts::renew_lease, "1", key_, token_,
                                        std::to_string(redis_lease_ttl.count())});
        std::lock_guard<std::mutex> lk(mutex_);
        if (r.integer != 1) lost_ = true;
        return !lost_;
    }

    void keep() {
        std::unique_lock<std::mutex> lk(mutex_);
        while (!wake_.wait_for(lk, redis_lease_ttl / 3, [this] { return stopping_; })) {
            lk.unlock();
            try {
                refresh();
            } catch (const std::exception&) {
                // Tried again in a moment; renew() reports a loss.
            }
            lk.lock();
        }
    }

    std::shared_ptr<RedisConnection> redis_;
    std::string key_;
    std::string token_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    bool lost_ = false;
    std::thread keeper_;
};

}  // namespace

RedisStorage::RedisStorage(std::shared_ptr<RedisConnection> redis, std::string issuer,
                           std::string node)
    : redis_(std::move(redis)),
      issuer_(std::move(issuer)),
      node_(std::move(node)),
      space_(redis_keys::issuer_space(redis_->target(), issuer_)) {}

std::string RedisStorage::describe() const {
    return redis_->target().describe() + " issuer " + issuer_;
}

std::string RedisStorage::locate(std::string_view key) const {
    return "redis key " + redis_keys::item(space_, key);
}

std::optional<std::string> RedisStorage::load(std::string_view key) {
    RedisReply r = redis_->command({"GET", redis_keys::item(space_, key)});
    if (r.nil()) return std::nullopt;
    return r.str;
}

void RedisStorage::store(std::string_view key, std::string_view value, Access access) {
    store_all({{std::string(key), std::string(value), access}});
}

void RedisStorage::store_all(const std::vector<StoredItem>& items) {
    if (items.empty()) return;
    std::vector<std::vector<std::string>> commands{{"MULTI"}};
    for (const StoredItem& item : items) {
        commands.push_back({"SET", redis_keys::item(space_, item.key), item.value});
    }
    commands.push_back({"EXEC"});
    std::vector<RedisReply> replies = redis_->pipeline(commands);
    const RedisReply& exec = replies.back();
    if (exec.type != RedisReply::Type::array) {
        throw StorageUnavailable("redis: storing " + items.front().key + " failed: " +
                                 (exec.str.empty() ? "transaction aborted" : exec.str));
    }
    announce(items);
}

// Other nodes take a new certificate (chain and key) into their caches.
void RedisStorage::announce(const std::vector<StoredItem>& items) {
    for (const StoredItem& item : items) {
        if (!ends_with(item.key, storage_keys::cert_suffix)) continue;
        std::string id =
            item.key.substr(0, item.key.size() - std::strlen(storage_keys::cert_suffix));
        try {
            redis_->command({"PUBLISH", redis_keys::events(redis_->target()),
                             "cert " + node_ + " " + issuer_ + " " + id});
        } catch (const StorageUnavailable&) {
            // Stored all the same: the others find it at their next resync.
        }
    }
}

void RedisStorage::remove(std::string_view key) {
    redis_->command({"DEL", redis_keys::item(space_, key)});
}

std::vector<std::string> RedisStorage::list(std::string_view prefix) {
    std::string start = redis_keys::item(space_, prefix);
    std::string pattern = redis_keys::glob_prefix(start);
    std::vector<std::string> out;
    std::string cursor = "0";
    do {
        RedisReply r = redis_->command({"SCAN", cursor, "MATCH", pattern, "COUNT", "500"});
        if (r.type != RedisReply::Type::array || r.elements.size() != 2) {
            throw Error("redis SCAN: unexpected reply");
        }
        cursor = r.elements[0].str;
        for (const RedisReply& k : r.elements[1].elements) {
            std::string item = k.str.substr(space_.size() + 1);
            if (item.rfind(lease_infix, 0) == 0) continue;
            out.push_back(std::move(item));
        }
    } while (cursor != "0");
    return out;
}

std::optional<ItemStat> RedisStorage::stat(std::string_view key) {
    auto value = load(key);
    if (!value) return std::nullopt;
    ItemStat s;
    s.version = hex(sha256(*value)).substr(0, 16);
    return s;
}

std::unique_ptr<Lease> RedisStorage::try_lease(std::string_view cert_id, std::chrono::seconds) {
    std::string key = redis_keys::lease(space_, cert_id);
    std::string token = node_ + "/" + random_token();
    RedisReply r =
        redis_->command({"SET", key, token, "NX", "PX", std::to_string(redis_lease_ttl.count())});
    if (r.nil()) return nullptr;
    return std::make_unique<RedisLease>(redis_, std::move(key), std::move(token));
}

}  // namespace acme
