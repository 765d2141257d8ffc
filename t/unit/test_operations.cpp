// Unit tests of the operations parts of the engine: the status area and its
// sink, the status renderings, renew-now and the order hook through the
// engine, and the event command.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <vector>

#include "acme/command_sink.h"
#include "acme/json.h"
#include "acme/status_board.h"
#include "acme/status_render.h"
#include "acme/status_sink.h"
#include "engine_doubles.h"
#include "temp_dir.h"

namespace {

using namespace doubles;
using acme::CertificateStatus;
using acme::Engine;
using acme::StatusBoard;

struct Area {
    explicit Area(std::size_t certs, std::size_t issuers = 1)
        : bytes(StatusBoard::size_for(certs, issuers)), board(bytes.data(), bytes.size()) {
        board.format(certs, issuers);
    }
    std::vector<char> bytes;
    StatusBoard board;
};

acme::events::CertificateState state(const std::string& id) {
    acme::events::CertificateState e;
    e.cert = {id, "example.test"};
    e.issuer = "test";
    e.key_type = "ecdsa:256";
    e.has_cert = true;
    e.not_before = 1000;
    e.not_after = 2000;
    e.serial = "abc";
    e.sha256 = std::string(64, 'f');
    e.renew_at = 1800;
    e.renew_reason = "lifetime";
    return e;
}

TEST(StatusBoard, EveryCertificateOfAThousandIsFoundAndRenewedAlone) {
    Area a(1000);
    std::uint64_t epoch = a.board.epoch();
    for (int i = 0; i < 1000; i++) {
        std::string id = "site" + std::to_string(i) + ".test-0123abcd";
        ASSERT_TRUE(a.board.update_certificate(epoch, id, [i](CertificateStatus& s) {
            s.not_after = 1000 + i;
        })) << id;
    }
    for (int i = 0; i < 1000; i++) {
        auto c = a.board.certificate("site" + std::to_string(i) + ".test-0123abcd");
        ASSERT_TRUE(c) << i;
        EXPECT_EQ(c->not_after, 1000 + i);
    }
    EXPECT_FALSE(a.board.certificate("site1000.test-0123abcd"));
    EXPECT_TRUE(a.board.request_renewal("site500.test-0123abcd", 77));
    EXPECT_EQ(a.board.take_renew_requests(), std::vector<std::string>{"site500.test-0123abcd"});
}

TEST(StatusBoard, RecordsAndEpochs) {
    Area a(2);
    EXPECT_TRUE(a.board.formatted());
    std::uint64_t epoch = a.board.epoch();
    EXPECT_TRUE(a.board.update_certificate(epoch, "one", [](CertificateStatus& s) {
        s.not_after = 42;
        s.error_detail = std::string(5000, 'x');  // cut to the slot
    }));
    EXPECT_TRUE(a.board.update_certificate(epoch, "two", [](CertificateStatus&) {}));
    // Slots for the configured count and a half more (hashed: a third stays
    // free), then no room.
    EXPECT_TRUE(a.board.update_certificate(epoch, "three", [](CertificateStatus&) {}));
    EXPECT_TRUE(a.board.update_certificate(epoch, "four", [](CertificateStatus&) {}));
    EXPECT_FALSE(a.board.update_certificate(epoch, "five", [](CertificateStatus&) {}))
        << "no room beyond the slots";
    auto one = a.board.certificate("one");
    ASSERT_TRUE(one);
    EXPECT_EQ(one->id, "one");
    EXPECT_EQ(one->not_after, 42);
    EXPECT_EQ(one->error_detail.size(), StatusBoard::max_error_detail);
    EXPECT_FALSE(a.board.certificate("five"));
    for (const char* id : {"two", "three", "four"}) EXPECT_TRUE(a.board.certificate(id)) << id;

    // A new configuration: the old engine's writes stop, records are gone,
    // issuer counters stay.
    a.board.update_issuer(epoch, "test", [](acme::IssuerStatus& s) {
        s.orders_issued = 3;
        s.account = "https://ca/acct/1";
    });
    a.board.renew_epoch({"test"});
    EXPECT_FALSE(a.board.certificate("one"));
    EXPECT_FALSE(a.board.update_certificate(epoch, "one", [](CertificateStatus&) {}));
    auto is = a.board.issuer("test");
    ASSERT_TRUE(is);
    EXPECT_EQ(is->orders_issued, 3u);
    EXPECT_EQ(is->account, "");
}

TEST(StatusBoard, RenewRequestsSurviveUpdates) {
    Area a(2);
    std::uint64_t seq = a.board.request_sequence();
    EXPECT_TRUE(a.board.request_renewal("one", 100));
    EXPECT_NE(a.board.request_sequence(), seq);
    // The engine's sink writes the record meanwhile: the request stays.
    a.board.update_certificate(a.board.epoch(), "one",
                               [](CertificateStatus& s) { s.attempts = 1; });
    EXPECT_EQ(a.board.certificate("one")->renew_requested, 100);
    EXPECT_EQ(a.board.take_renew_requests(), std::vector<std::string>{"one"});
    EXPECT_TRUE(a.board.take_renew_requests().empty());
    EXPECT_EQ(a.board.certificate("one")->renew_requested, 0);
}

TEST(StatusSink, FollowsTheEvents) {
    Area a(1);
    std::time_t now = 1500;
    acme::StatusSink sink(a.board, [&] { return now; });
    sink.on_event(state("id1"));
    sink.on_event(acme::events::Ordering{{"id1", "example.test"}, "test", ""});
    auto s = a.board.certificate("id1");
    ASSERT_TRUE(s);
    EXPECT_TRUE(s->renewing);
    EXPECT_EQ(s->last_attempt, 1500);
    EXPECT_EQ(s->serial, "abc");
    sink.on_event(
        acme::events::AuthorizationValid{{"id1", "example.test"}, "example.test", "http-01"});
    sink.on_event(acme::events::Failed{{"id1", "example.test"}, "test", "urn:x", "bad", 1600});
    EXPECT_FALSE(a.board.certificate("id1")->renewing);
    auto is = a.board.issuer("test");
    ASSERT_TRUE(is);
    EXPECT_EQ(is->orders_failed, 1u);
    EXPECT_EQ(is->challenges[static_cast<int>(acme::ChallengeCounter::http01)], 1u);
    sink.on_event(acme::events::AccountRegistered{"test", "https://ca/acct/7"});
    EXPECT_EQ(a.board.issuer("test")->account, "https://ca/acct/7");
    EXPECT_EQ(a.board.issuer("test")->state, "ready");
}

TEST(StatusSink, ListsTheDnsPersistRecordsTheOperatorMustAdd) {
    Area a(1);
    acme::StatusSink sink(a.board);
    std::uint64_t epoch = a.board.epoch();
    sink.on_event(acme::events::SolverNote{"test", "a record left behind", true, {}, {}, {}});
    EXPECT_FALSE(a.board.issuer("test")) << "a note without a record leaves no trace";
    const std::string plain = "ca.test; accounturi=https://ca/acct/7";
    sink.on_event(acme::events::SolverNote{"test", "needs ...", true,
                                           "_validation-persist.example.test", "TXT",
                                           plain + "; policy=wildcard"});
    // The apex of that wildcard: the wildcard form serves it, so it stays.
    sink.on_event(acme::events::SolverNote{"test", "needs ...", true,
                                           "_validation-persist.example.test", "TXT", plain});
    sink.on_event(acme::events::SolverNote{"test", "needs ...", true,
                                           "_validation-persist.other.test", "TXT", plain});
    auto records = a.board.issuer("test")->dns_persist;
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(records[0], (acme::DnsRecord{"_validation-persist.example.test", "TXT",
                                           plain + "; policy=wildcard"}));
    EXPECT_EQ(records[1], (acme::DnsRecord{"_validation-persist.other.test", "TXT", plain}));

    std::vector<acme::IssuerView> issuers{{"test", "https://ca/dir", a.board.issuer("test")}};
    std::string json;
    acme::render_status_json("0.1.0", 1500, {}, issuers, [&](std::string_view p) { json += p; });
    acme::Json listed = acme::Json::parse(json).get("issuers").items()[0].get("dns_persist");
    ASSERT_EQ(listed.items().size(), 2u) << json;
    EXPECT_EQ(listed.items()[1].get_string("name"),
              std::optional<std::string>("_validation-persist.other.test"));
    EXPECT_EQ(listed.items()[1].get_string("type"), std::optional<std::string>("TXT"));
    EXPECT_EQ(listed.items()[1].get_string("value"), std::optional<std::string>(plain));

    // Too many for the slot: whole records only, never a cut one.
    a.board.update_issuer(epoch, "test", [&](acme::IssuerStatus& s) {
        s.dns_persist.assign(100, {"_validation-persist.example.test", "TXT", plain});
    });
    records = a.board.issuer("test")->dns_persist;
    EXPECT_LT(records.size(), 100u);
    EXPECT_GT(records.size(), 10u);
    EXPECT_EQ(records.back().value, plain);
    a.board.renew_epoch({"test"});
    EXPECT_TRUE(a.board.issuer("test")->dns_persist.empty()) << "a new configuration forgets them";
}

TEST(StatusRender, StatesJsonAndPrometheus) {
    acme::CertificateView v{"id1", {"example.test", "www.example.test"}, "test", "ecdsa:256", {}};
    EXPECT_EQ(acme::certificate_state(v, 1500), "pending");
    CertificateStatus s;
    s.has_cert = true;
    s.not_before = 1000;
    s.not_after = 2000;
    s.serial = "abc";
    v.status = s;
    EXPECT_EQ(acme::certificate_state(v, 1500), "valid");
    EXPECT_EQ(acme::certificate_state(v, 2000), "expired");
    v.status->attempts = 2;
    EXPECT_EQ(acme::certificate_state(v, 1500), "failed");
    v.status->renewing = true;
    EXPECT_EQ(acme::certificate_state(v, 1500), "renewing");
    v.status->renewing = false;
    v.status->has_error = true;
    v.status->error_detail = "say \"no\"\n";

    std::vector<acme::IssuerView> issuers{{"test", "https://ca/dir", {}}};
    std::string json;
    acme::render_status_json("0.1.0", 1500, {v}, issuers, [&](std::string_view p) { json += p; });
    acme::Json parsed = acme::Json::parse(json);
    auto certs = parsed.get("certificates").items();
    ASSERT_EQ(certs.size(), 1u);
    EXPECT_EQ(certs[0].get_string("state"), std::optional<std::string>("failed"));
    EXPECT_EQ(certs[0].get("error").get_string("detail"),
              std::optional<std::string>("say \"no\"\n"));
    EXPECT_EQ(certs[0].get("keys").items()[0].get_int("not_after"),
              std::optional<std::int64_t>(2000));

    std::string prom;
    acme::render_status_prometheus(1500, {v}, issuers, [&](std::string_view p) { prom += p; });
    EXPECT_NE(prom.find("nginx_acme_certificate_not_after_timestamp_seconds{certificate=\"id1\","
                        "name=\"example.test\",issuer=\"test\",key=\"ecdsa:256\",serial=\"abc\"} "
                        "2000\n"),
              std::string::npos)
        << prom;
    EXPECT_NE(prom.find("nginx_acme_certificate_ready{certificate=\"id1\",name=\"example.test\","
                        "issuer=\"test\",key=\"ecdsa:256\"} 1\n"),
              std::string::npos)
        << prom;
    EXPECT_NE(prom.find("nginx_acme_orders_total{issuer=\"test\",result=\"failed\"} 0\n"),
              std::string::npos);
}

TEST(StatusRender, ThousandsOfCertificatesInPieces) {
    std::vector<acme::CertificateView> views;
    for (int i = 0; i < 5000; i++) {
        views.push_back(
            {"c" + std::to_string(i), {"n" + std::to_string(i) + ".test"}, "t", "ecdsa:256", {}});
    }
    std::size_t pieces = 0, bytes = 0;
    acme::render_status_json("0.1.0", 1, views, {}, [&](std::string_view p) {
        pieces++;
        bytes += p.size();
        EXPECT_LT(p.size(), 20000u);
    });
    EXPECT_GT(pieces, 10u);
    EXPECT_GT(bytes, 5000u * 100);
}

// ------------------------------------------------------------ the engine

class Requests : public acme::RenewRequests {
public:
    std::uint64_t request_sequence() const override { return seq.load(); }
    std::vector<std::string> take_renew_requests() override {
        std::lock_guard<std::mutex> lk(mutex);
        return std::exchange(ids, {});
    }
    void ask(const std::string& id) {
        std::lock_guard<std::mutex> lk(mutex);
        ids.push_back(id);
        seq++;
    }
    std::atomic<std::uint64_t> seq{0};
    std::mutex mutex;
    std::vector<std::string> ids;
};

TEST(RenewNow, AValidCertificateIsOrderedAtOnce) {
    TempDir tmp;
    std::vector<Identifier> ids{dns("example.test")};
    store_certificate(tmp.path(), ids, ids, 90);
    RecordingLogger log;
    NullBoard board;
    Requests requests;
    Engine engine(make_config(tmp.path(), ids), board, log);
    engine.set_renew_requests(requests);
    engine.start();
    ASSERT_TRUE(log.wait_for("is valid until")) << log.all();
    EXPECT_FALSE(log.wait_for("failed", std::chrono::milliseconds(300)));
    requests.ask(acme::certificate_basename(ids, KeyType::ecdsa256));
    EXPECT_TRUE(log.wait_for("acme: certificate \"example.test\": renewal requested, ordering now"))
        << log.all();
    // The CA is a closed port: the order is attempted and fails.
    EXPECT_TRUE(log.wait_for("acme: certificate \"example.test\" from \"test\" failed: "))
        << log.all();
    engine.stop();
}

class Refuse : public acme::OrderHook {
public:
    bool before_order(const acme::CertRef& cert, const std::string& issuer,
                      std::string& why) override {
        asked.push_back(cert.id + " " + issuer);
        why = "not today";
        return false;
    }
    std::vector<std::string> asked;
};

TEST(OrderHook, ARefusalPostponesWithoutAFailure) {
    TempDir tmp;
    std::vector<Identifier> ids{dns("example.test")};
    RecordingLogger log;
    NullBoard board;
    Refuse hook;
    EngineConfig config = make_config(tmp.path(), ids);
    config.postpone_delay = std::chrono::seconds(3600);
    Engine engine(config, board, log);
    engine.set_order_hook(hook);
    engine.start();
    auto line = log.wait_for(
        "acme: certificate \"example.test\": renewal postponed (not today), "
        "next attempt at ");
    ASSERT_TRUE(line) << log.all();
    EXPECT_EQ(line->first, acme::LogLevel::notice);
    EXPECT_FALSE(log.wait_for("failed", std::chrono::milliseconds(300))) << log.all();
    engine.stop();
    ASSERT_EQ(hook.asked.size(), 1u);
    EXPECT_EQ(hook.asked[0], acme::certificate_basename(ids, KeyType::ecdsa256) + " test");
}

// ------------------------------------------------------- the event command

TEST(EventCommand, RunsWithStatusOutputAndTimeout) {
    auto r = acme::run_command({"/bin/sh", "-c", "echo out; echo err >&2; exit 4"}, {},
                               std::chrono::seconds(5));
    EXPECT_TRUE(r.started);
    EXPECT_EQ(r.exit_code, 4);
    EXPECT_EQ(r.output, "out\nerr\n");
    auto t = std::chrono::steady_clock::now();
    r = acme::run_command({"/bin/sleep", "30"}, {}, std::chrono::milliseconds(300));
    EXPECT_TRUE(r.timed_out);
    EXPECT_LT(std::chrono::steady_clock::now() - t, std::chrono::seconds(3));
    r = acme::run_command({"/bin/sh", "-c", "echo \"$ACME_EVENT\""}, {"ACME_EVENT=issued"},
                          std::chrono::seconds(5));
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.output, "issued\n");
}

class Collect : public acme::EventSink {
public:
    void on_event(const acme::Event& e) override {
        std::lock_guard<std::mutex> lk(mutex);
        if (auto* o = std::get_if<acme::events::CommandOutput>(&e)) lines.push_back(o->text);
    }
    std::mutex mutex;
    std::vector<std::string> lines;
};

TEST(EventCommand, EventsQueueAndRenewingDecides) {
    TempDir tmp;
    std::string script = tmp.path() + "/hook.sh";
    {
        std::ofstream f(script);
        f << "#!/bin/sh\necho \"$2 $3 $ACME_NAMES $ACME_ERROR_TYPE\" >> " << tmp.path()
          << "/calls\n[ \"$2\" = renewing ] && exit 1\nexit 0\n";
    }
    chmod(script.c_str(), 0755);
    std::vector<Identifier> ids{dns("example.test"), dns("www.example.test")};
    EngineConfig config = make_config(tmp.path(), ids);
    config.event_command = {script, "arg"};
    std::string id = acme::certificate_basename(ids, KeyType::ecdsa256);
    Collect out;
    acme::CommandSink sink(config, out);
    ASSERT_TRUE(sink.enabled());
    std::string why;
    EXPECT_FALSE(sink.before_order({id, "example.test"}, "test", why));
    EXPECT_EQ(why, "the event command exited with 1");
    auto t = std::chrono::steady_clock::now();
    sink.on_event(acme::events::Failed{{id, "example.test"}, "test", "urn:x:rejected", "no", 0});
    EXPECT_LT(std::chrono::steady_clock::now() - t, std::chrono::milliseconds(100))
        << "events are queued, not run in the caller";
    std::string calls;
    for (int i = 0; i < 50 && calls.find("failed") == std::string::npos; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        std::ifstream f(tmp.path() + "/calls");
        calls.assign(std::istreambuf_iterator<char>(f), {});
    }
    EXPECT_NE(calls.find("renewing " + id + " example.test www.example.test"), std::string::npos)
        << calls;
    EXPECT_NE(calls.find("failed " + id + " example.test www.example.test urn:x:rejected"),
              std::string::npos)
        << calls;
}

}  // namespace
