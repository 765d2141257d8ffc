// ClusterNode: shared answers, announcements and the watcher thread.
#include "cluster_node.h"

#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "crypto.h"
#include "layered_storage.h"
#include "redis_storage.h"
#include "sealed_storage.h"
#include "sealed_value.h"
#include "text.h"

namespace acme {

namespace {

// How long a published answer waits for the other nodes to confirm it.
constexpr std::chrono::milliseconds confirm_wait{5000};
constexpr std::chrono::seconds answer_ttl{3600};
constexpr std::chrono::seconds challenge_resync{10};
constexpr std::chrono::seconds certificate_resync{60};
constexpr std::chrono::seconds heartbeat_every{5};
constexpr std::chrono::seconds heartbeat_ttl{20};
// How long a node seen alive is waited for (its confirmations) without a
// heartbeat: a Redis restart loses every heartbeat key.
constexpr std::chrono::seconds peer_memory{60};
constexpr std::chrono::seconds reconnect_delay{1};

std::string answer_key(const RedisTarget& t, const std::string& kind, const std::string& name) {
    return t.prefix + ":challenge:" + kind + ":" + name;
}
std::string ack_key(const std::string& answer) {
    // The answer key minus "<prefix>:challenge:" would do, but the whole
    // one is unambiguous.
    return answer + ":ack";
}

std::string make_node_id() {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    unsigned char r[4];
    if (RAND_bytes(r, sizeof r) != 1) throw Error("RAND_bytes failed");
    std::string id = std::string(host[0] ? host : "node") + "." + std::to_string(getpid()) + "." +
                     hex(std::string_view(reinterpret_cast<const char*>(r), sizeof r));
    for (char& c : id) {
        if (c == ' ' || c == ':') c = '_';
    }
    return id;
}

std::optional<std::string> from_hex(std::string_view s) {
    if (s.size() % 2 != 0) return std::nullopt;
    auto value = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    std::string out;
    for (std::size_t i = 0; i < s.size(); i += 2) {
        int hi = value(s[i]), lo = value(s[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
    }
    return out;
}

std::vector<std::string> words(const std::string& s) {
    std::istringstream in(s);
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

// The storages the engine gets: they leave the node's list when the engine
// lets go of them (a restart of the engine makes new ones).
class ClusterStorage : public LayeredStorage {
public:
    ClusterStorage(ClusterNode& node, std::unique_ptr<Storage> truth,
                   std::unique_ptr<FileStorage> cache)
        : LayeredStorage(std::move(truth), std::move(cache)), node_(node) {}
    ~ClusterStorage() override { node_.forget(this); }
    bool shared() const override { return true; }

private:
    ClusterNode& node_;
};

}  // namespace

ClusterNode::ClusterNode(RedisTarget target, ChallengeBoard& local, Logger& log)
    : target_(std::move(target)),
      local_(local),
      log_(log),
      node_(make_node_id()),
      redis_(std::make_shared<RedisConnection>(target_)),
      subscriber_(target_) {}

ClusterNode::~ClusterNode() {
    {
        std::lock_guard<std::mutex> lk(stop_mutex_);
        stopping_ = true;
    }
    stop_cv_.notify_all();
    if (watcher_.joinable()) watcher_.join();
}

void ClusterNode::start() {
    watcher_ = std::thread([this] { watch(); });
}

void ClusterNode::set_status_board(StatusBoard* board) {
    status_ = board;
    if (board != nullptr) status_epoch_ = board->epoch();
}

void ClusterNode::report_storage_state(bool connected) {
    if (status_ == nullptr) return;
    std::vector<std::string> issuers;
    {
        std::lock_guard<std::mutex> lk(mutex_);
        for (const auto& entry : storages_) issuers.push_back(entry.first);
    }
    for (const std::string& issuer : issuers) {
        status_->update_issuer(status_epoch_, issuer, [connected](IssuerStatus& s) {
            s.storage = "redis";
            s.storage_state = connected ? "connected" : "unreachable";
        });
    }
}

void ClusterNode::log_warn(const std::string& text) {
    log_.log(LogLevel::warn, "acme cluster: " + text);
}

StorageFactory ClusterNode::storage_factory(const EngineConfig& config) {
    return [this, &config](const std::string& state_path) -> std::unique_ptr<Storage> {
        std::string issuer;
        for (const IssuerConfig& ic : config.issuers) {
            if (ic.state_path == state_path) {
                issuer = ic.name;
                break;
            }
        }
        std::unique_ptr<Storage> truth = std::make_unique<RedisStorage>(redis_, issuer, node_);
        if (!target_.sealing_key.empty()) {
            truth = std::make_unique<SealedStorage>(
                std::move(truth), target_.sealing_key, [this](const std::string& text) {
                    log_.log(LogLevel::notice, "acme cluster: " + text);
                });
        }
        auto storage = std::make_unique<ClusterStorage>(*this, std::move(truth),
                                                        std::make_unique<FileStorage>(state_path));
        {
            std::lock_guard<std::mutex> lk(mutex_);
            storages_[issuer] = storage.get();
        }
        // The status page shows it from the start, not from the next heartbeat.
        report_storage_state(connected_.load());
        return storage;
    };
}

void ClusterNode::forget(LayeredStorage* storage) {
    std::lock_guard<std::mutex> lk(mutex_);
    for (auto it = storages_.begin(); it != storages_.end();) {
        it = it->second == storage ? storages_.erase(it) : std::next(it);
    }
}

// --- challenge answers -----------------------------------------------------

void ClusterNode::share(const std::string& kind, const std::string& name,
                        const std::string& value) {
    std::string key = answer_key(target_, kind, name);
    {
        std::lock_guard<std::mutex> lk(mutex_);
        own_.insert(key);
    }
    try {
        redis_->pipeline(
            {{"DEL", ack_key(key)}, {"SET", key, value, "EX", std::to_string(answer_ttl.count())}});
        RedisReply receivers = redis_->command(
            {"PUBLISH", redis_keys::events(target_), kind + "+ " + node_ + " " + name});
        // Our own watcher is one of the receivers and does not confirm.
        long long others = std::max(receivers.integer - 1, recent_peers());
        auto deadline = std::chrono::steady_clock::now() + confirm_wait;
        while (others > 0) {
            RedisReply acks = redis_->command({"SCARD", ack_key(key)});
            if (acks.integer >= others) return;
            if (std::chrono::steady_clock::now() >= deadline) {
                log_warn("only " + std::to_string(acks.integer) + " of " + std::to_string(others) +
                         " nodes confirmed the answer for " + quoted(name) +
                         ": telling the CA all the same");
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    } catch (const Error& e) {
        // This node answers all the same: the CA may well ask it.
        log_warn("cannot share the answer for " + quoted(name) + ": " + e.what());
    }
}

bool ClusterNode::publish_http01(std::string_view token, std::string_view key_authorization) {
    if (!local_.publish_http01(token, key_authorization)) return false;
    share("http01", std::string(token), std::string(key_authorization));
    return true;
}

bool ClusterNode::publish_tls_alpn01(std::string_view server_name, std::string_view identifier,
                                     std::string_view digest) {
    if (!local_.publish_tls_alpn01(server_name, identifier, digest)) return false;
    share("alpn", std::string(server_name), std::string(identifier) + "\n" + hex(digest));
    return true;
}

void ClusterNode::withdraw_http01(std::string_view token) {
    local_.withdraw_http01(token);
    std::string key = answer_key(target_, "http01", std::string(token));
    forget_own(key);
    try {
        redis_->pipeline({{"DEL", key, ack_key(key)},
                          {"PUBLISH", redis_keys::events(target_),
                           "http01- " + node_ + " " + std::string(token)}});
    } catch (const Error&) {
        // The key expires; the others drop it at their next resync.
    }
}

void ClusterNode::withdraw_tls_alpn01(std::string_view server_name, std::string_view digest) {
    local_.withdraw_tls_alpn01(server_name, digest);
    std::string key = answer_key(target_, "alpn", std::string(server_name));
    forget_own(key);
    // Only our own answer: a newer one of another order stays.
    const char* script =
        "local v = redis.call('get', KEYS[1]) "
        "if v and string.sub(v, -string.len(ARGV[1])) == ARGV[1] then "
        "return redis.call('del', KEYS[1], KEYS[2]) else return 0 end";
    try {
        redis_->command({"EVAL", script, "2", key, ack_key(key), "\n" + hex(digest)});
        redis_->command({"PUBLISH", redis_keys::events(target_),
                         "alpn- " + node_ + " " + std::string(server_name) + " " + hex(digest)});
    } catch (const Error&) {
    }
}

void ClusterNode::forget_own(const std::string& key) {
    std::lock_guard<std::mutex> lk(mutex_);
    own_.erase(key);
}

void ClusterNode::certificate_updated(std::string_view cert_id) {
    // The storage announced it when it was stored.
    local_.certificate_updated(cert_id);
}

std::size_t ClusterNode::withdraw_all_challenges() {
    std::size_t n = local_.withdraw_all_challenges();
    // Other nodes' answers are not leftovers of this node.
    std::lock_guard<std::mutex> lk(mutex_);
    for (const auto& [key, a] : learned_) {
        apply_locally(a);
        if (n > 0) --n;
    }
    return n;
}

// --- what the other nodes publish --------------------------------------------

bool ClusterNode::apply_locally(const Learned& a) {
    if (a.kind == "http01") return local_.publish_http01(a.name, a.value);
    auto nl = a.value.find('\n');
    if (nl == std::string::npos) return false;
    auto digest = from_hex(std::string_view(a.value).substr(nl + 1));
    if (!digest) return false;
    return local_.publish_tls_alpn01(a.name, a.value.substr(0, nl), *digest);
}

void ClusterNode::learn(const std::string& kind, const std::string& name) {
    std::string key = answer_key(target_, kind, name);
    RedisReply value = redis_->command({"GET", key});
    if (value.nil()) return;
    Learned a{kind, name, value.str};
    {
        std::lock_guard<std::mutex> lk(mutex_);
        if (!apply_locally(a)) {
            log_warn("no room in the shared zone for the answer for " + quoted(name));
            return;
        }
        learned_[key] = a;
    }
    redis_->pipeline({{"SADD", ack_key(key), node_},
                      {"EXPIRE", ack_key(key), std::to_string(answer_ttl.count())}});
}

void ClusterNode::unlearn(const std::string& key) {
    std::lock_guard<std::mutex> lk(mutex_);
    auto it = learned_.find(key);
    if (it == learned_.end()) return;
    const Learned& a = it->second;
    if (a.kind == "http01") {
        local_.withdraw_http01(a.name);
    } else if (auto nl = a.value.find('\n'); nl != std::string::npos) {
        if (auto digest = from_hex(std::string_view(a.value).substr(nl + 1))) {
            local_.withdraw_tls_alpn01(a.name, *digest);
        }
    }
    learned_.erase(it);
}

// A key sealed with another encrypt_key_file is not taken in (the cache
// keeps what it has), and does not stop the watcher: said once per item.
bool ClusterNode::refresh(LayeredStorage& storage, const std::string& cert_id) {
    try {
        return storage.refresh_certificate(cert_id);
    } catch (const SealError& e) {
        if (unopened_.insert(cert_id).second) log_warn(std::string(e.what()) + "; not taken in");
        return false;
    }
}

void ClusterNode::handle(const std::string& message) {
    std::vector<std::string> w = words(message);
    if (w.size() < 3 || w[1] == node_) return;
    const std::string& what = w[0];
    if (what == "cert" && w.size() == 4) {
        std::lock_guard<std::mutex> lk(mutex_);
        auto it = storages_.find(w[2]);
        if (it != storages_.end() && refresh(*it->second, w[3])) {
            local_.certificate_updated(w[3]);
        }
    } else if (what == "http01+" || what == "alpn+") {
        learn(what.substr(0, what.size() - 1), w[2]);
    } else if (what == "http01-") {
        unlearn(answer_key(target_, "http01", w[2]));
    } else if (what == "alpn-" && w.size() == 4) {
        // Only that answer: another order may have published a newer one.
        std::string key = answer_key(target_, "alpn", w[2]);
        bool same;
        {
            std::lock_guard<std::mutex> lk(mutex_);
            auto it = learned_.find(key);
            same = it != learned_.end() && it->second.value.size() > w[3].size() &&
                   it->second.value.compare(it->second.value.size() - w[3].size(), w[3].size(),
                                            w[3]) == 0;
        }
        if (same) unlearn(key);
    }
}

void ClusterNode::resync_challenges() {
    std::string pattern = redis_keys::glob_prefix(target_.prefix + ":challenge:");
    std::map<std::string, std::pair<std::string, std::string>> present;  // key -> kind, name
    std::string cursor = "0";
    do {
        RedisReply r = redis_->command({"SCAN", cursor, "MATCH", pattern, "COUNT", "500"});
        if (r.type != RedisReply::Type::array || r.elements.size() != 2) return;
        cursor = r.elements[0].str;
        for (const RedisReply& k : r.elements[1].elements) {
            if (k.str.size() > 4 && k.str.compare(k.str.size() - 4, 4, ":ack") == 0) continue;
            std::string rest = k.str.substr(target_.prefix.size() + std::strlen(":challenge:"));
            auto colon = rest.find(':');
            if (colon == std::string::npos) continue;
            present[k.str] = {rest.substr(0, colon), rest.substr(colon + 1)};
        }
    } while (cursor != "0");
    std::vector<std::string> gone;
    {
        std::lock_guard<std::mutex> lk(mutex_);
        for (const auto& [key, a] : learned_) {
            if (present.count(key) == 0) gone.push_back(key);
        }
    }
    for (const std::string& key : gone) unlearn(key);
    for (const auto& [key, kn] : present) {
        bool known;
        {
            std::lock_guard<std::mutex> lk(mutex_);
            // Ours are served here already and left to their order.
            known = learned_.count(key) != 0 || own_.count(key) != 0;
        }
        if (!known) learn(kn.first, kn.second);
    }
}

void ClusterNode::resync_certificates() {
    std::lock_guard<std::mutex> lk(mutex_);
    for (auto& [issuer, storage] : storages_) {
        for (const std::string& item : storage->list("")) {
            const std::string suffix = storage_keys::cert_suffix;
            if (item.size() <= suffix.size() ||
                item.compare(item.size() - suffix.size(), suffix.size(), suffix) != 0) {
                continue;
            }
            std::string id = item.substr(0, item.size() - suffix.size());
            if (refresh(*storage, id)) local_.certificate_updated(id);
        }
    }
}

long long ClusterNode::recent_peers() {
    auto since = std::chrono::steady_clock::now() - peer_memory;
    std::lock_guard<std::mutex> lk(mutex_);
    return std::count_if(peers_.begin(), peers_.end(),
                         [&](const auto& p) { return p.second >= since; });
}

void ClusterNode::heartbeat() {
    redis_->command({"SET", target_.prefix + ":node:" + node_, std::to_string(std::time(nullptr)),
                     "EX", std::to_string(heartbeat_ttl.count())});
    // The other nodes alive now, remembered across a Redis restart.
    std::string prefix = target_.prefix + ":node:";
    std::string cursor = "0";
    auto now = std::chrono::steady_clock::now();
    do {
        RedisReply r = redis_->command(
            {"SCAN", cursor, "MATCH", redis_keys::glob_prefix(prefix), "COUNT", "500"});
        if (r.type != RedisReply::Type::array || r.elements.size() != 2) return;
        cursor = r.elements[0].str;
        std::lock_guard<std::mutex> lk(mutex_);
        for (const RedisReply& k : r.elements[1].elements) {
            std::string id = k.str.substr(prefix.size());
            if (id != node_) peers_[id] = now;
        }
    } while (cursor != "0");
}

void ClusterNode::watch() {
    using Clock = std::chrono::steady_clock;
    bool warned = false;
    for (;;) {
        {
            std::lock_guard<std::mutex> lk(stop_mutex_);
            if (stopping_) break;
        }
        try {
            subscriber_.send({"SUBSCRIBE", redis_keys::events(target_)});
            // Whatever was published while we were away.
            heartbeat();
            resync_challenges();
            resync_certificates();
            connected_ = true;
            report_storage_state(true);
            if (warned) log_.log(LogLevel::notice, "acme cluster: redis is back");
            warned = false;
            Clock::time_point challenges_at = Clock::now() + challenge_resync;
            Clock::time_point certificates_at = Clock::now() + certificate_resync;
            Clock::time_point heartbeat_at = Clock::now() + heartbeat_every;
            for (;;) {
                {
                    std::lock_guard<std::mutex> lk(stop_mutex_);
                    if (stopping_) return;
                }
                RedisReply m;
                if (subscriber_.receive(std::chrono::milliseconds(250), &m) &&
                    m.type == RedisReply::Type::array && m.elements.size() == 3 &&
                    m.elements[0].str == "message") {
                    handle(m.elements[2].str);
                }
                Clock::time_point now = Clock::now();
                if (now >= heartbeat_at) {
                    heartbeat();
                    report_storage_state(true);
                    heartbeat_at = now + heartbeat_every;
                }
                if (now >= challenges_at) {
                    resync_challenges();
                    challenges_at = now + challenge_resync;
                }
                if (now >= certificates_at) {
                    resync_certificates();
                    certificates_at = now + certificate_resync;
                }
            }
        } catch (const std::exception& e) {
            connected_ = false;
            report_storage_state(false);
            subscriber_.disconnect();
            if (!warned) log_warn(std::string(e.what()) + "; serving what this node has");
            warned = true;
        }
        std::unique_lock<std::mutex> lk(stop_mutex_);
        stop_cv_.wait_for(lk, reconnect_delay, [this] { return stopping_; });
    }
}

}  // namespace acme
