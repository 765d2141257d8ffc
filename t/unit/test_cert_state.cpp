// Unit tests of how an issuance is recorded (cert_state.h): the renewal time
// of a new certificate, also when this host's clock is ahead of the CA's.
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <string>
#include <vector>

#include "acme/accounts.h"
#include "acme/cert_state.h"
#include "acme/file_storage.h"
#include "acme/log_sink.h"
#include "temp_dir.h"

namespace acme {
namespace {

class RecordingSink : public EventSink {
public:
    void on_event(const Event& event) override { events.push_back(event); }
    std::vector<Event> events;
};

class NullBoard : public ChallengeBoard {
public:
    bool publish_http01(std::string_view, std::string_view) override { return true; }
    void withdraw_http01(std::string_view) override {}
    void certificate_updated(std::string_view) override { ++updated; }
    int updated = 0;
};

class RecordIssued : public ::testing::Test {
protected:
    RecordIssued() : storage(tmp.path()), ctx{config, board, sink, stop, random} {
        issuer_config.name = "test";
        issuer.config = &issuer_config;
        issuer.storage = &storage;
        cert_config.issuer = "test";
        cert_config.identifiers = {Identifier{Identifier::Type::dns, "example.test"}};
        cert.config = &cert_config;
        cert.issuer = &issuer;
        cert.basename = cert_config.basename();
        cert.name = "example.test";
    }

    // A certificate the CA issued at `issued` (its clock) for `lifetime` s,
    // with the renewal picked the way the order runner does.
    void issued(std::time_t issued, std::time_t lifetime) {
        CertificateInfo info;
        info.not_before = issued;
        info.not_after = issued + lifetime;
        info.serial_hex = "01";
        cert.current = info;
        cert.ratio_pick = pick_time(renewal_window(info.not_before, info.not_after, {}), 0);
    }

    const events::Issued& last_issued() {
        for (auto it = sink.events.rbegin(); it != sink.events.rend(); ++it) {
            if (auto* e = std::get_if<events::Issued>(&*it)) return *e;
        }
        throw std::runtime_error("no Issued event");
    }

    TempDir tmp;
    FileStorage storage;
    EngineConfig config;
    NullBoard board;
    RecordingSink sink;
    StopSignal stop;
    RandomSource random;
    EngineContext ctx;
    IssuerConfig issuer_config;
    IssuerState issuer;
    CertificateConfig cert_config;
    CertState cert;
};

TEST_F(RecordIssued, RenewalByTheCertificatesDates) {
    std::time_t now = ctx.now();
    issued(now - 2, 90 * 86400);
    std::time_t pick = cert.ratio_pick;
    record_issued(ctx, cert, std::chrono::seconds(1));
    EXPECT_EQ(cert.renewal_at, pick);
    EXPECT_EQ(last_issued().clock_ahead, 0);
    EXPECT_EQ(board.updated, 1);
}

// This host's clock is ahead of the CA's by more than the renewal margin
// (a jump, a wrong clock): by its dates the new certificate is due at once,
// and every renewal after it too. It was renewed every 5 s, for ever.
TEST_F(RecordIssued, ClockAheadOfTheCa) {
    std::time_t now = ctx.now();
    std::time_t lifetime = 120;
    issued(now - 100, lifetime);  // the CA's clock is 100 s behind
    std::time_t share = cert.ratio_pick - cert.current->not_before;
    ASSERT_LE(cert.ratio_pick, now);
    record_issued(ctx, cert, std::chrono::seconds(1));
    // The same share of the lifetime, counted from now.
    EXPECT_GE(cert.renewal_at, now + share);
    EXPECT_LE(cert.renewal_at, ctx.now() + share);
    const events::Issued& e = last_issued();
    EXPECT_GE(e.clock_ahead, 100);
    EXPECT_EQ(e.renewal_at, cert.renewal_at);
    // The log says so, as a warning.
    struct Lines : Logger {
        void log(LogLevel level, std::string_view message) override {
            this->level = level;
            text = message;
        }
        LogLevel level = LogLevel::debug;
        std::string text;
    } lines;
    LogSink(lines).on_event(e);
    EXPECT_EQ(lines.level, LogLevel::warn);
    EXPECT_NE(lines.text.find("is due for renewal at once by this host's clock"), std::string::npos)
        << lines.text;
}

}  // namespace
}  // namespace acme
