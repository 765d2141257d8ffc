// This node's part in a cluster of nginx nodes sharing one Redis: it makes
// the engine's storages (Redis as the truth, the state directories as
// caches), shares challenge answers, and takes in what the other nodes
// publish.
//
// Pub/sub on "<prefix>:events", one line per message:
//   cert <node> <issuer> <id>             a new certificate is stored
//   http01+ <node> <token>                an answer was published ...
//   alpn+ <node> <server name>
//   http01- <node> <token>                ... or withdrawn
//   alpn- <node> <server name> <hex digest>
// Answers themselves are keys "<prefix>:challenge:http01:<token>" and
// "<prefix>:challenge:alpn:<server name>" (an hour to live, so a dead
// node's do not linger). A node that has published an answer locally adds
// itself to "<prefix>:ack:<answer key>"; the publisher tells the CA once
// every node that received the message has, and every node whose heartbeat
// it saw lately (one whose subscription is not back yet after a Redis
// restart receives nothing, but resyncs within a second or two), or after a
// bounded wait. Every node renews "<prefix>:node:<id>" (its heartbeat)
// while it runs. A periodic resync catches what a node missed while
// disconnected.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "engine.h"
#include "redis_connection.h"
#include "shared_state.h"
#include "status_board.h"

namespace acme {

class LayeredStorage;

class ClusterNode : public ChallengeBoard {
public:
    // `local` is the node's own zone; the object publishes into it.
    ClusterNode(RedisTarget target, ChallengeBoard& local, Logger& log);
    ~ClusterNode() override;  // stops the watcher
    ClusterNode(const ClusterNode&) = delete;
    ClusterNode& operator=(const ClusterNode&) = delete;

    // Starts the watcher thread (subscription, resync, heartbeat).
    void start();
    // The engine's StorageFactory: a LayeredStorage for each issuer's state
    // path (`config` must outlive the engine).
    StorageFactory storage_factory(const EngineConfig& config);
    const std::string& node_id() const { return node_; }
    // Where the status page shows the storage's state; before start().
    void set_status_board(StatusBoard* board);
    // Whether Redis answered the watcher's last call.
    bool connected() const { return connected_.load(); }

    // ChallengeBoard: the local zone, and Redis for the other nodes.
    bool publish_http01(std::string_view token, std::string_view key_authorization) override;
    void withdraw_http01(std::string_view token) override;
    bool publish_tls_alpn01(std::string_view server_name, std::string_view identifier,
                            std::string_view digest) override;
    void withdraw_tls_alpn01(std::string_view server_name, std::string_view digest) override;
    void certificate_updated(std::string_view cert_id) override;
    std::size_t withdraw_all_challenges() override;

    // For the storages this object made.
    void forget(LayeredStorage* storage);

private:
    struct Learned {
        std::string kind;   // "http01" or "alpn"
        std::string name;   // token or server name
        std::string value;  // key authorization, or "<identifier>\n<hex digest>"
    };

    void watch();
    bool refresh(LayeredStorage& storage, const std::string& cert_id);
    void handle(const std::string& message);
    void resync_challenges();
    void resync_certificates();
    void heartbeat();
    // Other nodes whose heartbeat was seen within peer_memory.
    long long recent_peers();
    void report_storage_state(bool connected);
    // Publishes what Redis holds under an answer key into the local zone.
    void learn(const std::string& kind, const std::string& name);
    bool apply_locally(const Learned& a);
    void unlearn(const std::string& key);
    // Shares an answer and waits for the other nodes' confirmations.
    void share(const std::string& kind, const std::string& name, const std::string& value);
    void forget_own(const std::string& key);
    void log_warn(const std::string& text);

    RedisTarget target_;
    ChallengeBoard& local_;
    Logger& log_;
    std::string node_;
    std::shared_ptr<RedisConnection> redis_;  // commands, shared with the storages
    RedisConnection subscriber_;

    std::mutex mutex_;                                 // guards storages_, unopened_, learned_
    std::map<std::string, LayeredStorage*> storages_;  // by issuer
    std::set<std::string> unopened_;                   // certificates whose sealed key did not open
    std::map<std::string, Learned> learned_;           // by answer key, others' answers
    std::set<std::string> own_;                        // answer keys this node published
    // Other nodes by id: when their heartbeat was last seen (by the watcher).
    std::map<std::string, std::chrono::steady_clock::time_point> peers_;

    std::atomic<bool> connected_{false};
    StatusBoard* status_ = nullptr;
    std::uint64_t status_epoch_ = 0;
    std::mutex stop_mutex_;
    std::condition_variable stop_cv_;
    bool stopping_ = false;
    std::thread watcher_;
};

}  // namespace acme
