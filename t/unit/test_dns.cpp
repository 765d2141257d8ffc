// Unit tests of dns-01: the configuration pieces (server addresses, BIND key
// files) and the solver with doubles of the publisher and the lookup (what
// it publishes, how it waits for propagation, how it cleans up).
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "acme/base64url.h"
#include "acme/crypto.h"
#include "acme/dns.h"
#include "acme/error.h"
#include "acme/solver.h"
#include "doubles.h"

namespace {

using acme::Challenge;
using acme::Identifier;
using std::chrono::milliseconds;

// --------------------------------------------------------- configuration

TEST(DnsServer, Forms) {
    auto s = acme::parse_dns_server("127.0.0.1");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->host, "127.0.0.1");
    EXPECT_EQ(s->port, 53u);
    s = acme::parse_dns_server("ns1.example.com:5353");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->host, "ns1.example.com");
    EXPECT_EQ(s->port, 5353u);
    s = acme::parse_dns_server("[::1]:5353");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->host, "::1");
    EXPECT_EQ(s->label(), "[::1]:5353");
    s = acme::parse_dns_server("2001:db8::1");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->port, 53u);
    for (const char* bad : {"", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", ":53", "[::1",
                            "[]:53", "[::1]x", "a b", "ns1.examp8::1]:553", "[nope]:53"}) {
        EXPECT_FALSE(acme::parse_dns_server(bad)) << bad;
    }
}

TEST(TsigKey, AsTsigKeygenWritesIt) {
    acme::TsigKey k = acme::parse_tsig_key(
        "key \"Acme-Key\" {\n\talgorithm hmac-sha256;\n\tsecret "
        "\"XTKHx9TxGQSrSRBInDJtE7wmER4AuebSqb1QCCO+VLQ=\";\n};\n");
    EXPECT_EQ(k.name, "acme-key.");
    EXPECT_EQ(k.algorithm, "hmac-sha256.");
    EXPECT_EQ(k.secret, "XTKHx9TxGQSrSRBInDJtE7wmER4AuebSqb1QCCO+VLQ=");
    k = acme::parse_tsig_key(
        "# comment\nkey k. { secret \"c2VjcmV0c2VjcmV0\"; algorithm HMAC-SHA512; };");
    EXPECT_EQ(k.name, "k.");
    EXPECT_EQ(k.algorithm, "hmac-sha512.");
}

TEST(TsigKey, RejectsWhatIsWrong) {
    auto error_of = [](const std::string& text) {
        try {
            acme::parse_tsig_key(text);
        } catch (const acme::Error& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    EXPECT_NE(error_of("").find("expected key"), std::string::npos);
    EXPECT_NE(error_of("key \"k\" { algorithm hmac-md5; secret \"c2VjcmV0\"; };")
                  .find("unsupported algorithm \"hmac-md5\""),
              std::string::npos);
    EXPECT_EQ(error_of("key \"k\" { algorithm hmac-sha256; };"), "no secret");
    EXPECT_EQ(error_of("key \"k\" { secret \"c2VjcmV0\"; };"), "no algorithm");
    EXPECT_EQ(error_of("key \"k\" { algorithm hmac-sha256; secret \"!!\"; };"),
              "the secret is not base64");
    EXPECT_EQ(error_of("key \"k\" { algorithm hmac-sha256; secret \"c2VjcmV0\"; "),
              "missing \"}\"");
    EXPECT_EQ(error_of("key \"k\" { color blue; };"), "unknown key option \"color\"");
    EXPECT_EQ(error_of("key \"k\" { secret \"abc"), "unterminated quoted string");
}

// ------------------------------------------------------------------ solver

struct Published {
    std::string domain, name, value;
    bool operator==(const Published& o) const {
        return domain == o.domain && name == o.name && value == o.value;
    }
};

class FakePublisher : public acme::DnsPublisher {
public:
    std::vector<Published> added, removed;
    std::string fail_add, fail_remove;
    void add_txt(const std::string& domain, const std::string& name,
                 const std::string& value) override {
        if (!fail_add.empty()) throw acme::Error(fail_add);
        added.push_back({domain, name, value});
    }
    void remove_txt(const std::string& domain, const std::string& name, const std::string& value,
                    std::string& error) noexcept override {
        removed.push_back({domain, name, value});
        error = fail_remove;
    }
    // How many records each batch call had; the base class adds them one by
    // one (as the hook does), which is what is tested here too.
    std::vector<std::size_t> add_batches, remove_batches;
    void add_txts(const std::vector<acme::TxtRecord>& records) override {
        add_batches.push_back(records.size());
        DnsPublisher::add_txts(records);
    }
    void remove_txts(const std::vector<acme::TxtRecord>& records,
                     std::string& error) noexcept override {
        remove_batches.push_back(records.size());
        DnsPublisher::remove_txts(records, error);
    }
};

// Sees a value only after `visible_after` lookups.
class FakeLookup : public acme::DnsLookup {
public:
    int visible_after = 0;
    int lookups = 0;
    std::vector<Answer> check_txt(const std::string&, const std::vector<std::string>&) override {
        ++lookups;
        Answer a{"127.0.0.1:53", lookups > visible_after, "NOERROR, no TXT record"};
        return {a, {"10.0.0.1:53", true, ""}};
    }
};

struct Notes {
    std::vector<std::pair<std::string, bool>> lines;
};

struct SolverRig {
    FakePublisher* publisher;
    FakeLookup* lookup;
    std::vector<milliseconds> pauses;
    Notes notes;
    std::unique_ptr<acme::Solver> solver;

    explicit SolverRig(std::chrono::seconds timeout = std::chrono::seconds(120),
                       bool with_lookup = true) {
        auto p = std::make_unique<FakePublisher>();
        auto l = std::make_unique<FakeLookup>();
        publisher = p.get();
        lookup = l.get();
        acme::SolverEnv env;
        env.pause = [this](milliseconds d) { pauses.push_back(d); };
        env.note = [this](const std::string& what, bool warn) {
            notes.lines.emplace_back(what, warn);
        };
        solver = acme::make_dns01_solver(std::move(p), with_lookup ? std::move(l) : nullptr,
                                         timeout, env);
    }
};

Identifier dns(const std::string& v) { return Identifier{Identifier::Type::dns, v}; }
Challenge dns01(const std::string& token) {
    return Challenge{"dns-01", "https://ca.test/chall/" + token, token, "pending", std::nullopt, {},
                     false};
}

TEST(Dns01Solver, PublishesTheDigestUnderAcmeChallenge) {
    SolverRig rig;
    // The wildcard's authorization names the base domain: both values go
    // to one record name.
    rig.solver->present(dns("example.com"), dns01("t1"), "t1.thumb");
    rig.solver->present(dns("example.com"), dns01("t2"), "t2.thumb");
    ASSERT_EQ(rig.publisher->added.size(), 2u);
    Published want{"example.com", "_acme-challenge.example.com",
                   acme::base64url_encode(acme::sha256("t1.thumb"))};
    EXPECT_EQ(rig.publisher->added[0], want);
    EXPECT_EQ(rig.publisher->added[0].value.size(), 43u);
    EXPECT_NE(rig.publisher->added[1].value, rig.publisher->added[0].value);

    rig.solver->cleanup(dns("example.com"), dns01("t1"), "t1.thumb");
    ASSERT_EQ(rig.publisher->removed.size(), 1u);
    EXPECT_EQ(rig.publisher->removed[0], want);
    EXPECT_TRUE(rig.notes.lines.empty());
}

TEST(Dns01Solver, AnOrdersRecordsArePublishedAndRemovedTogether) {
    SolverRig rig;
    ASSERT_TRUE(rig.solver->presents_together());
    // A wildcard and its apex: two values of one record name, one order.
    std::vector<acme::Solver::Answer> answers{{dns("example.com"), dns01("t1"), "t1.thumb"},
                                              {dns("example.com"), dns01("t2"), "t2.thumb"},
                                              {dns("www.example.com"), dns01("t3"), "t3.thumb"}};
    rig.solver->present_together(answers);
    EXPECT_EQ(rig.publisher->add_batches, std::vector<std::size_t>{3});
    ASSERT_EQ(rig.publisher->added.size(), 3u);
    EXPECT_EQ(rig.publisher->added[2],
              (Published{"www.example.com", "_acme-challenge.www.example.com",
                         acme::base64url_encode(acme::sha256("t3.thumb"))}));
    rig.solver->cleanup_together(answers);
    EXPECT_EQ(rig.publisher->remove_batches, std::vector<std::size_t>{3});
    EXPECT_EQ(rig.publisher->removed, rig.publisher->added);
    EXPECT_TRUE(rig.notes.lines.empty());
}

// The default batch (the hook's): one by one, and a failure withdraws the
// records already added, so that a throw leaves nothing behind.
TEST(DnsPublisher, OneByOneBatchRollsBackOnFailure) {
    struct Flaky : acme::DnsPublisher {
        std::vector<std::string> added, removed;
        void add_txt(const std::string&, const std::string& name, const std::string&) override {
            if (added.size() == 2) throw acme::Error("hook exited with 3");
            added.push_back(name);
        }
        void remove_txt(const std::string&, const std::string& name, const std::string&,
                        std::string& error) noexcept override {
            removed.push_back(name);
            if (name == "b") error = "cannot remove b";
        }
    } flaky;
    std::vector<acme::TxtRecord> records{{"a", "a", "1"}, {"b", "b", "2"}, {"c", "c", "3"}};
    EXPECT_THROW(flaky.add_txts(records), acme::Error);
    EXPECT_EQ(flaky.removed, (std::vector<std::string>{"a", "b"}));
    flaky.removed.clear();
    std::string error;
    flaky.remove_txts(records, error);
    EXPECT_EQ(flaky.removed, (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(error, "cannot remove b");
}

TEST(Dns01Solver, WaitsWithBackoffUntilEveryServerSeesIt) {
    SolverRig rig;
    rig.lookup->visible_after = 4;
    rig.solver->present(dns("example.com"), dns01("t"), "t.k");
    rig.solver->wait_visible(dns("example.com"), dns01("t"), "t.k");
    EXPECT_EQ(rig.lookup->lookups, 5);
    ASSERT_EQ(rig.pauses.size(), 4u);
    EXPECT_EQ(rig.pauses[0], milliseconds(250));
    EXPECT_EQ(rig.pauses[1], milliseconds(500));
    EXPECT_EQ(rig.pauses[3], milliseconds(2000));
    // One notice says what it waits for, naming the server that lags.
    ASSERT_EQ(rig.notes.lines.size(), 1u);
    EXPECT_NE(rig.notes.lines[0].first.find("_acme-challenge.example.com"), std::string::npos);
    EXPECT_NE(rig.notes.lines[0].first.find("127.0.0.1:53"), std::string::npos);
    EXPECT_FALSE(rig.notes.lines[0].second);
}

TEST(Dns01Solver, VisibleAtOnceMeansNoPause) {
    SolverRig rig;
    rig.solver->wait_visible(dns("example.com"), dns01("t"), "t.k");
    EXPECT_EQ(rig.lookup->lookups, 1);
    EXPECT_TRUE(rig.pauses.empty());
    EXPECT_TRUE(rig.notes.lines.empty());
}

TEST(Dns01Solver, TimeoutMessageNamesTheRecordAndTheServer) {
    FakePublisher* publisher = nullptr;
    auto p = std::make_unique<FakePublisher>();
    publisher = p.get();
    auto l = std::make_unique<FakeLookup>();
    l->visible_after = 1000000;
    acme::SolverEnv env;
    env.pause = [](milliseconds d) { std::this_thread::sleep_for(d); };
    env.note = [](const std::string&, bool) {};
    auto solver = acme::make_dns01_solver(std::move(p), std::move(l), std::chrono::seconds(1), env);
    auto started = std::chrono::steady_clock::now();
    try {
        solver->wait_visible(dns("example.com"), dns01("t"), "t.k");
        FAIL() << "no timeout";
    } catch (const acme::Error& e) {
        std::string what = e.what();
        EXPECT_NE(what.find("\"_acme-challenge.example.com\" was not seen after 1 s "
                            "(dns_propagation_timeout)"),
                  std::string::npos)
            << what;
        EXPECT_NE(what.find("127.0.0.1:53: NOERROR, no TXT record"), std::string::npos) << what;
        EXPECT_EQ(what.find("10.0.0.1"), std::string::npos) << what;
    }
    auto took = std::chrono::steady_clock::now() - started;
    EXPECT_GE(took, std::chrono::milliseconds(950));
    EXPECT_LT(took, std::chrono::milliseconds(3000));
    EXPECT_TRUE(publisher->added.empty());
}

TEST(Dns01Solver, NoLookupMeansNoWait) {
    SolverRig rig(std::chrono::seconds(120), false);
    rig.solver->wait_visible(dns("example.com"), dns01("t"), "t.k");
    EXPECT_TRUE(rig.pauses.empty());
}

TEST(Dns01Solver, PublishFailureIsThrownAndCleanupFailureIsNoted) {
    SolverRig rig;
    rig.publisher->fail_add = "the server answered REFUSED";
    EXPECT_THROW(rig.solver->present(dns("example.com"), dns01("t"), "t.k"), acme::Error);
    rig.publisher->fail_remove = "dns_hook \"/x\" teardown \"example.com\" exited with 1";
    rig.solver->cleanup(dns("example.com"), dns01("t"), "t.k");
    ASSERT_EQ(rig.notes.lines.size(), 1u);
    EXPECT_TRUE(rig.notes.lines[0].second);
    EXPECT_NE(rig.notes.lines[0].first.find("may be left behind: dns_hook"), std::string::npos);
}

TEST(Dns01Solver, ChosenByMakeSolversOnlyWithAPublisher) {
    acme_test::RecordingBoard board;
    acme::IssuerConfig ic;
    ic.challenges = {"http-01", "dns-01"};
    EXPECT_EQ(acme::make_solvers(ic, board).find("dns-01"), nullptr);
    ic.dns.hook = {"/bin/true"};
    acme::Solvers with_hook = acme::make_solvers(ic, board);
    EXPECT_NE(with_hook.find("dns-01"), nullptr);
    EXPECT_NE(with_hook.find("http-01"), nullptr);
    ic.dns.hook.clear();
    ic.dns.update_server = "127.0.0.1:5353";
    EXPECT_NE(acme::make_solvers(ic, board).find("dns-01"), nullptr);
}

}  // namespace

namespace {

// ------------------------------------------------------- dns-persist-01

struct PersistRig {
    FakePublisher* publisher = nullptr;
    FakeLookup* lookup = nullptr;
    std::vector<std::pair<std::string, bool>> notes;
    std::vector<std::pair<std::string, std::string>> records_needed;
    std::unique_ptr<acme::Solver> solver;

    explicit PersistRig(bool with_publisher, int visible_after = 0,
                        bool with_record_needed = false) {
        auto p = std::make_unique<FakePublisher>();
        auto l = std::make_unique<FakeLookup>();
        publisher = p.get();
        lookup = l.get();
        l->visible_after = visible_after;
        acme::SolverEnv env;
        env.pause = [](milliseconds) {};
        env.note = [this](const std::string& what, bool warn) { notes.emplace_back(what, warn); };
        env.account_url = [] { return std::string("https://ca.test/acct/7"); };
        if (with_record_needed) {
            env.record_needed = [this](const std::string& what, const std::string& name,
                                       const std::string& value) {
                notes.emplace_back(what, true);
                records_needed.emplace_back(name, value);
            };
        }
        solver = acme::make_dns_persist01_solver(with_publisher ? std::move(p) : nullptr,
                                                 std::move(l), std::chrono::seconds(120), env);
    }
};

Challenge persist(bool wildcard) {
    Challenge c{"dns-persist-01", "https://ca.test/chall/p", "",      "pending",
                std::nullopt,     {"ca.test", "other.test"}, wildcard};
    return c;
}

TEST(DnsPersist01Solver, StandingRecordMeansNoChange) {
    PersistRig rig(true);
    rig.solver->present(dns("example.com"), persist(false), "");
    rig.solver->wait_visible(dns("example.com"), persist(false), "");
    rig.solver->cleanup(dns("example.com"), persist(false), "");
    EXPECT_TRUE(rig.publisher->added.empty());
    EXPECT_TRUE(rig.publisher->removed.empty());
    EXPECT_TRUE(rig.notes.empty());
}

TEST(DnsPersist01Solver, PublishesOnceAndNeverRemoves) {
    PersistRig rig(true, 1);  // missing at the first look
    rig.solver->present(dns("example.com"), persist(true), "");
    ASSERT_EQ(rig.publisher->added.size(), 1u);
    EXPECT_EQ(rig.publisher->added[0].name, "_validation-persist.example.com");
    EXPECT_EQ(rig.publisher->added[0].domain, "example.com");
    EXPECT_EQ(rig.publisher->added[0].value,
              "ca.test; accounturi=https://ca.test/acct/7; policy=wildcard");
    rig.solver->cleanup(dns("example.com"), persist(true), "");
    EXPECT_TRUE(rig.publisher->removed.empty());
}

TEST(DnsPersist01Solver, WithoutPublisherTheRecordIsLoggedForTheOperator) {
    PersistRig rig(false, 1);
    rig.solver->present(dns("example.com"), persist(false), "");
    ASSERT_FALSE(rig.notes.empty());
    EXPECT_TRUE(rig.notes[0].second);
    EXPECT_NE(rig.notes[0].first.find("needs the DNS record _validation-persist.example.com. IN "
                                      "TXT \"ca.test; accounturi=https://ca.test/acct/7\""),
              std::string::npos)
        << rig.notes[0].first;
    rig.solver->wait_visible(dns("example.com"), persist(false), "");
    EXPECT_GE(rig.lookup->lookups, 2);
}

TEST(DnsPersist01Solver, TheRecordToAddGoesToTheStatusPage) {
    PersistRig rig(false, 1, true);
    rig.solver->present(dns("example.com"), persist(true), "");
    ASSERT_EQ(rig.records_needed.size(), 1u);
    EXPECT_EQ(rig.records_needed[0].first, "_validation-persist.example.com");
    EXPECT_EQ(rig.records_needed[0].second,
              "ca.test; accounturi=https://ca.test/acct/7; policy=wildcard");
    // With a publisher there is nothing for the operator to add.
    PersistRig published(true, 1, true);
    published.solver->present(dns("example.com"), persist(true), "");
    EXPECT_TRUE(published.records_needed.empty());
}

TEST(DnsPersist01Solver, NeedsTheIssuerDomainName) {
    PersistRig rig(true);
    Challenge c = persist(false);
    c.issuer_domain_names.clear();
    EXPECT_THROW(rig.solver->present(dns("example.com"), c, ""), acme::Error);
}

// ------------------------------------------------------------ dns_hook

TEST(DnsHook, CalledAsModMdCallsIt) {
    acme::DnsConfig config;
    // PATH ARG... action domain value, with the record name in the environment.
    config.hook = {"/bin/sh", "-c",
                   "echo \"$0 $1 $2 $3 $ACME_DNS_RECORD\" >&2; [ \"$2\" != bad.test ] || exit 3; "
                   "[ \"$2\" != slow.test ] || sleep 10",
                   "tag"};
    config.hook_timeout = milliseconds(300);
    auto hook = acme::make_dns_hook(config);
    EXPECT_NO_THROW(hook->add_txt("ok.test", "_acme-challenge.ok.test", "v1"));
    try {
        hook->add_txt("bad.test", "_acme-challenge.bad.test", "v2");
        FAIL() << "no error";
    } catch (const acme::Error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "dns_hook \"/bin/sh\" setup \"bad.test\" exited with 3, output: tag setup "
                  "bad.test v2 _acme-challenge.bad.test");
    }
    std::string error;
    hook->remove_txt("slow.test", "_acme-challenge.slow.test", "v3", error);
    EXPECT_NE(error.find("teardown \"slow.test\" was killed after 300 ms (dns_hook_timeout)"),
              std::string::npos)
        << error;
    hook->remove_txt("ok.test", "_acme-challenge.ok.test", "v1", error);
    EXPECT_EQ(error, "");
}

}  // namespace
