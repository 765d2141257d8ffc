// Unit tests of the Redis store: acme_storage URLs (redis_url.h), and, with
// Debian's redis-server started by the fixture on a loopback port, the key
// layout, transactions and announcements of RedisStorage, its leases and
// their scripts, and LayeredStorage's cache, fallback and reseeding.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "acme/error.h"
#include "acme/file_io.h"
#include "acme/layered_storage.h"
#include "acme/redis_connection.h"
#include "acme/redis_storage.h"
#include "acme/redis_url.h"
#include "temp_dir.h"

namespace {

using acme::Access;
using acme::RedisConnection;
using acme::RedisReply;
using acme::RedisTarget;

TEST(RedisUrl, HostPortAndDefaults) {
    RedisTarget t = acme::parse_redis_url("redis://127.0.0.1:6380");
    EXPECT_EQ(t.host, "127.0.0.1");
    EXPECT_EQ(t.port, 6380);
    EXPECT_EQ(t.db, 0);
    EXPECT_EQ(t.user, "");
    EXPECT_EQ(t.password, "");
    EXPECT_FALSE(t.tls);
    EXPECT_EQ(t.prefix, "acme");
}

TEST(RedisUrl, CredentialsDatabaseAndIpv6) {
    RedisTarget t = acme::parse_redis_url("redis://acme:s%40cret@[::1]:6379/7");
    EXPECT_EQ(t.host, "::1");
    EXPECT_EQ(t.user, "acme");
    EXPECT_EQ(t.password, "s@cret");
    EXPECT_EQ(t.db, 7);
    RedisTarget p = acme::parse_redis_url("redis://:pw@redis.internal:6379/0");
    EXPECT_EQ(p.user, "");
    EXPECT_EQ(p.password, "pw");
    EXPECT_EQ(p.host, "redis.internal");
    // Credentials never appear in log lines.
    EXPECT_EQ(t.describe(), "redis://[::1]:6379/7 prefix=acme");
}

TEST(RedisUrl, RejectsWhatIsWrong) {
    for (const char* bad :
         {"http://127.0.0.1:6379", "redis://127.0.0.1", "redis://:6379", "redis://h:0",
          "redis://h:65536", "redis://h:6379/x", "redis://h:6379/-1", "redis://user@h:6379",
          "redis://[::1:6379", "redis://h o:6379", "redis://:@h:6379", "redis://h:63a9"}) {
        EXPECT_THROW(acme::parse_redis_url(bad), acme::Error) << bad;
    }
}

TEST(RedisUrl, TlsOnlyWhereHiredisHasIt) {
    if (acme::redis_tls_supported()) {
        EXPECT_TRUE(acme::parse_redis_url("rediss://h:6379").tls);
    } else {
        try {
            acme::parse_redis_url("rediss://h:6379");
            FAIL() << "rediss:// accepted without TLS support";
        } catch (const acme::Error& e) {
            EXPECT_NE(std::string(e.what()).find("not supported"), std::string::npos);
        }
    }
}

TEST(RedisUrl, Prefixes) {
    EXPECT_TRUE(acme::valid_redis_prefix("acme"));
    EXPECT_TRUE(acme::valid_redis_prefix("site-a:acme"));
    EXPECT_FALSE(acme::valid_redis_prefix(""));
    EXPECT_FALSE(acme::valid_redis_prefix("a b"));
    EXPECT_FALSE(acme::valid_redis_prefix("a*"));
    EXPECT_FALSE(acme::valid_redis_prefix("{a}"));
}

TEST(RedisKeys, Layout) {
    RedisTarget t;
    t.prefix = "p";
    std::string space = acme::redis_keys::issuer_space(t, "le");
    EXPECT_EQ(space, "p:le");
    EXPECT_EQ(acme::redis_keys::item(space, "example.test-1a2b3c4d.crt"),
              "p:le:example.test-1a2b3c4d.crt");
    EXPECT_EQ(acme::redis_keys::lease(space, "example.test-1a2b3c4d"),
              "p:le:lease:example.test-1a2b3c4d");
    EXPECT_EQ(acme::redis_keys::events(t), "p:events");
    EXPECT_EQ(acme::redis_keys::glob_prefix("a*b?[c]"), "a\\*b\\?\\[c\\]*");
}

TEST(RedisConnection, UnreachableIsStorageUnavailable) {
    RedisTarget t;
    t.host = "127.0.0.1";
    t.port = 1;  // nothing listens there
    RedisConnection c(t, std::chrono::milliseconds(500));
    EXPECT_THROW(c.command({"PING"}), acme::StorageUnavailable);
}

int free_port() {
    std::mt19937 rng(std::random_device{}());
    for (int i = 0; i < 200; ++i) {
        int port = 30000 + static_cast<int>(rng() % 20000);
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        if (ok) return port;
    }
    return 0;
}

// A redis-server of its own per test, without persistence.
class RedisServer : public ::testing::Test {
protected:
    void SetUp() override {
        if (::access("/usr/bin/redis-server", X_OK) != 0) {
            GTEST_SKIP() << "redis-server is not installed";
        }
        target_.host = "127.0.0.1";
        target_.port = free_port();
        target_.prefix = "unit";
        start();
    }
    void TearDown() override { stop(); }

    void start() {
        std::string port = std::to_string(target_.port);
        pid_ = ::fork();
        if (pid_ == 0) {
            // Its start-up banner would clutter the test output.
            int null = ::open("/dev/null", O_WRONLY);
            ::dup2(null, 1);
            ::dup2(null, 2);
            ::execl("/usr/bin/redis-server", "redis-server", "--port", port.c_str(), "--bind",
                    "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir_.path().c_str(),
                    "--loglevel", "warning", static_cast<char*>(nullptr));
            ::_exit(127);
        }
        RedisConnection probe(target_, std::chrono::milliseconds(200));
        for (int i = 0; i < 100; ++i) {
            try {
                if (probe.command({"PING"}).str == "PONG") return;
            } catch (const acme::Error&) {
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        FAIL() << "redis-server did not start";
    }
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

    std::shared_ptr<RedisConnection> connect() {
        return std::make_shared<RedisConnection>(target_, std::chrono::milliseconds(1000));
    }

    RedisTarget target_;
    TempDir dir_;
    pid_t pid_ = -1;
};

TEST_F(RedisServer, ItemsLiveUnderPrefixAndIssuer) {
    auto redis = connect();
    acme::RedisStorage s(redis, "pebble", "node-a");
    EXPECT_FALSE(s.load("a.test-00000000.json"));
    s.store("a.test-00000000.json", "{}", Access::shared);
    EXPECT_EQ(*s.load("a.test-00000000.json"), "{}");
    EXPECT_EQ(redis->command({"GET", "unit:pebble:a.test-00000000.json"}).str, "{}");
    // Another issuer does not see it.
    acme::RedisStorage other(redis, "other", "node-a");
    EXPECT_FALSE(other.load("a.test-00000000.json"));
    s.store_all({{"a.test-00000000.key", "KEY", Access::secret},
                 {"a.test-00000000.crt", "CRT", Access::shared}});
    auto items = s.list("a.test-");
    std::sort(items.begin(), items.end());
    EXPECT_EQ(items, (std::vector<std::string>{"a.test-00000000.crt", "a.test-00000000.json",
                                               "a.test-00000000.key"}));
    s.remove("a.test-00000000.json");
    EXPECT_FALSE(s.load("a.test-00000000.json"));
    EXPECT_TRUE(s.stat("a.test-00000000.crt"));
    EXPECT_FALSE(s.stat("a.test-00000000.json"));
}

TEST_F(RedisServer, StoringAChainIsAnnounced) {
    auto redis = connect();
    RedisConnection sub(target_, std::chrono::milliseconds(1000));
    sub.send({"SUBSCRIBE", "unit:events"});
    RedisReply m;
    ASSERT_TRUE(sub.receive(std::chrono::milliseconds(2000), &m));  // the subscribe reply
    acme::RedisStorage s(redis, "pebble", "node-a");
    s.store_all({{"b.test-11111111.key", "KEY", Access::secret},
                 {"b.test-11111111.crt", "CRT", Access::shared}});
    ASSERT_TRUE(sub.receive(std::chrono::milliseconds(2000), &m));
    ASSERT_EQ(m.elements.size(), 3u);
    EXPECT_EQ(m.elements[2].str, "cert node-a pebble b.test-11111111");
}

TEST_F(RedisServer, LeasesKeepOthersOut) {
    auto redis = connect();
    acme::RedisStorage a(redis, "pebble", "node-a");
    acme::RedisStorage b(connect(), "pebble", "node-b");
    auto lease = a.try_lease("c.test-22222222", std::chrono::seconds(600));
    ASSERT_TRUE(lease);
    EXPECT_FALSE(b.try_lease("c.test-22222222", std::chrono::seconds(600)));
    // A time to live of its own, short enough for a dead node to let go soon.
    long long ttl = redis->command({"PTTL", "unit:pebble:lease:c.test-22222222"}).integer;
    EXPECT_GT(ttl, 0);
    EXPECT_LE(ttl, acme::redis_lease_ttl.count());
    EXPECT_TRUE(lease->renew());
    lease.reset();  // released
    EXPECT_TRUE(redis->command({"GET", "unit:pebble:lease:c.test-22222222"}).nil());
    EXPECT_TRUE(b.try_lease("c.test-22222222", std::chrono::seconds(600)));
}

TEST_F(RedisServer, ALostLeaseIsNotRenewedNorReleased) {
    auto redis = connect();
    acme::RedisStorage a(redis, "pebble", "node-a");
    auto lease = a.try_lease("d.test-33333333", std::chrono::seconds(600));
    ASSERT_TRUE(lease);
    // It expired and another node took it.
    redis->command({"SET", "unit:pebble:lease:d.test-33333333", "node-b/token"});
    EXPECT_FALSE(lease->renew());
    lease.reset();
    EXPECT_EQ(redis->command({"GET", "unit:pebble:lease:d.test-33333333"}).str, "node-b/token");
}

TEST_F(RedisServer, LeaseScriptsCompareTheToken) {
    auto redis = connect();
    redis->command({"SET", "k", "mine", "PX", "1000"});
    EXPECT_EQ(redis->command({"EVAL", acme::redis_scripts::renew_lease, "1", "k", "other", "60000"})
                  .integer,
              0);
    EXPECT_LE(redis->command({"PTTL", "k"}).integer, 1000);
    EXPECT_EQ(redis->command({"EVAL", acme::redis_scripts::renew_lease, "1", "k", "mine", "60000"})
                  .integer,
              1);
    EXPECT_GT(redis->command({"PTTL", "k"}).integer, 1000);
    EXPECT_EQ(
        redis->command({"EVAL", acme::redis_scripts::release_lease, "1", "k", "other"}).integer, 0);
    EXPECT_EQ(
        redis->command({"EVAL", acme::redis_scripts::release_lease, "1", "k", "mine"}).integer, 1);
    EXPECT_TRUE(redis->command({"GET", "k"}).nil());
}

TEST_F(RedisServer, LayeredStorageCachesServesWhenDownAndReseeds) {
    TempDir cache;
    auto redis = connect();
    acme::LayeredStorage s(std::make_unique<acme::RedisStorage>(redis, "pebble", "node-a"),
                           std::make_unique<acme::FileStorage>(cache.path()));
    s.store_all({{"e.test-44444444.key", "KEY", Access::secret},
                 {"e.test-44444444.crt", "CRT", Access::shared},
                 {"e.test-44444444.order.json", "ORDER", Access::secret}});
    EXPECT_EQ(acme::read_file(cache.path() + "/e.test-44444444.crt"), "CRT");

    // Another node renewed it: a read takes the new chain into the cache.
    redis->command({"SET", "unit:pebble:e.test-44444444.crt", "CRT2"});
    EXPECT_EQ(*s.load("e.test-44444444.crt"), "CRT2");
    EXPECT_EQ(acme::read_file(cache.path() + "/e.test-44444444.crt"), "CRT2");

    // Redis down: reads come from the cache, writes wait.
    stop();
    EXPECT_EQ(*s.load("e.test-44444444.crt"), "CRT2");
    EXPECT_EQ(*s.load_secret("e.test-44444444.key"), "KEY");
    EXPECT_FALSE(s.truth_reachable());
    EXPECT_THROW(s.store("e.test-44444444.json", "{}", Access::shared), acme::StorageUnavailable);
    EXPECT_FALSE(acme::read_file_if_exists(cache.path() + "/e.test-44444444.json"));

    // Back without its data: the cache puts the chain back, not the order.
    start();
    EXPECT_EQ(*s.load("e.test-44444444.crt"), "CRT2");
    EXPECT_TRUE(s.truth_reachable());
    EXPECT_EQ(redis->command({"GET", "unit:pebble:e.test-44444444.crt"}).str, "CRT2");
    EXPECT_FALSE(s.load_secret("e.test-44444444.order.json"));
    EXPECT_TRUE(redis->command({"GET", "unit:pebble:e.test-44444444.order.json"}).nil());
}

TEST_F(RedisServer, RefreshCertificateCopiesChainAndKey) {
    TempDir cache;
    auto redis = connect();
    acme::LayeredStorage s(std::make_unique<acme::RedisStorage>(redis, "pebble", "node-b"),
                           std::make_unique<acme::FileStorage>(cache.path()));
    EXPECT_FALSE(s.refresh_certificate("f.test-55555555"));
    redis->command({"SET", "unit:pebble:f.test-55555555.crt", "CRT"});
    redis->command({"SET", "unit:pebble:f.test-55555555.key", "KEY"});
    std::uint64_t before = s.change_sequence();
    EXPECT_FALSE(s.take_changed("f.test-55555555"));
    EXPECT_TRUE(s.refresh_certificate("f.test-55555555"));
    // The scheduler learns of it once.
    EXPECT_NE(s.change_sequence(), before);
    EXPECT_TRUE(s.take_changed("f.test-55555555"));
    EXPECT_FALSE(s.take_changed("f.test-55555555"));
    EXPECT_EQ(acme::read_file(cache.path() + "/f.test-55555555.crt"), "CRT");
    EXPECT_EQ(acme::read_file(cache.path() + "/f.test-55555555.key"), "KEY");
    EXPECT_FALSE(s.refresh_certificate("f.test-55555555"));  // nothing changed
}

}  // namespace
