// Unit tests of the order runner (order_runner.h) through attempt_order():
// whole orders against a fake CA (doubles.h), with the storage in memory, a
// recording solver for http-01 and a recording event sink, so the tests see
// what is stored, what was published and withdrawn, what went to the CA and
// which events were reported.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "acme/acme_client.h"
#include "acme/cert_record.h"
#include "acme/cert_state.h"
#include "acme/crypto.h"
#include "acme/engine_context.h"
#include "acme/order_runner.h"
#include "acme/sealed_storage.h"
#include "acme/sealed_value.h"
#include "acme/storage.h"
#include "doubles.h"

namespace {

using acme::Identifier;
using acme::KeyType;
using acme::PrivateKey;
using acme_test::FakeCa;
using acme_test::MemoryStorage;
using acme_test::RecordingBoard;
using acme_test::RecordingSink;
using acme_test::RecordingSolver;
using acme_test::SolverCall;
namespace events = acme::events;

Identifier dns(const std::string& v) { return Identifier{Identifier::Type::dns, v}; }

const char* const unauthorized = "urn:ietf:params:acme:error:unauthorized";

class OrderRunnerTest : public ::testing::Test {
protected:
    OrderRunnerTest() {
        config.user_agent = "unit-test";
        issuer_config.name = "test";
        issuer_config.directory_url = FakeCa::directory_url;
        issuer_config.accept_terms = true;
        issuer_config.challenges = {"http-01"};
        issuer.config = &issuer_config;
        issuer.storage = &storage;
        issuer.http_options.user_agent = "unit-test";
        auto s = std::make_unique<RecordingSolver>();
        solver = s.get();
        issuer.solvers.add("http-01", std::move(s));
        configure({dns("example.test")});
    }

    void configure(std::vector<Identifier> ids) {
        cert_config.issuer = "test";
        cert_config.identifiers = std::move(ids);
        cert_config.key_type = KeyType::ecdsa256;
        cert.config = &cert_config;
        cert.issuer = &issuer;
        cert.basename = cert_config.basename();
        cert.name = cert_config.identifiers.front().value;
    }

    void attempt() { acme::attempt_order(ctx, cert, ca); }

    std::string key_of(const std::string& suffix) const { return cert.basename + suffix; }

    acme::CertRecord record() const {
        auto text = storage.peek(key_of(acme::storage_keys::json_suffix));
        if (!text) throw acme::Error("no record");
        return acme::parse_cert_record(*text);
    }

    PrivateKey account_key() const {
        auto pem = storage.peek(acme::storage_keys::account_key);
        if (!pem) throw acme::Error("no account key");
        return PrivateKey::from_pem(*pem);
    }

    // A validator that accepts only an answer the solver has in place with
    // the right key authorization, as a CA fetching it would.
    void validate_against_solver() {
        ca.validate = [this](const Identifier& id, const std::string& type,
                             const std::string& token) -> std::optional<FakeCa::Refusal> {
            auto live = solver->live();
            auto it = live.find(token);
            if (it == live.end()) {
                return FakeCa::Refusal{unauthorized, "no " + type + " answer for " + id.value};
            }
            if (it->second != acme::key_authorization(token, account_key())) {
                return FakeCa::Refusal{unauthorized, "wrong key authorization for " + id.value};
            }
            return std::nullopt;
        };
    }

    acme::EngineConfig config;
    RecordingBoard board;
    RecordingSink sink;
    acme::StopSignal stop;
    acme::RandomSource random;
    acme::EngineContext ctx{config, board, sink, stop, random};

    acme::IssuerConfig issuer_config;
    MemoryStorage storage;
    acme::IssuerState issuer;
    RecordingSolver* solver = nullptr;
    acme::CertificateConfig cert_config;
    acme::CertState cert;
    FakeCa ca;
};

TEST_F(OrderRunnerTest, IssuesAndStoresTheCertificate) {
    validate_against_solver();
    std::time_t before = std::time(nullptr);
    attempt();

    ASSERT_FALSE(sink.first<events::Failed>()) << sink.first<events::Failed>()->detail;
    ASSERT_TRUE(cert.current);
    EXPECT_EQ(cert.failures, 0);

    // The chain and its key, the key a secret; the key went first.
    auto crt = storage.peek(key_of(".crt"));
    auto key = storage.peek(key_of(".key"));
    ASSERT_TRUE(crt);
    ASSERT_TRUE(key);
    EXPECT_EQ(*crt, ca.issued_chain());
    EXPECT_EQ(acme::split_pem_chain(*crt).size(), 2u);
    EXPECT_EQ(storage.access(key_of(".key")), acme::Access::secret);
    EXPECT_EQ(storage.access(key_of(".crt")), acme::Access::shared);
    EXPECT_EQ(storage.access(acme::storage_keys::account_key), acme::Access::secret);
    EXPECT_TRUE(acme::certificate_matches_key(*crt, PrivateKey::from_pem(*key)));
    std::vector<std::string> writes = storage.writes();
    auto at = [&](const std::string& k) {
        return std::find(writes.begin(), writes.end(), k) - writes.begin();
    };
    ASSERT_LT(at(key_of(".crt")), static_cast<std::ptrdiff_t>(writes.size()));
    EXPECT_LT(at(key_of(".key")), at(key_of(".crt")));
    acme::CertificateInfo info = acme::inspect_certificate(*crt);
    EXPECT_EQ(info.names, cert_config.identifiers);
    EXPECT_EQ(info.issuer_cn, "fake-ca.test");
    EXPECT_EQ(cert.current->serial_hex, info.serial_hex);

    // The saved order was written while ordering and is gone now.
    EXPECT_LT(at(key_of(".order.json")), at(key_of(".key")));
    EXPECT_FALSE(storage.peek(key_of(".order.json")));

    // The record.
    acme::CertRecord r = record();
    EXPECT_EQ(r.not_after, info.not_after);
    EXPECT_GE(info.not_after, before + ca.lifetime - 5);
    EXPECT_EQ(r.failures, 0);
    EXPECT_FALSE(r.last_error);
    EXPECT_FALSE(r.next_attempt);
    ASSERT_TRUE(r.renewal_at);
    EXPECT_GT(*r.renewal_at, before);
    EXPECT_LT(*r.renewal_at, info.not_after);
    EXPECT_EQ(r.issuer, "test");
    EXPECT_EQ(r.names, std::vector<std::string>{"example.test"});

    // The solver presented the token with the account's key authorization
    // (the validator saw it in place) and withdrew it afterwards.
    std::string token = FakeCa::token(1, "http-01");
    std::string ka = acme::key_authorization(token, account_key());
    std::vector<SolverCall> calls = solver->calls();
    ASSERT_EQ(calls.size(), 2u);
    EXPECT_EQ(calls[0].kind, SolverCall::Kind::present);
    EXPECT_EQ(calls[0].id, dns("example.test"));
    EXPECT_EQ(calls[0].type, "http-01");
    EXPECT_EQ(calls[0].token, token);
    EXPECT_EQ(calls[0].key_authorization, ka);
    EXPECT_EQ(calls[1].kind, SolverCall::Kind::cleanup);
    EXPECT_EQ(calls[1].token, token);
    EXPECT_EQ(calls[1].key_authorization, ka);

    // The CA was told to look once, at the http-01 challenge only; the key
    // went in one CSR; every nonce was one the CA handed out.
    EXPECT_EQ(ca.responded(), std::vector<std::string>{FakeCa::challenge_url(1, "http-01")});
    EXPECT_EQ(ca.orders_created(), 1);
    EXPECT_EQ(ca.finalized(), 1);
    EXPECT_EQ(ca.bad_nonces(), 0);

    // Events, in order.
    auto ordering = sink.position<events::Ordering>();
    auto valid = sink.position<events::AuthorizationValid>();
    auto issued = sink.position<events::Issued>();
    ASSERT_TRUE(ordering && valid && issued);
    EXPECT_LT(*ordering, *valid);
    EXPECT_LT(*valid, *issued);
    EXPECT_EQ(sink.first<events::Ordering>()->issuer, "test");
    EXPECT_EQ(sink.first<events::Ordering>()->replaces, "");
    EXPECT_EQ(sink.first<events::Ordering>()->cert.id, cert.basename);
    EXPECT_EQ(sink.first<events::AuthorizationValid>()->identifier, "example.test");
    EXPECT_EQ(sink.first<events::AuthorizationValid>()->challenge_type, "http-01");
    EXPECT_EQ(sink.first<events::Issued>()->not_after, info.not_after);
    EXPECT_EQ(sink.first<events::Issued>()->renewal_at, *r.renewal_at);
    EXPECT_EQ(sink.first<events::Issued>()->cert.name, "example.test");
    EXPECT_EQ(sink.count<events::Issued>(), 1u);
    EXPECT_EQ(sink.count<events::AccountKeyCreated>(), 1u);
    EXPECT_EQ(sink.count<events::AccountRegistered>(), 1u);

    // Workers are told once everything is stored.
    EXPECT_EQ(board.updated(), std::vector<std::string>{cert.basename});
}

// Once every authorization is valid the order is ready: finalize goes out
// without a look at the order first (one request less per certificate).
TEST_F(OrderRunnerTest, FinalizesWithoutLookingAtTheOrderOnceTheAuthorizationsAreValid) {
    ca.ready_after_polls = 0;
    attempt();

    ASSERT_TRUE(cert.current);
    std::vector<acme::HttpRequest> requests = ca.requests();
    const std::string order = "https://ca.test/order/1";
    auto finalize = std::find_if(requests.begin(), requests.end(), [&](const acme::HttpRequest& r) {
        return r.url == order + "/finalize";
    });
    ASSERT_NE(finalize, requests.end());
    EXPECT_EQ(std::count_if(requests.begin(), finalize,
                            [&](const acme::HttpRequest& r) { return r.url == order; }),
              0);
    EXPECT_EQ(ca.count("POST", order + "/finalize"), 1);
    EXPECT_EQ(ca.finalized(), 1);
}

// A CA that has not yet seen the authorizations' validity answers
// orderNotReady: the order is looked at until it is ready, then finalized,
// and that is no failure.
TEST_F(OrderRunnerTest, AnOrderNotReadyYetIsFinalizedOnceItIs) {
    ca.ready_after_polls = 2;
    attempt();

    ASSERT_FALSE(sink.first<events::Failed>()) << sink.first<events::Failed>()->detail;
    ASSERT_TRUE(cert.current);
    EXPECT_EQ(ca.count("POST", "https://ca.test/order/1/finalize"), 2);
    EXPECT_EQ(ca.finalized(), 1);
    EXPECT_EQ(cert.failures, 0);
    EXPECT_EQ(sink.count<events::Issued>(), 1u);
}

TEST_F(OrderRunnerTest, EveryNameIsAnsweredBeforeTheCaIsToldToLook) {
    configure({dns("example.test"), dns("www.example.test")});
    std::vector<std::size_t> live_at_respond;
    ca.validate = [&](const Identifier&, const std::string&, const std::string&) {
        live_at_respond.push_back(solver->live().size());
        return std::optional<FakeCa::Refusal>();
    };
    attempt();

    ASSERT_FALSE(sink.first<events::Failed>()) << sink.first<events::Failed>()->detail;
    EXPECT_EQ(live_at_respond, (std::vector<std::size_t>{2, 2}));
    EXPECT_EQ(solver->presented().size(), 2u);
    EXPECT_EQ(solver->cleaned_up().size(), 2u);
    EXPECT_TRUE(solver->live().empty());
    EXPECT_EQ(sink.count<events::AuthorizationValid>(), 2u);
    acme::CertificateInfo info = acme::inspect_certificate(*storage.peek(key_of(".crt")));
    EXPECT_EQ(acme::identifier_set(info.names), acme::identifier_set(cert_config.identifiers));
}

TEST_F(OrderRunnerTest, ASolverThatPresentsTogetherGetsTheWholeOrderAtOnce) {
    configure({dns("example.test"), dns("www.example.test")});
    solver->together = true;
    attempt();

    ASSERT_FALSE(sink.first<events::Failed>()) << sink.first<events::Failed>()->detail;
    EXPECT_EQ(solver->batches, (std::vector<int>{2, -2}));
    EXPECT_EQ(solver->waits(), 2);
    EXPECT_TRUE(solver->live().empty());
    ASSERT_TRUE(storage.peek(key_of(".crt")));
}

TEST_F(OrderRunnerTest, APresentTogetherFailureNamesTheOrdersNamesAndAsksNothing) {
    configure({dns("example.test"), dns("www.example.test")});
    solver->together = true;
    solver->fail_present("zone refused", "www.example.test");
    attempt();

    auto failed = sink.first<events::Failed>();
    ASSERT_TRUE(failed);
    EXPECT_NE(failed->detail.find("cannot publish the http-01 challenge for \"example.test\", "
                                  "\"www.example.test\": zone refused"),
              std::string::npos)
        << failed->detail;
    EXPECT_EQ(ca.challenge_posts(), 0);
    EXPECT_EQ(solver->batches, std::vector<int>{2}) << "nothing to withdraw after the throw";
    EXPECT_TRUE(solver->live().empty());
}

TEST_F(OrderRunnerTest, ValidAuthorizationIsNotAnsweredAgain) {
    configure({dns("example.test"), dns("www.example.test")});
    ca.prevalidated = {"example.test"};
    attempt();

    ASSERT_FALSE(sink.first<events::Failed>()) << sink.first<events::Failed>()->detail;
    std::vector<SolverCall> presented = solver->presented();
    ASSERT_EQ(presented.size(), 1u);
    EXPECT_EQ(presented[0].id, dns("www.example.test"));
    EXPECT_EQ(ca.responded(), std::vector<std::string>{FakeCa::challenge_url(2, "http-01")});
    ASSERT_TRUE(storage.peek(key_of(".crt")));
}

TEST_F(OrderRunnerTest, FailedAuthorizationIsRecordedAndTheAnswerWithdrawn) {
    const std::string detail =
        "Invalid response from http://example.test/.well-known/acme-challenge/x: 404";
    ca.validate = [&](const Identifier&, const std::string&, const std::string&) {
        return std::optional<FakeCa::Refusal>(FakeCa::Refusal{unauthorized, detail});
    };
    std::time_t before = std::time(nullptr);
    attempt();

    auto failed = sink.first<events::Failed>();
    ASSERT_TRUE(failed);
    EXPECT_EQ(failed->problem_type, unauthorized);
    EXPECT_NE(failed->detail.find(detail), std::string::npos) << failed->detail;
    EXPECT_NE(failed->detail.find("authorization for \"example.test\" by http-01 failed"),
              std::string::npos)
        << failed->detail;
    EXPECT_EQ(failed->issuer, "test");
    EXPECT_GT(failed->next_attempt, before);
    EXPECT_FALSE(sink.first<events::Issued>());
    EXPECT_FALSE(sink.first<events::AuthorizationValid>());

    EXPECT_EQ(cert.failures, 1);
    EXPECT_FALSE(cert.current);
    acme::CertRecord r = record();
    EXPECT_EQ(r.failures, 1);
    ASSERT_TRUE(r.last_error);
    EXPECT_EQ(r.last_error->type, unauthorized);
    EXPECT_EQ(r.last_error->detail, failed->detail);
    EXPECT_EQ(r.next_attempt, failed->next_attempt);
    EXPECT_FALSE(r.not_after);

    // The answer was presented and withdrawn; nothing was finalized or stored.
    ASSERT_EQ(solver->presented().size(), 1u);
    ASSERT_EQ(solver->cleaned_up().size(), 1u);
    EXPECT_EQ(solver->cleaned_up()[0].token, solver->presented()[0].token);
    EXPECT_EQ(solver->cleaned_up()[0].key_authorization, solver->presented()[0].key_authorization);
    EXPECT_EQ(ca.finalized(), 0);
    EXPECT_FALSE(storage.peek(key_of(".crt")));
    EXPECT_FALSE(storage.peek(key_of(".key")));
    EXPECT_TRUE(board.updated().empty());
}

TEST_F(OrderRunnerTest, SolverThatCannotPublishFailsTheOrderWithoutAskingTheCa) {
    solver->fail_present("port 80 is not served");
    attempt();

    auto failed = sink.first<events::Failed>();
    ASSERT_TRUE(failed);
    EXPECT_NE(
        failed->detail.find(
            "cannot publish the http-01 challenge for \"example.test\": port 80 is not served"),
        std::string::npos)
        << failed->detail;
    EXPECT_EQ(failed->problem_type, "");
    EXPECT_EQ(solver->refused(), 1);
    EXPECT_EQ(ca.challenge_posts(), 0);
    EXPECT_TRUE(ca.responded().empty());
    // Nothing was published, so there is nothing to withdraw.
    EXPECT_TRUE(solver->calls().empty());
    EXPECT_EQ(cert.failures, 1);
    EXPECT_EQ(record().failures, 1);
}

TEST_F(OrderRunnerTest, AnswersPublishedBeforeASolverFailureAreWithdrawn) {
    configure({dns("example.test"), dns("www.example.test")});
    solver->fail_present("no room", "www.example.test");
    attempt();

    auto failed = sink.first<events::Failed>();
    ASSERT_TRUE(failed);
    EXPECT_NE(failed->detail.find("cannot publish the http-01 challenge for \"www.example.test\""),
              std::string::npos)
        << failed->detail;
    EXPECT_EQ(ca.challenge_posts(), 0);
    ASSERT_EQ(solver->presented().size(), 1u);
    EXPECT_EQ(solver->presented()[0].id, dns("example.test"));
    ASSERT_EQ(solver->cleaned_up().size(), 1u);
    EXPECT_EQ(solver->cleaned_up()[0].token, solver->presented()[0].token);
}

// DNS propagation: every answer is published before the first wait, and
// the CA hears of none before all are visible.
TEST_F(OrderRunnerTest, AnswersAreAllPresentedBeforeAnyWaitAndTheCaIsToldAfter) {
    configure({dns("example.test"), dns("www.example.test")});
    std::vector<std::pair<std::size_t, int>> seen;  // presented, challenge posts
    solver->on_wait = [&](const Identifier&) {
        seen.emplace_back(solver->presented().size(), ca.challenge_posts());
    };
    attempt();
    ASSERT_TRUE(sink.first<events::Issued>());
    ASSERT_EQ(seen.size(), 2u);
    for (const auto& s : seen) {
        EXPECT_EQ(s.first, 2u);
        EXPECT_EQ(s.second, 0);
    }
    EXPECT_EQ(solver->waits(), 2);
}

TEST_F(OrderRunnerTest, AnswerNeverVisibleFailsBeforeTheCaIsAskedAndIsWithdrawn) {
    configure({dns("example.test"), dns("www.example.test")});
    solver->fail_wait("the TXT record was not seen");
    attempt();
    auto failed = sink.first<events::Failed>();
    ASSERT_TRUE(failed);
    EXPECT_NE(failed->detail.find("the TXT record was not seen"), std::string::npos)
        << failed->detail;
    EXPECT_EQ(ca.challenge_posts(), 0);
    EXPECT_EQ(solver->cleaned_up().size(), 2u);
}

TEST_F(OrderRunnerTest, UnreachableStorageFailsTheAttemptCleanly) {
    storage.set_unavailable(true);
    EXPECT_NO_THROW(attempt());

    auto failed = sink.first<events::Failed>();
    ASSERT_TRUE(failed);
    EXPECT_NE(failed->detail.find("memory store unavailable"), std::string::npos) << failed->detail;
    EXPECT_EQ(failed->problem_type, "");
    EXPECT_EQ(cert.failures, 1);
    EXPECT_FALSE(cert.current);
    // The record could not be written either, and that is reported.
    EXPECT_GE(sink.count<events::StorageFailed>(), 1u);
    EXPECT_GE(storage.refused(), 2u);
    EXPECT_FALSE(sink.first<events::Issued>());
    EXPECT_EQ(ca.orders_created(), 0);
    EXPECT_TRUE(solver->calls().empty());
    EXPECT_TRUE(board.updated().empty());
}

TEST_F(OrderRunnerTest, StorageLostAtTheEndResumesTheOrderOnceItIsBack) {
    // The store goes away while the certificate is downloaded: the key was
    // saved with the order before the CSR went out, so the next attempt
    // downloads the same certificate instead of ordering again.
    ca.on_request = [this](const acme::HttpRequest& r) {
        if (r.url.rfind("https://ca.test/cert/", 0) == 0 && storage.refused() == 0) {
            storage.set_unavailable(true);
        }
    };
    attempt();

    auto failed = sink.first<events::Failed>();
    ASSERT_TRUE(failed);
    EXPECT_NE(failed->detail.find("memory store unavailable"), std::string::npos) << failed->detail;
    EXPECT_EQ(cert.failures, 1);
    EXPECT_FALSE(cert.current);
    EXPECT_TRUE(board.updated().empty());
    EXPECT_EQ(solver->cleaned_up().size(), 1u);

    storage.set_unavailable(false);
    EXPECT_FALSE(storage.peek(key_of(".crt")));
    ASSERT_TRUE(storage.peek(key_of(".order.json")));
    attempt();

    ASSERT_TRUE(sink.first<events::Issued>());
    auto resumed = sink.first<events::OrderResumed>();
    ASSERT_TRUE(resumed);
    EXPECT_EQ(resumed->status, "valid");
    EXPECT_EQ(resumed->url, "https://ca.test/order/1");
    EXPECT_EQ(ca.orders_created(), 1);
    EXPECT_EQ(ca.finalized(), 1);
    EXPECT_EQ(solver->presented().size(), 1u);
    auto crt = storage.peek(key_of(".crt"));
    auto key = storage.peek(key_of(".key"));
    ASSERT_TRUE(crt && key);
    EXPECT_EQ(*crt, ca.issued_chain());
    EXPECT_TRUE(acme::certificate_matches_key(*crt, PrivateKey::from_pem(*key)));
    EXPECT_FALSE(storage.peek(key_of(".order.json")));
    EXPECT_EQ(cert.failures, 0);
    EXPECT_EQ(record().failures, 0);
    EXPECT_EQ(board.updated(), std::vector<std::string>{cert.basename});
}

// A store that is briefly unreachable when the saved order is read must not
// cost the saved order: it holds the key of a certificate the CA has issued.
TEST_F(OrderRunnerTest, BriefOutageDoesNotDiscardTheSavedOrder) {
    ca.on_request = [this](const acme::HttpRequest& r) {
        if (r.url.rfind("https://ca.test/cert/", 0) == 0 && storage.refused() == 0) {
            storage.set_unavailable(true);
        }
    };
    attempt();
    storage.set_unavailable(false);
    ASSERT_TRUE(storage.peek(key_of(".order.json")));

    // The session and account are known: the saved order is the first
    // thing this attempt reads from the store.
    ca.on_request = nullptr;
    storage.fail_next(1);
    attempt();
    if (!cert.current) attempt();

    EXPECT_FALSE(sink.first<events::SavedOrderIgnored>());
    EXPECT_EQ(ca.orders_created(), 1);
    EXPECT_EQ(ca.finalized(), 1);
    ASSERT_TRUE(storage.peek(key_of(".crt")));
    EXPECT_EQ(*storage.peek(key_of(".crt")), ca.issued_chain());
}

// An order whose invalid authorization ended it leaves no saved order:
// the next attempt orders anew instead of resuming a dead one.
TEST_F(OrderRunnerTest, FailedOrderLeavesNoSavedOrder) {
    ca.validate = [&](const Identifier&, const std::string&, const std::string&) {
        return std::optional<FakeCa::Refusal>(FakeCa::Refusal{unauthorized, "no"});
    };
    attempt();
    ASSERT_TRUE(sink.first<events::Failed>());
    EXPECT_FALSE(storage.peek(key_of(".order.json")));
    ca.validate = nullptr;
    attempt();
    EXPECT_FALSE(sink.first<events::SavedOrderDropped>());
    EXPECT_TRUE(cert.current);
}

// A waiting order renews its lease; when the lease was lost (it expired and
// another engine took it), the order stops instead of racing that engine.
TEST_F(OrderRunnerTest, LostLeaseStopsTheOrder) {
    std::unique_ptr<acme::Lease> lease = storage.try_lease(cert.basename, std::chrono::seconds(10));
    ASSERT_TRUE(lease);
    cert.lease = lease.get();
    MemoryStorage other(storage.backend());
    std::unique_ptr<acme::Lease> taken;
    ca.on_request = [&](const acme::HttpRequest& r) {
        if (r.url.rfind("https://ca.test/chall/", 0) == 0 && !taken) {
            storage.advance(std::chrono::seconds(11));
            taken = other.try_lease(cert.basename, std::chrono::seconds(10));
        }
    };
    attempt();
    cert.lease = nullptr;
    ASSERT_TRUE(taken) << "the other engine could not take the expired lease";
    auto failed = sink.first<events::Failed>();
    ASSERT_TRUE(failed);
    EXPECT_NE(failed->detail.find("the lease on certificate \"example.test\" was lost"),
              std::string::npos)
        << failed->detail;
    EXPECT_EQ(ca.finalized(), 0);
    EXPECT_FALSE(storage.peek(key_of(".crt")));
}

// A storage out of reach at start-up is neither "missing" (which would
// order at once and forget the backoff) nor fatal: it is looked at again.
TEST_F(OrderRunnerTest, StorageOutOfReachAtInspection) {
    storage.set_unavailable(true);
    acme::inspect_stored(ctx, cert);
    EXPECT_FALSE(cert.inspected);
    EXPECT_FALSE(sink.first<events::OrderNeeded>());
    ASSERT_TRUE(sink.first<events::StorageFailed>());
    EXPECT_GT(cert.due, std::time(nullptr));
    storage.set_unavailable(false);
    acme::inspect_stored(ctx, cert);
    EXPECT_TRUE(cert.inspected);
    auto needed = sink.first<events::OrderNeeded>();
    ASSERT_TRUE(needed);
    EXPECT_EQ(needed->reason, "missing");
}

// A certificate key sealed with another encrypt_key_file (another node's,
// or the key was changed) is not taken as missing: ordering anew would
// replace the keys the rest of the cluster opens. It is looked at later.
TEST_F(OrderRunnerTest, AKeySealedWithAnotherKeyIsNotOrderedAgain) {
    attempt();
    ASSERT_TRUE(cert.current);
    const std::string ours(32, 'a'), theirs(32, 'b');
    const std::string key_item = key_of(acme::storage_keys::key_suffix);
    storage.store(key_item, acme::seal_value(theirs, key_item, *storage.peek(key_item)),
                  acme::Access::secret);
    acme::SealedStorage sealed(std::make_unique<MemoryStorage>(storage.backend()), ours);
    issuer.storage = &sealed;
    std::size_t needed = sink.count<events::OrderNeeded>();

    acme::inspect_stored(ctx, cert);
    EXPECT_FALSE(cert.inspected);
    EXPECT_EQ(sink.count<events::OrderNeeded>(), needed);
    auto all_failed = sink.all<events::StorageFailed>();
    ASSERT_FALSE(all_failed.empty());
    const events::StorageFailed* failed = &all_failed.back();
    EXPECT_FALSE(failed->minor);
    EXPECT_NE(failed->what.find("does not open with the configured encrypt_key_file"),
              std::string::npos)
        << failed->what;
    EXPECT_NE(failed->what.find("not renewed until it opens"), std::string::npos);
    EXPECT_GE(cert.due, std::time(nullptr) + 250);
    EXPECT_EQ(ca.orders_created(), 1);
}

// Engines sharing a store that start together: one makes the account key
// under a lease, the others wait for it instead of making their own (all
// but the last stored would be registered and then lost).
TEST_F(OrderRunnerTest, AnAccountKeyBeingMadeElsewhereIsWaitedFor) {
    MemoryStorage other(storage.backend());
    std::unique_ptr<acme::Lease> making = other.try_lease("account.key", std::chrono::seconds(60));
    ASSERT_TRUE(making);

    std::string thumbprint;
    std::thread engine(
        [&] { thumbprint = acme::issuer_session(ctx, issuer).account_key().thumbprint(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    EXPECT_FALSE(storage.peek(acme::storage_keys::account_key)) << "made a key of its own";
    EXPECT_TRUE(thumbprint.empty());

    PrivateKey theirs = PrivateKey::generate(KeyType::ecdsa256);
    other.store(acme::storage_keys::account_key, theirs.to_pem(), acme::Access::secret);
    making.reset();
    engine.join();
    EXPECT_EQ(thumbprint, theirs.thumbprint());
    EXPECT_EQ(sink.count<events::AccountKeyCreated>(), 0u);
}

TEST_F(OrderRunnerTest, RenewalAfterTheCaLostTheAccountRegistersAgain) {
    attempt();
    ASSERT_TRUE(cert.current);
    std::string first_key = *storage.peek(key_of(".key"));
    std::string first_serial = cert.current->serial_hex;

    ca.forget_accounts();
    attempt();

    ASSERT_FALSE(sink.first<events::Failed>()) << sink.first<events::Failed>()->detail;
    EXPECT_EQ(sink.count<events::AccountLost>(), 1u);
    EXPECT_EQ(sink.count<events::AccountRegistered>(), 2u);
    EXPECT_EQ(sink.count<events::Issued>(), 2u);
    EXPECT_EQ(ca.accounts_created(), 2);
    // Renewal rotates the key and brings a new certificate.
    EXPECT_NE(*storage.peek(key_of(".key")), first_key);
    EXPECT_NE(cert.current->serial_hex, first_serial);
    EXPECT_TRUE(acme::certificate_matches_key(*storage.peek(key_of(".crt")),
                                              PrivateKey::from_pem(*storage.peek(key_of(".key")))));
    EXPECT_EQ(board.updated(), (std::vector<std::string>{cert.basename, cert.basename}));
}

TEST_F(OrderRunnerTest, StopDuringValidationWithdrawsTheAnswerAndRecordsNothing) {
    ca.validate = [this](const Identifier&, const std::string&, const std::string&) {
        stop.request();
        return std::optional<FakeCa::Refusal>();
    };
    EXPECT_THROW(attempt(), acme::Stopped);

    EXPECT_EQ(solver->presented().size(), 1u);
    EXPECT_EQ(solver->cleaned_up().size(), 1u);
    EXPECT_FALSE(sink.first<events::Failed>());
    EXPECT_FALSE(sink.first<events::Issued>());
    EXPECT_EQ(cert.failures, 0);
    EXPECT_FALSE(storage.peek(key_of(".json")));
    EXPECT_EQ(ca.finalized(), 0);
}

}  // namespace
