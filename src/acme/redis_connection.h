// One connection to Redis through hiredis (0.14 and 1.x): commands as
// argument vectors, replies as values, and the failures of a store that is
// out of reach as StorageUnavailable. It connects on first use and again
// after any failure, so a Redis restart costs one failed call.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "redis_url.h"

struct redisContext;
struct redisReply;

namespace acme {

struct RedisReply {
    enum class Type { nil, string, integer, array, status, error };
    Type type = Type::nil;
    std::string str;  // string, status and error
    long long integer = 0;
    std::vector<RedisReply> elements;

    bool nil() const { return type == Type::nil; }
    static RedisReply from(const redisReply* r);
};

class RedisConnection {
public:
    explicit RedisConnection(RedisTarget target,
                             std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));
    ~RedisConnection();
    RedisConnection(const RedisConnection&) = delete;
    RedisConnection& operator=(const RedisConnection&) = delete;

    const RedisTarget& target() const { return target_; }

    // Runs one command; thread-safe. Throws StorageUnavailable when Redis
    // cannot be reached (the connection is dropped and made again next
    // time) and Error for an error reply.
    RedisReply command(const std::vector<std::string>& argv);
    // Several commands sent at once, their replies in order (error replies
    // are returned, not thrown: a MULTI/EXEC caller looks at EXEC's).
    std::vector<RedisReply> pipeline(const std::vector<std::vector<std::string>>& commands);

    // For a subscriber: sends a command without waiting for its reply.
    void send(const std::vector<std::string>& argv);
    // Waits up to `wait` for the next message (a reply, or a pushed
    // pub/sub message); false when none came.
    bool receive(std::chrono::milliseconds wait, RedisReply* out);
    // Drops the connection (the next call connects again).
    void disconnect();

private:
    redisContext* connected();  // with mutex_ held
    [[noreturn]] void fail(const std::string& what);

    RedisTarget target_;
    std::chrono::milliseconds timeout_;
    std::mutex mutex_;
    redisContext* ctx_ = nullptr;
};

}  // namespace acme
