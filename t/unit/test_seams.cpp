// Unit tests of the engine's seams: the storage contract for both backends
// (FileStorage and the MemoryStorage double; FileStorage's own details are in
// test_file_storage.cpp), the solvers and how an issuer's are chosen
// (solver.h), the fan-out of events (events.h) and the log lines they become
// (log_sink.h).
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "acme/crypto.h"
#include "acme/engine_config.h"
#include "acme/events.h"
#include "acme/file_storage.h"
#include "acme/log.h"
#include "acme/log_sink.h"
#include "acme/shared_state.h"
#include "acme/solver.h"
#include "acme/tls_alpn.h"
#include "doubles.h"
#include "temp_dir.h"

namespace {

using acme::Challenge;
using acme::Identifier;
using acme::LogLevel;
using acme_test::MemoryStorage;
using acme_test::RecordingBoard;
using acme_test::RecordingSink;
using acme_test::RecordingSolver;
namespace events = acme::events;

Identifier dns(const std::string& v) { return Identifier{Identifier::Type::dns, v}; }
Identifier ip(const std::string& v) { return Identifier{Identifier::Type::ip, v}; }

Challenge challenge(const std::string& type, const std::string& token) {
    return Challenge{type, "https://ca.test/chall/" + token, token, "pending", std::nullopt, {},
                     false};
}

acme::IssuerConfig issuer_with(std::vector<std::string> challenges) {
    acme::IssuerConfig ic;
    ic.name = "test";
    ic.challenges = std::move(challenges);
    return ic;
}

// ---------------------------------------------------------------- storage

// Two views of one store (two engines), for each backend: FileStorage and
// the MemoryStorage double the order runner tests rely on.
struct FileBackend {
    TempDir dir;
    acme::FileStorage a{dir.path()};
    acme::FileStorage b{dir.path()};
};
struct MemoryBackend {
    MemoryStorage a;
    MemoryStorage b{a.backend()};
};

template <class Backend>
class StorageContract : public ::testing::Test {
protected:
    Backend backend;
    acme::Storage& a = backend.a;
    acme::Storage& b = backend.b;
};

using Backends = ::testing::Types<FileBackend, MemoryBackend>;
TYPED_TEST_SUITE(StorageContract, Backends);

TYPED_TEST(StorageContract, StoreLoadRemove) {
    acme::Storage& a = this->a;
    acme::Storage& b = this->b;
    EXPECT_FALSE(a.load("x.crt"));
    a.store("x.crt", "one", acme::Access::shared);
    EXPECT_EQ(b.load("x.crt"), std::optional<std::string>("one"));
    b.store("x.crt", "two", acme::Access::secret);
    EXPECT_EQ(a.load("x.crt"), std::optional<std::string>("two"));
    a.store("empty", "", acme::Access::shared);
    EXPECT_EQ(a.load("empty"), std::optional<std::string>(""));
    a.remove("x.crt");
    EXPECT_FALSE(b.load("x.crt"));
    EXPECT_NO_THROW(a.remove("x.crt"));
}

TYPED_TEST(StorageContract, ListAndStat) {
    acme::Storage& a = this->a;
    acme::Storage& b = this->b;
    for (const char* k : {"c-1.crt", "c-1.key", "c-2.crt", "account.key"}) {
        a.store(k, "v", acme::Access::shared);
    }
    std::vector<std::string> listed = b.list("c-1");
    EXPECT_EQ(std::set<std::string>(listed.begin(), listed.end()),
              (std::set<std::string>{"c-1.crt", "c-1.key"}));
    EXPECT_EQ(b.list("").size(), 4u);
    EXPECT_FALSE(a.stat("missing"));
    auto first = a.stat("c-1.crt");
    ASSERT_TRUE(first);
    b.store("c-1.crt", "v", acme::Access::shared);
    auto second = a.stat("c-1.crt");
    ASSERT_TRUE(second);
    EXPECT_NE(first->version, second->version);
    EXPECT_EQ(a.stat("c-1.crt")->version, second->version);
}

TYPED_TEST(StorageContract, LeasesAreExclusiveBetweenEngines) {
    acme::Storage& a = this->a;
    acme::Storage& b = this->b;
    auto lease = a.try_lease("c-1", std::chrono::seconds(600));
    ASSERT_NE(lease, nullptr);
    EXPECT_TRUE(lease->renew());
    EXPECT_EQ(b.try_lease("c-1", std::chrono::seconds(600)), nullptr);
    auto other = b.try_lease("c-2", std::chrono::seconds(600));
    EXPECT_NE(other, nullptr);
    lease.reset();
    EXPECT_NE(b.try_lease("c-1", std::chrono::seconds(600)), nullptr);
}

TYPED_TEST(StorageContract, StoreLockIsExclusiveBetweenEngines) {
    auto& backend = this->backend;
    EXPECT_TRUE(backend.a.try_lock());
    EXPECT_TRUE(backend.a.try_lock());
    EXPECT_FALSE(backend.b.try_lock());
}

TEST(MemoryStorage, LockEndsWithTheStorage) {
    auto first = std::make_unique<MemoryStorage>();
    MemoryStorage second(first->backend());
    EXPECT_TRUE(first->try_lock());
    EXPECT_FALSE(second.try_lock());
    first.reset();
    EXPECT_TRUE(second.try_lock());
}

TEST(MemoryStorage, UnavailableRefusesEveryCall) {
    MemoryStorage a;
    MemoryStorage b(a.backend());
    a.store("k", "v", acme::Access::secret);
    auto lease = a.try_lease("c-1", std::chrono::seconds(60));
    ASSERT_NE(lease, nullptr);
    b.set_unavailable(true);
    EXPECT_THROW(a.load("k"), acme::StorageUnavailable);
    EXPECT_THROW(a.store("k", "w", acme::Access::shared), acme::StorageUnavailable);
    EXPECT_THROW(a.store_all({{"k", "w", acme::Access::shared}}), acme::StorageUnavailable);
    EXPECT_THROW(a.remove("k"), acme::StorageUnavailable);
    EXPECT_THROW(a.list(""), acme::StorageUnavailable);
    EXPECT_THROW(a.stat("k"), acme::StorageUnavailable);
    EXPECT_THROW(a.try_lock(), acme::StorageUnavailable);
    EXPECT_THROW(a.try_lease("c-2", std::chrono::seconds(60)), acme::StorageUnavailable);
    EXPECT_THROW(lease->renew(), acme::StorageUnavailable);
    EXPECT_EQ(a.refused(), 9u);
    b.set_unavailable(false);
    EXPECT_EQ(a.load("k"), std::optional<std::string>("v"));
    EXPECT_EQ(a.access("k"), acme::Access::secret);
    EXPECT_TRUE(lease->renew());
}

TEST(MemoryStorage, BriefOutage) {
    MemoryStorage a;
    a.store("k", "v", acme::Access::shared);
    a.fail_next(2);
    EXPECT_THROW(a.load("k"), acme::StorageUnavailable);
    EXPECT_THROW(a.stat("k"), acme::StorageUnavailable);
    EXPECT_EQ(a.load("k"), std::optional<std::string>("v"));
    EXPECT_EQ(a.refused(), 2u);
}

TEST(MemoryStorage, LeaseExpiresUnlessRenewed) {
    MemoryStorage a;
    MemoryStorage b(a.backend());
    auto lease = a.try_lease("c-1", std::chrono::seconds(60));
    ASSERT_NE(lease, nullptr);
    a.advance(std::chrono::seconds(50));
    EXPECT_TRUE(lease->renew());  // good for another 60 s
    a.advance(std::chrono::seconds(50));
    EXPECT_EQ(b.try_lease("c-1", std::chrono::seconds(60)), nullptr);
    a.advance(std::chrono::seconds(11));
    // Expired: another engine takes it, and the first one has lost it.
    auto taken = b.try_lease("c-1", std::chrono::seconds(60));
    ASSERT_NE(taken, nullptr);
    EXPECT_FALSE(lease->renew());
    // Letting go of a lost lease leaves the new holder's alone.
    lease.reset();
    EXPECT_EQ(a.try_lease("c-1", std::chrono::seconds(60)), nullptr);
    EXPECT_TRUE(taken->renew());
}

// ---------------------------------------------------------------- solvers

TEST(Solvers, FindByType) {
    acme::Solvers solvers;
    auto http = std::make_unique<RecordingSolver>();
    auto tls = std::make_unique<RecordingSolver>();
    acme::Solver* http_ptr = http.get();
    acme::Solver* tls_ptr = tls.get();
    solvers.add("http-01", std::move(http));
    solvers.add("tls-alpn-01", std::move(tls));
    EXPECT_EQ(solvers.find("http-01"), http_ptr);
    EXPECT_EQ(solvers.find("tls-alpn-01"), tls_ptr);
    EXPECT_EQ(solvers.find("dns-01"), nullptr);
    EXPECT_EQ(solvers.find("http"), nullptr);
    EXPECT_EQ(solvers.find(""), nullptr);
    EXPECT_EQ(acme::Solvers().find("http-01"), nullptr);
}

TEST(Solvers, MadeForTheConfiguredChallengesOnly) {
    RecordingBoard board;
    struct Case {
        std::vector<std::string> configured;
        bool http, tls;
    };
    for (const Case& c : std::vector<Case>{{{"http-01"}, true, false},
                                           {{"tls-alpn-01"}, false, true},
                                           {{"tls-alpn-01", "http-01"}, true, true},
                                           {{"dns-01"}, false, false},
                                           {{}, false, false}}) {
        acme::Solvers s = acme::make_solvers(issuer_with(c.configured), board);
        std::string what = "configured:";
        for (const std::string& t : c.configured) what += " " + t;
        EXPECT_EQ(s.find("http-01") != nullptr, c.http) << what;
        EXPECT_EQ(s.find("tls-alpn-01") != nullptr, c.tls) << what;
        EXPECT_EQ(s.find("dns-01"), nullptr) << what;
    }
}

TEST(Solvers, MadeSolversAnswerTheirOwnType) {
    RecordingBoard board;
    acme::Solvers s = acme::make_solvers(issuer_with({"http-01", "tls-alpn-01"}), board);
    ASSERT_NE(s.find("http-01"), nullptr);
    ASSERT_NE(s.find("tls-alpn-01"), nullptr);
    s.find("http-01")->present(dns("example.test"), challenge("http-01", "tok-h"), "tok-h.tp");
    EXPECT_EQ(board.http01(), (std::map<std::string, std::string>{{"tok-h", "tok-h.tp"}}));
    EXPECT_TRUE(board.tls_alpn01().empty());
    s.find("tls-alpn-01")
        ->present(dns("example.test"), challenge("tls-alpn-01", "tok-t"), "tok-t.tp");
    EXPECT_EQ(board.http01().size(), 1u);
    ASSERT_EQ(board.tls_alpn01().size(), 1u);
}

TEST(Http01Solver, PublishesAndWithdrawsTheKeyAuthorization) {
    RecordingBoard board;
    std::unique_ptr<acme::Solver> solver = acme::make_http01_solver(board);
    Challenge ch = challenge("http-01", "tok-1");
    solver->present(dns("example.test"), ch, "tok-1.thumbprint");
    solver->present(dns("www.example.test"), challenge("http-01", "tok-2"), "tok-2.thumbprint");
    EXPECT_EQ(board.http01(), (std::map<std::string, std::string>{{"tok-1", "tok-1.thumbprint"},
                                                                  {"tok-2", "tok-2.thumbprint"}}));
    solver->cleanup(dns("example.test"), ch, "tok-1.thumbprint");
    EXPECT_EQ(board.http01_withdrawn(), std::vector<std::string>{"tok-1"});
    EXPECT_EQ(board.http01(), (std::map<std::string, std::string>{{"tok-2", "tok-2.thumbprint"}}));
    EXPECT_TRUE(board.tls_alpn01().empty());
}

TEST(Http01Solver, FullBoardIsAnError) {
    RecordingBoard board;
    board.full = true;
    std::unique_ptr<acme::Solver> solver = acme::make_http01_solver(board);
    try {
        solver->present(dns("example.test"), challenge("http-01", "tok-1"), "tok-1.tp");
        FAIL() << "present() on a full board succeeded";
    } catch (const acme::Error& e) {
        EXPECT_NE(std::string(e.what()).find("shared memory is full"), std::string::npos)
            << e.what();
    }
}

TEST(TlsAlpn01Solver, PublishesTheDigestUnderTheValidatorsServerName) {
    RecordingBoard board;
    std::unique_ptr<acme::Solver> solver = acme::make_tls_alpn01_solver(board);
    solver->present(dns("example.test"), challenge("tls-alpn-01", "tok-1"), "tok-1.tp");
    solver->present(ip("192.0.2.1"), challenge("tls-alpn-01", "tok-2"), "tok-2.tp");
    auto answers = board.tls_alpn01();
    ASSERT_EQ(answers.size(), 2u);
    EXPECT_EQ(answers[0].server_name, "example.test");
    EXPECT_EQ(answers[0].identifier, "example.test");
    EXPECT_EQ(answers[0].digest, acme::sha256("tok-1.tp"));
    EXPECT_EQ(answers[0].digest.size(), 32u);
    EXPECT_EQ(answers[1].server_name, "1.2.0.192.in-addr.arpa");
    EXPECT_EQ(answers[1].server_name, acme::tls_alpn_server_name(ip("192.0.2.1")));
    EXPECT_EQ(answers[1].identifier, "192.0.2.1");
    EXPECT_EQ(answers[1].digest, acme::sha256("tok-2.tp"));
    EXPECT_TRUE(board.http01().empty());
}

TEST(TlsAlpn01Solver, WithdrawsOnlyItsOwnDigest) {
    RecordingBoard board;
    std::unique_ptr<acme::Solver> solver = acme::make_tls_alpn01_solver(board);
    Challenge older = challenge("tls-alpn-01", "tok-old");
    solver->present(dns("example.test"), older, "tok-old.tp");
    // Another order published a newer answer for the same name meanwhile.
    solver->present(dns("example.test"), challenge("tls-alpn-01", "tok-new"), "tok-new.tp");
    solver->cleanup(dns("example.test"), older, "tok-old.tp");

    auto withdrawn = board.tls_alpn01_withdrawn();
    ASSERT_EQ(withdrawn.size(), 1u);
    EXPECT_EQ(withdrawn[0].server_name, "example.test");
    EXPECT_EQ(withdrawn[0].digest, acme::sha256("tok-old.tp"));
    auto left = board.tls_alpn01();
    ASSERT_EQ(left.size(), 1u);
    EXPECT_EQ(left[0].digest, acme::sha256("tok-new.tp"));
}

TEST(TlsAlpn01Solver, FullBoardIsAnError) {
    RecordingBoard board;
    board.full = true;
    std::unique_ptr<acme::Solver> solver = acme::make_tls_alpn01_solver(board);
    EXPECT_THROW(
        solver->present(dns("example.test"), challenge("tls-alpn-01", "tok-1"), "tok-1.tp"),
        acme::Error);
}

// The solvers against the real shared zone, as workers will read it.
TEST(Solvers, AnswersReachTheSharedZone) {
    std::size_t size = acme::SharedState::min_size();
    void* mem = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(mem, MAP_FAILED);
    {
        acme::SharedState zone(mem, size);
        zone.format();
        acme::Solvers s = acme::make_solvers(issuer_with({"http-01", "tls-alpn-01"}), zone);
        Challenge h = challenge("http-01", "tok-h");
        Challenge t = challenge("tls-alpn-01", "tok-t");
        s.find("http-01")->present(dns("example.test"), h, "tok-h.tp");
        s.find("tls-alpn-01")->present(ip("192.0.2.1"), t, "tok-t.tp");
        EXPECT_EQ(zone.find_http01("tok-h"), std::optional<std::string>("tok-h.tp"));
        auto answer = zone.find_tls_alpn01("1.2.0.192.in-addr.arpa");
        ASSERT_TRUE(answer);
        EXPECT_EQ(answer->identifier, "192.0.2.1");
        EXPECT_EQ(answer->digest, acme::sha256("tok-t.tp"));

        s.find("http-01")->cleanup(dns("example.test"), h, "tok-h.tp");
        s.find("tls-alpn-01")->cleanup(ip("192.0.2.1"), t, "tok-t.tp");
        EXPECT_FALSE(zone.find_http01("tok-h"));
        EXPECT_FALSE(zone.find_tls_alpn01("1.2.0.192.in-addr.arpa"));
    }
    ::munmap(mem, size);
}

// ---------------------------------------------------------------- events

class ThrowingSink : public acme::EventSink {
public:
    void on_event(const acme::Event&) override {
        ++calls;
        throw std::runtime_error("sink failed");
    }
    int calls = 0;
};

acme::CertRef ref() { return {"example.test-1a2b3c4d", "example.test"}; }

TEST(EventSinks, EveryEventReachesEverySinkInOrder) {
    acme::EventSinks sinks;
    RecordingSink a, b;
    sinks.add(a);
    sinks.add(b);
    sinks.on_event(events::Ordering{ref(), "test", ""});
    sinks.on_event(events::Issued{ref(), "test", 10, 5, 1.0});
    for (RecordingSink* s : {&a, &b}) {
        auto got = s->events();
        ASSERT_EQ(got.size(), 2u);
        EXPECT_TRUE(std::holds_alternative<events::Ordering>(got[0]));
        ASSERT_TRUE(std::holds_alternative<events::Issued>(got[1]));
        EXPECT_EQ(std::get<events::Issued>(got[1]).not_after, 10);
        EXPECT_EQ(std::get<events::Issued>(got[1]).cert.id, "example.test-1a2b3c4d");
    }
}

TEST(EventSinks, ThrowingSinkDoesNotStopTheNext) {
    acme::EventSinks sinks;
    ThrowingSink bad;
    RecordingSink good;
    sinks.add(bad);
    sinks.add(good);
    EXPECT_NO_THROW(sinks.on_event(events::Failed{ref(), "test", "", "boom", 0}));
    EXPECT_NO_THROW(sinks.on_event(events::Expiring{ref(), 0, true}));
    EXPECT_EQ(bad.calls, 2);
    EXPECT_EQ(good.events().size(), 2u);
    ASSERT_TRUE(good.first<events::Failed>());
    EXPECT_EQ(good.first<events::Failed>()->detail, "boom");
    EXPECT_EQ(good.count<events::Expiring>(), 1u);
}

TEST(EventSinks, OneEventAtATime) {
    // A sink that notices when it is entered by two threads at once.
    class Overlap : public acme::EventSink {
    public:
        void on_event(const acme::Event&) override {
            if (++inside > 1) overlapped = true;
            std::this_thread::sleep_for(std::chrono::microseconds(200));
            --inside;
            ++seen;
        }
        std::atomic<int> inside{0}, seen{0};
        std::atomic<bool> overlapped{false};
    };
    acme::EventSinks sinks;
    Overlap sink;
    sinks.add(sink);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 25; ++i) sinks.on_event(events::ThreadFailed{"x"});
        });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(sink.seen.load(), 100);
    EXPECT_FALSE(sink.overlapped.load());
}

TEST(RecordingSink, WaitsForAnEventFromAnotherThread) {
    RecordingSink sink;
    EXPECT_FALSE(sink.wait_for<events::Issued>(std::chrono::milliseconds(10)));
    std::thread t([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        sink.on_event(events::Ordering{ref(), "test", ""});
        sink.on_event(events::Issued{ref(), "test", 42, 0, 0});
    });
    auto issued = sink.wait_for<events::Issued>();
    t.join();
    ASSERT_TRUE(issued);
    EXPECT_EQ(issued->not_after, 42);
    EXPECT_EQ(sink.position<events::Issued>(), std::optional<std::size_t>(1));
    EXPECT_EQ(sink.count<events::Ordering>(), 1u);
    EXPECT_EQ(sink.count<events::Failed>(), 0u);
}

// ---------------------------------------------------------------- log lines

class LinesLogger : public acme::Logger {
public:
    void log(LogLevel level, std::string_view message) override {
        lines.push_back({level, std::string(message)});
    }
    std::vector<std::pair<LogLevel, std::string>> lines;
};

// The one line an event gives.
std::pair<LogLevel, std::string> line_of(const acme::Event& event) {
    LinesLogger logger;
    acme::LogSink sink(logger);
    sink.on_event(event);
    if (logger.lines.size() != 1) {
        ADD_FAILURE() << logger.lines.size() << " lines for event " << event.index();
        return {LogLevel::debug, ""};
    }
    return logger.lines.front();
}

constexpr std::time_t dec31 = 1798675200;         // 2026-12-31 00:00:00 UTC
constexpr std::time_t nov30 = 1796042096;         // 2026-11-30 12:34:56 UTC
constexpr std::time_t dec01 = 1796115600;         // 2026-12-01 09:00:00 UTC
constexpr std::time_t dec05 = 1796428800;         // 2026-12-05 00:00:00 UTC
constexpr std::time_t dec10 = 1796860800;         // 2026-12-10 00:00:00 UTC
constexpr std::time_t dec07 = 1796623200;         // 2026-12-07 06:00:00 UTC
constexpr std::time_t leap_day_end = 1709251199;  // 2024-02-29 23:59:59 UTC

TEST(FormatTime, IsUtc) {
    EXPECT_EQ(acme::format_time(0), "1970-01-01 00:00:00 UTC");
    EXPECT_EQ(acme::format_time(dec31), "2026-12-31 00:00:00 UTC");
    EXPECT_EQ(acme::format_time(nov30), "2026-11-30 12:34:56 UTC");
    EXPECT_EQ(acme::format_time(leap_day_end), "2024-02-29 23:59:59 UTC");
    // Whatever the local time zone.
    const char* old = std::getenv("TZ");
    std::string saved = old ? old : "";
    ::setenv("TZ", "XYZ-9", 1);
    ::tzset();
    std::string shown = acme::format_time(dec31);
    if (old) {
        ::setenv("TZ", saved.c_str(), 1);
    } else {
        ::unsetenv("TZ");
    }
    ::tzset();
    EXPECT_EQ(shown, "2026-12-31 00:00:00 UTC");
}

TEST(LogSink, Issued) {
    auto [level, text] = line_of(events::Issued{ref(), "test", dec31, nov30, 1.5});
    EXPECT_EQ(level, LogLevel::notice);
    EXPECT_EQ(text,
              "acme: certificate \"example.test\" issued by \"test\", valid until 2026-12-31 "
              "00:00:00 UTC, renewal at 2026-11-30 12:34:56 UTC (order took 1.5 s)");
    // One decimal.
    EXPECT_NE(line_of(events::Issued{ref(), "test", dec31, nov30, 12.345})
                  .second.find("(order took 12.3 s)"),
              std::string::npos);
}

TEST(LogSink, Failed) {
    auto [level, text] =
        line_of(events::Failed{ref(), "test", "urn:ietf:params:acme:error:unauthorized",
                               "authorization for \"example.test\" failed", dec01});
    EXPECT_EQ(level, LogLevel::error);
    EXPECT_EQ(text,
              "acme: certificate \"example.test\" from \"test\" failed: authorization for "
              "\"example.test\" failed, next attempt at 2026-12-01 09:00:00 UTC");
}

TEST(LogSink, RenewalWindow) {
    const std::string window =
        "acme: certificate \"example.test\": the CA suggests renewal between 2026-12-05 00:00:00 "
        "UTC and 2026-12-10 00:00:00 UTC";
    const std::string renewal = ", renewal at 2026-12-07 06:00:00 UTC";

    auto plain = line_of(events::RenewalWindow{ref(), dec05, dec10, "", dec07, false});
    EXPECT_EQ(plain.first, LogLevel::info);
    EXPECT_EQ(plain.second, window + renewal);

    auto explained =
        line_of(events::RenewalWindow{ref(), dec05, dec10, "https://ca.test/why", dec07, false});
    EXPECT_EQ(explained.first, LogLevel::notice);
    EXPECT_EQ(explained.second, window + " (see https://ca.test/why)" + renewal);

    auto earlier = line_of(events::RenewalWindow{ref(), dec05, dec10, "", dec07, true});
    EXPECT_EQ(earlier.first, LogLevel::notice);
    EXPECT_EQ(earlier.second, window + renewal);
}

TEST(LogSink, Expiring) {
    auto expired = line_of(events::Expiring{ref(), dec31, true});
    EXPECT_EQ(expired.first, LogLevel::warn);
    EXPECT_EQ(expired.second,
              "acme: certificate \"example.test\" expired at 2026-12-31 00:00:00 UTC and could "
              "not be renewed yet");
    auto expiring = line_of(events::Expiring{ref(), dec31, false});
    EXPECT_EQ(expiring.first, LogLevel::warn);
    EXPECT_EQ(expiring.second,
              "acme: certificate \"example.test\" expires at 2026-12-31 00:00:00 UTC and could "
              "not be renewed yet");
}

TEST(LogSink, StartUpAndOrderLines) {
    EXPECT_EQ(line_of(events::CertificateLoaded{ref(), dec31, nov30}),
              std::make_pair(LogLevel::notice,
                             std::string("acme: certificate \"example.test\" is valid until "
                                         "2026-12-31 00:00:00 UTC, renewal at 2026-11-30 "
                                         "12:34:56 UTC")));
    EXPECT_EQ(line_of(events::OrderNeeded{ref(), "missing", 0}),
              std::make_pair(LogLevel::notice,
                             std::string("acme: certificate \"example.test\" needs to be ordered "
                                         "(missing)")));
    EXPECT_EQ(line_of(events::OrderNeeded{ref(), "expired", dec01}).second,
              "acme: certificate \"example.test\" needs to be ordered (expired), not before "
              "2026-12-01 09:00:00 UTC (Retry-After)");
    EXPECT_EQ(line_of(events::Ordering{ref(), "test", ""}),
              std::make_pair(LogLevel::info,
                             std::string("acme: ordering certificate \"example.test\" from "
                                         "\"test\"")));
    EXPECT_EQ(line_of(events::Ordering{ref(), "test", "aki.serial"}).second,
              "acme: ordering certificate \"example.test\" from \"test\" to replace aki.serial");
    EXPECT_EQ(line_of(events::AuthorizationValid{ref(), "www.example.test", "http-01"}),
              std::make_pair(LogLevel::info,
                             std::string("acme: authorization for \"www.example.test\" is valid "
                                         "(http-01)")));
    EXPECT_EQ(line_of(events::JobFailed{ref(), "no HTTP client", dec01}),
              std::make_pair(LogLevel::error,
                             std::string("acme: certificate \"example.test\": no HTTP client, "
                                         "next attempt at 2026-12-01 09:00:00 UTC")));
}

TEST(LogSink, LevelsThatDependOnTheEvent) {
    EXPECT_EQ(line_of(events::StorageFailed{"rename() failed", false}),
              std::make_pair(LogLevel::error, std::string("acme: rename() failed")));
    EXPECT_EQ(line_of(events::StorageFailed{"unlink() failed", true}),
              std::make_pair(LogLevel::warn, std::string("acme: unlink() failed")));
    auto first = line_of(events::RenewalInfoUnavailable{ref(), "HTTP 500", dec01, true});
    EXPECT_EQ(first.first, LogLevel::warn);
    EXPECT_EQ(first.second,
              "acme: renewal information for certificate \"example.test\" is not available: "
              "HTTP 500, next check at 2026-12-01 09:00:00 UTC");
    EXPECT_EQ(line_of(events::RenewalInfoUnavailable{ref(), "HTTP 500", dec01, false}).first,
              LogLevel::info);
    EXPECT_EQ(line_of(events::EngineFailed{"out of memory"}),
              std::make_pair(LogLevel::crit, std::string("acme: engine failed: out of memory")));
    EXPECT_EQ(line_of(events::AccountLost{"test", "accountDoesNotExist: gone"}),
              std::make_pair(LogLevel::notice,
                             std::string("acme: issuer \"test\": accountDoesNotExist: gone, "
                                         "registering the account again")));
}

// Every event gives exactly one line, an "acme: " one, but the state
// snapshots that only the status sink reads.
template <std::size_t... I>
void every_event(std::index_sequence<I...>) {
    (
        [] {
            acme::Event event(std::in_place_index<I>);
            if (std::holds_alternative<events::CertificateState>(event)) return;
            auto [level, text] = line_of(event);
            EXPECT_EQ(text.rfind("acme: ", 0), 0u) << "event " << I << ": " << text;
            EXPECT_LE(level, LogLevel::info) << "event " << I;
        }(),
        ...);
}

TEST(LogSink, EveryEventHasALine) {
    every_event(std::make_index_sequence<std::variant_size_v<acme::Event>>());
}

}  // namespace
