// hiredis behind RedisConnection. Only the blocking API is used, with
// timeouts on connect and on every reply; a subscriber polls the socket
// itself so that it can stop and resynchronise.
#include "redis_connection.h"

#include <hiredis/hiredis.h>
#include <poll.h>

#include "error.h"
#include "storage.h"

namespace acme {

namespace {

struct ReplyFree {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

timeval to_timeval(std::chrono::milliseconds ms) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
    return tv;
}

struct Argv {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    explicit Argv(const std::vector<std::string>& argv) {
        for (const std::string& a : argv) {
            ptrs.push_back(a.data());
            lens.push_back(a.size());
        }
    }
};

}  // namespace

RedisReply RedisReply::from(const redisReply* r) {
    RedisReply out;
    if (r == nullptr) return out;
    switch (r->type) {
        case REDIS_REPLY_STRING:
            out.type = Type::string;
            out.str.assign(r->str, r->len);
            break;
        case REDIS_REPLY_STATUS:
            out.type = Type::status;
            out.str.assign(r->str, r->len);
            break;
        case REDIS_REPLY_ERROR:
            out.type = Type::error;
            out.str.assign(r->str, r->len);
            break;
        case REDIS_REPLY_INTEGER:
            out.type = Type::integer;
            out.integer = r->integer;
            break;
        case REDIS_REPLY_ARRAY:
            out.type = Type::array;
            for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(from(r->element[i]));
            break;
        default:
            break;
    }
    return out;
}

RedisConnection::RedisConnection(RedisTarget target, std::chrono::milliseconds timeout)
    : target_(std::move(target)), timeout_(timeout) {}

RedisConnection::~RedisConnection() {
    if (ctx_ != nullptr) redisFree(ctx_);
}

void RedisConnection::disconnect() {
    std::lock_guard<std::mutex> lk(mutex_);
    if (ctx_ != nullptr) redisFree(ctx_);
    ctx_ = nullptr;
}

void RedisConnection::fail(const std::string& what) {
    std::string detail = ctx_ != nullptr && ctx_->err != 0 ? std::string(": ") + ctx_->errstr : "";
    if (ctx_ != nullptr) redisFree(ctx_);
    ctx_ = nullptr;
    throw StorageUnavailable("redis " + target_.host + ":" + std::to_string(target_.port) + ": " +
                             what + detail);
}

redisContext* RedisConnection::connected() {
    if (ctx_ != nullptr) return ctx_;
    ctx_ = redisConnectWithTimeout(target_.host.c_str(), target_.port, to_timeval(timeout_));
    if (ctx_ == nullptr) throw StorageUnavailable("redis: out of memory");
    if (ctx_->err != 0) fail("cannot connect");
    if (redisSetTimeout(ctx_, to_timeval(timeout_)) != REDIS_OK) fail("cannot set the timeout");
    std::vector<std::vector<std::string>> setup;
    if (!target_.password.empty()) {
        if (target_.user.empty()) {
            setup.push_back({"AUTH", target_.password});
        } else {
            setup.push_back({"AUTH", target_.user, target_.password});
        }
    }
    if (target_.db != 0) setup.push_back({"SELECT", std::to_string(target_.db)});
    for (const auto& argv : setup) {
        Argv a(argv);
        ReplyPtr r(static_cast<redisReply*>(
            redisCommandArgv(ctx_, static_cast<int>(a.ptrs.size()), a.ptrs.data(), a.lens.data())));
        if (!r) fail("no answer to " + argv.front());
        if (r->type == REDIS_REPLY_ERROR) {
            // Wrong credentials or database: not passing, but out of reach
            // all the same; the log line says why.
            fail(argv.front() + " refused: " + std::string(r->str, r->len));
        }
    }
    return ctx_;
}

RedisReply RedisConnection::command(const std::vector<std::string>& argv) {
    std::vector<RedisReply> replies = pipeline({argv});
    RedisReply r = std::move(replies.front());
    if (r.type == RedisReply::Type::error) {
        // A script or command error: Redis was reached, the call is wrong
        // (or the server is loading its data set, which passes).
        if (r.str.rfind("LOADING", 0) == 0 || r.str.rfind("READONLY", 0) == 0 ||
            r.str.rfind("MASTERDOWN", 0) == 0 || r.str.rfind("NOAUTH", 0) == 0) {
            throw StorageUnavailable("redis: " + r.str);
        }
        throw Error("redis " + argv.front() + ": " + r.str);
    }
    return r;
}

std::vector<RedisReply> RedisConnection::pipeline(
    const std::vector<std::vector<std::string>>& commands) {
    std::lock_guard<std::mutex> lk(mutex_);
    redisContext* c = connected();
    for (const auto& argv : commands) {
        Argv a(argv);
        if (redisAppendCommandArgv(c, static_cast<int>(a.ptrs.size()), a.ptrs.data(),
                                   a.lens.data()) != REDIS_OK) {
            fail("cannot send " + argv.front());
        }
    }
    std::vector<RedisReply> out;
    for (const auto& argv : commands) {
        void* raw = nullptr;
        if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr) {
            fail("no answer to " + argv.front());
        }
        ReplyPtr r(static_cast<redisReply*>(raw));
        out.push_back(RedisReply::from(r.get()));
    }
    return out;
}

void RedisConnection::send(const std::vector<std::string>& argv) {
    std::lock_guard<std::mutex> lk(mutex_);
    redisContext* c = connected();
    Argv a(argv);
    if (redisAppendCommandArgv(c, static_cast<int>(a.ptrs.size()), a.ptrs.data(), a.lens.data()) !=
        REDIS_OK) {
        fail("cannot send " + argv.front());
    }
    int done = 0;
    while (done == 0) {
        if (redisBufferWrite(c, &done) != REDIS_OK) fail("cannot send " + argv.front());
    }
}

bool RedisConnection::receive(std::chrono::milliseconds wait, RedisReply* out) {
    std::lock_guard<std::mutex> lk(mutex_);
    redisContext* c = connected();
    void* raw = nullptr;
    // A message already read into hiredis's buffer comes first.
    if (redisReaderGetReply(c->reader, &raw) != REDIS_OK) fail("bad reply");
    if (raw == nullptr) {
        pollfd p{c->fd, POLLIN, 0};
        int n = poll(&p, 1, static_cast<int>(wait.count()));
        if (n == 0) return false;
        if (n < 0) return false;  // EINTR: the caller loops
        if (redisBufferRead(c) != REDIS_OK) fail("connection lost");
        if (redisReaderGetReply(c->reader, &raw) != REDIS_OK) fail("bad reply");
        if (raw == nullptr) return false;  // part of a message so far
    }
    ReplyPtr r(static_cast<redisReply*>(raw));
    *out = RedisReply::from(r.get());
    return true;
}

}  // namespace acme
