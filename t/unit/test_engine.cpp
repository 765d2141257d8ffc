// Unit tests of the engine's start-up decisions, failure bookkeeping, lock
// waiting and stop(), without a CA: the directory URL points at a closed
// port, so every order fails at once (the Pebble tests cover issuance).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "acme/crypto.h"
#include "acme/engine.h"
#include "acme/error.h"
#include "acme/file_storage.h"
#include "acme/json.h"
#include "engine_doubles.h"
#include "temp_dir.h"

namespace {

using namespace doubles;

using acme::CertificateConfig;
using acme::Engine;
using acme::EngineConfig;
using acme::FileStorage;
using acme::Identifier;
using acme::KeyType;
using acme::PrivateKey;
using Clock = std::chrono::steady_clock;

double stop_seconds(Engine& engine) {
    auto t = Clock::now();
    engine.stop();
    return std::chrono::duration<double>(Clock::now() - t).count();
}

TEST(Engine, CurrentCertificateIsScheduledForRenewal) {
    TempDir tmp;
    std::vector<Identifier> ids{dns("example.test"), dns("www.example.test")};
    // Reordered SANs are the same set.
    store_certificate(tmp.path(), ids, {dns("www.example.test"), dns("example.test")}, 90);
    RecordingLogger log;
    NullBoard board;
    Engine engine(make_config(tmp.path(), ids), board, log);
    engine.start();
    EXPECT_TRUE(engine.running());
    auto line = log.wait_for("acme: certificate \"example.test\" is valid until ");
    ASSERT_TRUE(line) << log.all();
    EXPECT_EQ(line->first, acme::LogLevel::notice);
    EXPECT_NE(line->second.find(" UTC, renewal at "), std::string::npos) << line->second;
    // Nothing is due: no order is attempted.
    EXPECT_FALSE(log.wait_for("failed", std::chrono::milliseconds(300))) << log.all();
    EXPECT_LT(stop_seconds(engine), 1.0);
    EXPECT_FALSE(engine.running());
    EXPECT_FALSE(
        FileStorage(tmp.path()).load(acme::certificate_basename(ids, KeyType::ecdsa256) + ".json"));
}

struct Case {
    const char* reason;
    std::vector<Identifier> names;
    int days;
    bool wrong_key;
};

TEST(Engine, ReasonsToOrder) {
    std::vector<Identifier> ids{dns("example.test")};
    std::vector<Case> cases{
        {"(missing)", {}, 0, false},
        {"(names changed)", {dns("example.test"), dns("extra.example.test")}, 90, false},
        {"(expired)", {dns("example.test")}, -1, false},
        {"(key mismatch)", {dns("example.test")}, 90, true},
    };
    for (const Case& c : cases) {
        TempDir tmp;
        if (!c.names.empty()) {
            PrivateKey other = PrivateKey::generate(KeyType::ecdsa256);
            store_certificate(tmp.path(), ids, c.names, c.days, c.wrong_key ? &other : nullptr);
        }
        RecordingLogger log;
        NullBoard board;
        Engine engine(make_config(tmp.path(), ids), board, log);
        engine.start();
        EXPECT_TRUE(log.wait_for(std::string("acme: certificate \"example.test\" needs to be "
                                             "ordered ") +
                                 c.reason))
            << log.all();
        engine.stop();
    }
}

// Damaged store files: a chain cut short is not current (the glue would
// serve the leaf alone), whatever cannot be parsed is named, and a record
// that cannot be read is reported, not silently dropped.
TEST(Engine, DamagedStoreFiles) {
    std::vector<Identifier> ids{dns("example.test")};
    std::string base = acme::certificate_basename(ids, KeyType::ecdsa256);
    struct Damage {
        const char* file;
        std::function<std::string(const std::string&)> damage;
        std::string expected;  // after tmp.path() + "/" + base
    };
    std::vector<Damage> cases{
        // Cut in the middle of the second certificate.
        {".crt", [](const std::string& chain) { return chain.substr(0, chain.size() - 200); },
         ".crt\": malformed PEM certificate chain: certificate 2 has no END line)"},
        {".crt", [](const std::string&) { return std::string(); },
         ".crt\": no certificate in PEM data)"},
        {".key", [](const std::string& key) { return key.substr(0, key.size() / 2); },
         ".key\": cannot read private key"},
    };
    for (const Damage& d : cases) {
        TempDir tmp;
        store_certificate(tmp.path(), ids, ids, 90);
        FileStorage store(tmp.path());
        // A chain of two, as a CA sends.
        std::string leaf = *store.load(base + ".crt");
        PrivateKey ca = PrivateKey::generate(KeyType::ecdsa256);
        store.store(base + ".crt", leaf + acme::make_self_signed(ca, {}, 90), acme::Access::shared);
        std::string file = base + d.file;
        store.store(file, d.damage(*store.load(file)), acme::Access::secret);
        RecordingLogger log;
        NullBoard board;
        Engine engine(make_config(tmp.path(), ids), board, log);
        engine.start();
        auto line = log.wait_for("acme: certificate \"example.test\" needs to be ordered (");
        engine.stop();
        ASSERT_TRUE(line) << log.all();
        EXPECT_NE(line->second.find("(unreadable: \"" + tmp.path() + "/" + base + d.expected),
                  std::string::npos)
            << line->second;
    }

    TempDir tmp;
    store_certificate(tmp.path(), ids, ids, 90);
    FileStorage(tmp.path())
        .store(base + ".json", "{\"failures\": 2, garbage", acme::Access::shared);
    RecordingLogger log;
    NullBoard board;
    Engine engine(make_config(tmp.path(), ids), board, log);
    engine.start();
    auto line =
        log.wait_for("acme: ignoring the record \"" + tmp.path() + "/" + base + ".json\": ");
    ASSERT_TRUE(line) << log.all();
    EXPECT_EQ(line->first, acme::LogLevel::warn);
    // The certificate itself is fine.
    EXPECT_TRUE(log.wait_for("acme: certificate \"example.test\" is valid until ")) << log.all();
    engine.stop();
}

TEST(Engine, FailureIsLoggedAndRecorded) {
    TempDir tmp;
    std::vector<Identifier> ids{dns("example.test")};
    RecordingLogger log;
    NullBoard board;
    Engine engine(make_config(tmp.path(), ids), board, log);
    std::time_t before = std::time(nullptr);
    engine.start();
    auto line = log.wait_for("acme: certificate \"example.test\" from \"test\" failed: ");
    ASSERT_TRUE(line) << log.all();
    EXPECT_EQ(line->first, acme::LogLevel::error);
    EXPECT_NE(line->second.find(", next attempt at "), std::string::npos) << line->second;
    EXPECT_LT(stop_seconds(engine), 1.0);

    FileStorage store(tmp.path());
    auto text = store.load(acme::certificate_basename(ids, KeyType::ecdsa256) + ".json");
    ASSERT_TRUE(text);
    acme::Json meta = acme::Json::parse(*text);
    EXPECT_EQ(meta.get_int("failures"), std::optional<std::int64_t>(1));
    EXPECT_EQ(meta.get_string("issuer"), std::optional<std::string>("test"));
    EXPECT_EQ(meta.get_string("key_type"), std::optional<std::string>("ecdsa:256"));
    ASSERT_EQ(meta.get("names").items().size(), 1u);
    EXPECT_EQ(meta.get("names").items()[0].as_string(), "example.test");
    EXPECT_TRUE(meta.get("not_after").is_null());
    auto next = meta.get_int("next_attempt");
    ASSERT_TRUE(next);
    EXPECT_GE(*next, before + 60);  // backoff_delay(1)
    EXPECT_TRUE(meta.get("last_error").is_object());
    EXPECT_FALSE(meta.get("last_error").get_string("detail").value_or("").empty());

    // The account key was created, private.
    struct stat st;
    ASSERT_EQ(::stat(store.path("account.key").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);

    // A restart after the backoff keeps counting failures (a restart
    // before it waits: BackoffFromTheStoreIsHonoured).
    std::string base = acme::certificate_basename(ids, KeyType::ecdsa256);
    std::string record = *store.load(base + ".json");
    std::string stored_next = "\"next_attempt\": " + std::to_string(*next);
    ASSERT_NE(record.find(stored_next), std::string::npos) << record;
    record.replace(record.find(stored_next), stored_next.size(),
                   "\"next_attempt\": " + std::to_string(std::time(nullptr) - 1));
    store.store(base + ".json", record, acme::Access::shared);
    RecordingLogger log2;
    Engine again(make_config(tmp.path(), ids), board, log2);
    again.start();
    ASSERT_TRUE(log2.wait_for("failed: ")) << log2.all();
    again.stop();
    meta = acme::Json::parse(
        *store.load(acme::certificate_basename(ids, KeyType::ecdsa256) + ".json"));
    EXPECT_EQ(meta.get_int("failures"), std::optional<std::int64_t>(2));
}

// An engine for example.test started on a store whose record holds
// `record` (the JSON members inside the braces).
class StoredRecord : public ::testing::Test {
protected:
    // The line that says why the certificate needs an order, if any.
    std::optional<std::pair<acme::LogLevel, std::string>> start_with(const std::string& record) {
        FileStorage store(tmp.path());
        store.store(acme::certificate_basename(ids, KeyType::ecdsa256) + ".json",
                    "{" + record + "}\n", acme::Access::shared);
        engine = std::make_unique<Engine>(make_config(tmp.path(), ids), board, log);
        engine->start();
        return log.wait_for("needs to be ordered (missing)");
    }
    // No attempt was made: it would fail at once against the closed port.
    bool attempted(std::chrono::milliseconds within = std::chrono::milliseconds(500)) {
        return log.wait_for("failed:", within).has_value();
    }
    static std::string at(std::time_t t) { return std::to_string(t); }

    TempDir tmp;
    std::vector<Identifier> ids{dns("example.test")};
    RecordingLogger log;
    NullBoard board;
    std::unique_ptr<Engine> engine;
};

TEST_F(StoredRecord, RetryAfterIsHonoured) {
    auto line =
        start_with(R"("failures": 1, "retry_after_until": )" + at(std::time(nullptr) + 100));
    ASSERT_TRUE(line) << log.all();
    EXPECT_NE(line->second.find(", not before "), std::string::npos) << line->second;
    EXPECT_NE(line->second.find("(Retry-After)"), std::string::npos) << line->second;
    EXPECT_FALSE(attempted()) << log.all();
}

// A reload or restart must not retry a failing certificate before its
// backoff is over: each attempt may count against the CA's limits.
TEST_F(StoredRecord, BackoffIsHonoured) {
    auto line = start_with(R"("failures": 3, "next_attempt": )" + at(std::time(nullptr) + 300));
    ASSERT_TRUE(line) << log.all();
    EXPECT_NE(line->second.find("(after 3 failed attempts)"), std::string::npos) << line->second;
    EXPECT_FALSE(attempted()) << log.all();
}

// A next attempt beyond the longest backoff (a clock that jumped back, a
// damaged record) is not believed: at most 8 hours.
TEST_F(StoredRecord, FarBackoffIsBounded) {
    std::time_t now = std::time(nullptr);
    auto line = start_with(R"("failures": 1, "next_attempt": )" + at(now + 400 * 86400));
    ASSERT_TRUE(line) << log.all();
    std::tm tm{};
    std::size_t from = line->second.find("not before ");
    ASSERT_NE(from, std::string::npos) << line->second;
    ASSERT_TRUE(strptime(line->second.c_str() + from + 11, "%Y-%m-%d %H:%M:%S", &tm));
    std::time_t shown = timegm(&tm);
    EXPECT_LE(shown, now + 8 * 3600 + 5) << line->second;
    EXPECT_GE(shown, now + 8 * 3600 - 5) << line->second;
}

// Without failures a stored next attempt is stale: order at once.
TEST_F(StoredRecord, NextAttemptWithoutFailuresIsIgnored) {
    auto line = start_with(R"("failures": 0, "next_attempt": )" + at(std::time(nullptr) + 300));
    ASSERT_TRUE(line) << log.all();
    EXPECT_EQ(line->second.find("not before"), std::string::npos) << line->second;
    EXPECT_TRUE(attempted(std::chrono::seconds(10))) << log.all();
}

// A state directory that became read-only: everything reads, but no
// lease can be taken (the lock file cannot be opened for writing).
class ReadOnlyStorage : public acme::Storage {
public:
    explicit ReadOnlyStorage(const std::string& dir) : files_(dir) {}
    std::string describe() const override { return files_.describe(); }
    std::string locate(std::string_view key) const override { return files_.locate(key); }
    std::optional<std::string> load(std::string_view key) override { return files_.load(key); }
    std::optional<std::string> load_secret(std::string_view key) override {
        return files_.load_secret(key);
    }
    void store(std::string_view key, std::string_view, acme::Access) override {
        throw acme::Error("open() \"" + files_.path(key) + "\" failed: Read-only file system");
    }
    void remove(std::string_view) override {}
    std::vector<std::string> list(std::string_view prefix) override { return files_.list(prefix); }
    std::optional<acme::ItemStat> stat(std::string_view key) override { return files_.stat(key); }
    bool try_lock() override { return files_.try_lock(); }
    std::unique_ptr<acme::Lease> try_lease(std::string_view, std::chrono::seconds) override {
        throw acme::Error("open() \"" + files_.path(".lock") + "\" failed: Read-only file system");
    }

private:
    FileStorage files_;
};

// A job that fails before its order (the lease cannot be taken) waits as
// long as a failed order would, and the wait grows (it was one minute, for
// ever).
TEST(Engine, FailedLeaseFollowsTheBackoff) {
    TempDir tmp;
    std::vector<Identifier> ids{dns("example.test")};
    FileStorage store(tmp.path());
    std::time_t now = std::time(nullptr);
    store.store(acme::certificate_basename(ids, KeyType::ecdsa256) + ".json",
                R"({"failures": 2, "next_attempt": )" + std::to_string(now - 1) + "}\n",
                acme::Access::shared);
    store.store("account.key", PrivateKey::generate(KeyType::ecdsa256).to_pem(),
                acme::Access::secret);
    RecordingLogger log;
    NullBoard board;
    Engine engine(make_config(tmp.path(), ids), board, log,
                  [](const std::string& path) { return std::make_unique<ReadOnlyStorage>(path); });
    engine.start();
    auto line = log.wait_for("acme: certificate \"example.test\": open() ");
    ASSERT_TRUE(line) << log.all();
    engine.stop();
    EXPECT_EQ(line->first, acme::LogLevel::error);
    EXPECT_NE(line->second.find("/.lock\" failed: Read-only file system, next attempt at "),
              std::string::npos)
        << line->second;
    std::tm tm{};
    ASSERT_TRUE(strptime(line->second.c_str() + line->second.find("next attempt at ") + 16,
                         "%Y-%m-%d %H:%M:%S", &tm));
    std::time_t next = timegm(&tm);
    // The third failure: 5 minutes, plus up to 20 %.
    EXPECT_GE(next, now + 300) << line->second;
    EXPECT_LE(next, now + 360 + 5) << line->second;
}

// A storage whose leases take a while, counting how many are asked for at
// once: each job for a missing certificate takes one before its order.
class SlowLeaseStorage : public acme::Storage {
public:
    explicit SlowLeaseStorage(const std::string& dir) : files_(dir) {}
    std::string describe() const override { return files_.describe(); }
    std::string locate(std::string_view key) const override { return files_.locate(key); }
    std::optional<std::string> load(std::string_view key) override { return files_.load(key); }
    std::optional<std::string> load_secret(std::string_view key) override {
        return files_.load_secret(key);
    }
    void store(std::string_view key, std::string_view value, acme::Access access) override {
        files_.store(key, value, access);
    }
    void remove(std::string_view key) override { files_.remove(key); }
    std::vector<std::string> list(std::string_view prefix) override { return files_.list(prefix); }
    std::optional<acme::ItemStat> stat(std::string_view key) override { return files_.stat(key); }
    bool try_lock() override { return files_.try_lock(); }
    std::unique_ptr<acme::Lease> try_lease(std::string_view id, std::chrono::seconds ttl) override {
        // The account key is made under a lease too: not what is counted.
        if (id == "account.key") return files_.try_lease(id, ttl);
        int now = ++running;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        --running;
        ++leases;
        throw acme::Error("no lease in this test");
    }

    static std::atomic<int> running, most, leases;

private:
    FileStorage files_;
};
std::atomic<int> SlowLeaseStorage::running{0}, SlowLeaseStorage::most{0},
    SlowLeaseStorage::leases{0};

// max_concurrent_orders bounds the jobs of one issuer at once.
TEST(Engine, IssuerConcurrencyIsBounded) {
    TempDir tmp;
    EngineConfig config = make_config(tmp.path(), {dns("c0.test")});
    for (int i = 1; i < 12; ++i) {
        CertificateConfig cert = config.certificates.front();
        cert.identifiers = {dns("c" + std::to_string(i) + ".test")};
        config.certificates.push_back(cert);
    }
    config.issuers.front().max_concurrent_orders = 3;
    RecordingLogger log;
    NullBoard board;
    Engine engine(config, board, log,
                  [](const std::string& path) { return std::make_unique<SlowLeaseStorage>(path); });
    engine.start();
    auto deadline = Clock::now() + std::chrono::seconds(20);
    while (SlowLeaseStorage::leases < 12 && Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    engine.stop();
    EXPECT_EQ(SlowLeaseStorage::leases.load(), 12) << log.all();
    EXPECT_EQ(SlowLeaseStorage::most.load(), 3);
}

// An engine that fails as a whole (here: its storage cannot be made) is
// started again with a growing delay, and then manages its certificates;
// before, it stayed down until the next reload.
TEST(Engine, FailedEngineStartsAgain) {
    TempDir tmp;
    std::vector<Identifier> ids{dns("example.test")};
    EngineConfig config = make_config(tmp.path(), ids);
    config.restart_delay = std::chrono::milliseconds(100);
    std::atomic<int> calls{0};
    RecordingLogger log;
    NullBoard board;
    Engine engine(config, board, log,
                  [&](const std::string& path) -> std::unique_ptr<acme::Storage> {
                      if (++calls <= 2) throw acme::Error("storage is not there yet");
                      return std::make_unique<FileStorage>(path);
                  });
    engine.start();
    auto first =
        log.wait_for("acme: engine failed: storage is not there yet, starting it again in 0.1 s");
    ASSERT_TRUE(first) << log.all();
    EXPECT_EQ(first->first, acme::LogLevel::crit);
    EXPECT_TRUE(
        log.wait_for("acme: engine failed: storage is not there yet, starting it again in 0.2 s"))
        << log.all();
    EXPECT_TRUE(log.wait_for("acme: certificate \"example.test\" needs to be ordered (missing)"))
        << log.all();
    EXPECT_TRUE(engine.running());
    EXPECT_EQ(calls.load(), 3);
    EXPECT_LT(stop_seconds(engine), 1.0);
}

// stop() during the restart delay ends the engine at once.
TEST(Engine, StopDuringRestartDelay) {
    TempDir tmp;
    EngineConfig config = make_config(tmp.path(), {dns("example.test")});
    config.restart_delay = std::chrono::seconds(60);
    RecordingLogger log;
    NullBoard board;
    Engine engine(config, board, log, [](const std::string&) -> std::unique_ptr<acme::Storage> {
        throw acme::Error("no storage");
    });
    engine.start();
    ASSERT_TRUE(log.wait_for("starting it again in 60.0 s")) << log.all();
    EXPECT_LT(stop_seconds(engine), 1.0);
    EXPECT_FALSE(engine.running());
}

TEST(Engine, CompletedSavedOrderIsRemoved) {
    TempDir tmp;
    std::vector<Identifier> ids{dns("example.test")};
    store_certificate(tmp.path(), ids, ids, 90);
    FileStorage store(tmp.path());
    std::string base = acme::certificate_basename(ids, KeyType::ecdsa256);
    // The order that produced the stored key: a crash came before its removal.
    acme::Json order = acme::Json::object();
    order.set("url", "https://ca.test/order/1");
    order.set("key", *store.load(base + ".key"));
    store.store(base + ".order.json", order.dump(), acme::Access::secret);
    // Another certificate's order, still in progress, is left alone.
    std::string other = acme::certificate_basename({dns("other.test")}, KeyType::ecdsa256);
    store.store(other + ".order.json", R"({"url": "https://ca.test/order/2"})",
                acme::Access::secret);

    RecordingLogger log;
    NullBoard board;
    Engine engine(make_config(tmp.path(), ids), board, log);
    engine.start();
    ASSERT_TRUE(log.wait_for("is valid until")) << log.all();
    engine.stop();
    EXPECT_FALSE(store.load(base + ".order.json"));
    EXPECT_TRUE(store.load(other + ".order.json"));
}

TEST(Engine, UnreadableAccountKeyIsReported) {
    TempDir tmp;
    EngineConfig config = make_config(tmp.path(), {dns("example.test")});
    config.issuers[0].account_key = tmp.path() + "/no-such-key.pem";
    RecordingLogger log;
    NullBoard board;
    Engine engine(config, board, log);
    engine.start();
    auto line = log.wait_for("no-such-key.pem");
    ASSERT_TRUE(line) << log.all();
    EXPECT_EQ(line->first, acme::LogLevel::error);
    engine.stop();
}

TEST(Engine, WaitsForTheStoreLockAndStopsPromptly) {
    TempDir tmp;
    auto holder = std::make_unique<FileStorage>(tmp.path());
    ASSERT_TRUE(holder->try_lock());
    RecordingLogger log;
    NullBoard board;
    Engine engine(make_config(tmp.path(), {dns("example.test")}), board, log);
    engine.start();
    auto line = log.wait_for("is locked by another nginx process, waiting");
    ASSERT_TRUE(line) << log.all();
    EXPECT_EQ(line->second,
              "acme: state \"" + tmp.path() + "\" is locked by another nginx process, waiting");
    EXPECT_FALSE(log.wait_for("needs to be ordered", std::chrono::milliseconds(300)));
    EXPECT_LT(stop_seconds(engine), 1.0);

    // Once the other holder goes away, the engine carries on.
    RecordingLogger log2;
    Engine second(make_config(tmp.path(), {dns("example.test")}), board, log2);
    second.start();
    ASSERT_TRUE(log2.wait_for("waiting"));
    holder.reset();
    EXPECT_TRUE(log2.wait_for("needs to be ordered (missing)", std::chrono::seconds(5)))
        << log2.all();
    second.stop();
}

// Answers published by a helper that was killed, as the zone keeps them.
class LeftoverBoard : public NullBoard {
public:
    std::size_t withdraw_all_challenges() override {
        ++calls;
        return calls == 1 ? 2 : 0;
    }
    std::atomic<int> calls{0};
};

TEST(Engine, WithdrawsLeftoverAnswersOnceNothingRuns) {
    TempDir tmp;
    std::vector<Identifier> ids{dns("example.test")};
    store_certificate(tmp.path(), ids, ids, 90);
    auto holder = std::make_unique<FileStorage>(tmp.path());
    ASSERT_TRUE(holder->try_lock());
    RecordingLogger log;
    LeftoverBoard board;
    Engine engine(make_config(tmp.path(), ids), board, log);
    engine.start();
    ASSERT_TRUE(log.wait_for("waiting")) << log.all();
    // The holder may be a helper still in the middle of an order.
    EXPECT_EQ(board.calls.load(), 0);
    holder.reset();
    auto line = log.wait_for("left by a previous helper process", std::chrono::seconds(10));
    ASSERT_TRUE(line) << log.all();
    EXPECT_EQ(line->second,
              "acme: withdrew 2 challenge answer(s) left by a previous helper process");
    EXPECT_EQ(line->first, acme::LogLevel::notice);
    engine.stop();
    // Once: later idle moments leave the zone alone.
    EXPECT_EQ(board.calls.load(), 1);
}

TEST(Engine, StopWithoutStartAndTwice) {
    TempDir tmp;
    RecordingLogger log;
    NullBoard board;
    Engine engine(make_config(tmp.path(), {dns("example.test")}), board, log);
    EXPECT_FALSE(engine.running());
    engine.stop();
    engine.start();
    engine.stop();
    engine.stop();
    EXPECT_FALSE(engine.running());
}

}  // namespace
