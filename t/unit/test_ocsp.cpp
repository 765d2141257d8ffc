// Unit tests of the OCSP checks (ocsp.h) against real responses: the
// openssl command line is the responder (`openssl ocsp -index ... -reqin`),
// for a CA, a leaf and an index made here.
#include <gtest/gtest.h>

#include <ctime>
#include <fstream>
#include <sstream>
#include <string>

#include "acme/ocsp.h"
#include "acme/ocsp_stapler.h"
#include "doubles.h"
#include "temp_dir.h"

namespace {

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

void spit(const std::string& path, const std::string& data) {
    std::ofstream(path, std::ios::binary) << data;
}

void run(const std::string& cmd) {
    ASSERT_EQ(std::system((cmd + " >/dev/null 2>&1").c_str()), 0) << cmd;
}

struct Pki {
    TempDir dir;
    std::string d = dir.path();
    std::string chain;  // leaf + issuer
    std::string serial;

    Pki() {
        std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
        for (const char* ca : {"ca", "other"}) {
            run("openssl req -x509 " + ec + " -keyout " + d + "/" + ca + ".key -out " + d + "/" +
                ca + ".crt -days 2 -subj /CN=" + ca);
        }
        run("openssl req -new " + ec + " -keyout " + d + "/leaf.key -out " + d +
            "/leaf.csr -subj /CN=leaf.test");
        spit(d + "/ext", "authorityInfoAccess=OCSP;URI:http://127.0.0.1:8888/ocsp\n");
        run("openssl x509 -req -in " + d + "/leaf.csr -CA " + d + "/ca.crt -CAkey " + d +
            "/ca.key -set_serial 0x1234 -days 1 -extfile " + d + "/ext -out " + d + "/leaf.crt");
        chain = slurp(d + "/leaf.crt") + slurp(d + "/ca.crt");
    }

    // The responder's answer for the leaf with that index line status.
    std::string respond(char status, const std::string& signer = "ca", int days = 1) {
        std::string line = std::string(1, status) + "\t300101000000Z\t" +
                           (status == 'R' ? "260101000000Z" : "") +
                           "\t1234\tunknown\t/CN=leaf.test\n";
        spit(d + "/index", line);
        spit(d + "/req.der", acme::make_ocsp_request(chain));
        run("openssl ocsp -index " + d + "/index -CA " + d + "/ca.crt -rsigner " + d + "/" +
            signer + ".crt -rkey " + d + "/" + signer + ".key -reqin " + d + "/req.der -respout " +
            d + "/resp.der -ndays " + std::to_string(days));
        return slurp(d + "/resp.der");
    }
};

TEST(Ocsp, ResponderUrlAndRequest) {
    Pki pki;
    EXPECT_EQ(acme::ocsp_responder_url(pki.chain), "http://127.0.0.1:8888/ocsp");
    EXPECT_EQ(acme::ocsp_responder_url(slurp(pki.d + "/ca.crt")), "") << "no AIA: no URL";
    EXPECT_FALSE(acme::make_ocsp_request(pki.chain).empty());
    EXPECT_THROW(acme::make_ocsp_request(slurp(pki.d + "/leaf.crt")), std::exception)
        << "a leaf alone has no issuer to name";
}

TEST(Ocsp, GoodVerifiedWithRefreshAtHalfTheValidity) {
    Pki pki;
    std::time_t now = std::time(nullptr);
    acme::OcspStatus s = acme::check_ocsp_response(pki.respond('V'), pki.chain, true, now);
    EXPECT_TRUE(s.good) << s.error;
    EXPECT_NEAR(static_cast<double>(s.this_update), static_cast<double>(now), 60);
    EXPECT_EQ(s.next_update - s.this_update, 86400);
    EXPECT_EQ(s.refresh_at, s.this_update + 43200);
    EXPECT_FALSE(acme::check_ocsp_response(pki.respond('V'), pki.chain, true, now + 2 * 86400).good)
        << "an expired response is not stapled";
}

TEST(Ocsp, RevokedAndForeignSignatures) {
    Pki pki;
    std::time_t now = std::time(nullptr);
    acme::OcspStatus s = acme::check_ocsp_response(pki.respond('R'), pki.chain, true, now);
    EXPECT_FALSE(s.good);
    EXPECT_EQ(s.error, "revoked");

    std::string foreign = pki.respond('V', "other");
    s = acme::check_ocsp_response(foreign, pki.chain, true, now);
    EXPECT_FALSE(s.good) << "ssl_stapling_verify: signed by another CA";
    EXPECT_NE(s.error.find("not signed by the issuer"), std::string::npos) << s.error;
    EXPECT_TRUE(acme::check_ocsp_response(foreign, pki.chain, false, now).good)
        << "without ssl_stapling_verify it is taken as it is";

    EXPECT_FALSE(acme::check_ocsp_response("junk", pki.chain, false, now).good);
    EXPECT_EQ(acme::ocsp_refresh_time(1000, 0), 1000 + 3600);
}

// The responder as the stapler sees it: every request answered with
// `response`, or a transport failure when it is empty.
class ScriptedResponder : public acme::HttpClient {
public:
    std::string response;
    std::vector<acme::HttpRequest> requests;
    acme::HttpResponse send(const acme::HttpRequest& request) override {
        requests.push_back(request);
        if (response.empty()) throw acme::Error("connection refused");
        acme::HttpResponse r;
        r.status = 200;
        r.body = response;
        return r;
    }
};

using acme_test::MemoryStorage;
using acme_test::RecordingBoard;
using acme_test::RecordingSink;

struct StaplerTest : ::testing::Test {
    Pki pki;
    acme::EngineConfig config;
    RecordingBoard board;
    RecordingSink sink;
    acme::StopSignal stop;
    acme::RandomSource random;
    acme::EngineContext ctx{config, board, sink, stop, random};
    MemoryStorage storage;
    acme::IssuerState issuer;
    acme::CertificateConfig cert_config;
    std::vector<std::unique_ptr<acme::CertState>> certs;
    ScriptedResponder* responder = nullptr;
    std::unique_ptr<acme::OcspStapler> stapler;

    StaplerTest() {
        issuer.storage = &storage;
        cert_config.ocsp_stapling = true;
        cert_config.ocsp_verify = true;
        auto c = std::make_unique<acme::CertState>();
        c->config = &cert_config;
        c->issuer = &issuer;
        c->basename = "leaf.test-00000000";
        c->name = "leaf.test";
        certs.push_back(std::move(c));
        stapler = std::make_unique<acme::OcspStapler>(ctx, certs, [this](const acme::HttpOptions&) {
            auto r = std::make_unique<ScriptedResponder>();
            responder = r.get();
            return r;
        });
    }
    std::optional<std::string> stored() { return storage.load("leaf.test-00000000.ocsp"); }
    void store_chain(const std::string& chain) {
        storage.store("leaf.test-00000000.crt", chain, acme::Access::shared);
    }
};

TEST_F(StaplerTest, FetchesStoresAndRefreshesAtHalfTheValidity) {
    std::time_t now = std::time(nullptr);
    stapler->check(now);
    EXPECT_EQ(responder, nullptr) << "nothing issued yet: no request";

    store_chain(pki.chain);
    std::string good = pki.respond('V');
    // The client is made at the first fetch: script it through a first
    // failed attempt, which is retried after first_retry.
    stapler->check(now);
    ASSERT_NE(responder, nullptr);
    ASSERT_EQ(responder->requests.size(), 1u);
    EXPECT_EQ(responder->requests[0].method, "POST");
    EXPECT_EQ(responder->requests[0].url, "http://127.0.0.1:8888/ocsp");
    EXPECT_EQ(responder->requests[0].body, acme::make_ocsp_request(pki.chain));
    ASSERT_TRUE(sink.first<acme::events::OcspFailed>());
    EXPECT_EQ(sink.first<acme::events::OcspFailed>()->next_attempt,
              now + acme::OcspStapler::first_retry);
    EXPECT_FALSE(stored());
    EXPECT_TRUE(board.updated().empty());

    responder->response = good;
    stapler->check(now + 1);
    EXPECT_EQ(responder->requests.size(), 1u) << "not before the retry time";
    stapler->check(now + acme::OcspStapler::first_retry);
    ASSERT_EQ(responder->requests.size(), 2u);
    ASSERT_TRUE(stored());
    EXPECT_EQ(*stored(), good);
    EXPECT_EQ(board.updated(), std::vector<std::string>{"leaf.test-00000000"})
        << "workers are told through the certificate's generation";
    auto ok = sink.first<acme::events::OcspStored>();
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->refresh_at, ok->next_update - 43200);

    stapler->check(ok->refresh_at - 1);
    EXPECT_EQ(responder->requests.size(), 2u) << "current: no request";
    stapler->check(ok->refresh_at);
    EXPECT_EQ(responder->requests.size(), 3u) << "refreshed at half its validity";
}

TEST_F(StaplerTest, RefusedResponsesAreNotStoredAndANewCertificateIsFetchedAtOnce) {
    std::time_t now = std::time(nullptr);
    store_chain(pki.chain);
    stapler->check(now);  // makes the client (the first answer fails)
    ASSERT_NE(responder, nullptr);

    responder->response = pki.respond('V', "other");
    stapler->check(now + acme::OcspStapler::first_retry);
    EXPECT_FALSE(stored()) << "ssl_stapling_verify: not signed by the issuer";
    auto failed = sink.all<acme::events::OcspFailed>();
    ASSERT_EQ(failed.size(), 2u);
    EXPECT_NE(failed[1].what.find("not signed by the issuer"), std::string::npos) << failed[1].what;
    EXPECT_EQ(failed[1].next_attempt,
              now + acme::OcspStapler::first_retry + 2 * acme::OcspStapler::first_retry)
        << "the retry delay doubles";

    responder->response = pki.respond('R');
    store_chain(pki.chain + "\n");  // a renewal: a new version of the item
    stapler->check(now + acme::OcspStapler::first_retry + 1);
    EXPECT_EQ(responder->requests.size(), 3u) << "a new certificate is fetched at once";
    EXPECT_FALSE(stored()) << "revoked";
    EXPECT_EQ(sink.all<acme::events::OcspFailed>().back().what, "revoked");
}

TEST_F(StaplerTest, AStoredCurrentResponseIsKeptAfterARestart) {
    std::time_t now = std::time(nullptr);
    store_chain(pki.chain);
    storage.store("leaf.test-00000000.ocsp", pki.respond('V'), acme::Access::shared);
    stapler->check(now);
    EXPECT_EQ(responder, nullptr) << "good until its refresh time: no fetch";
    stapler->check(now + 43200 + 60);
    ASSERT_NE(responder, nullptr) << "fetched at the refresh time";
    EXPECT_EQ(responder->requests.size(), 1u);
}

TEST_F(StaplerTest, OnlyStapledCertificatesWithAResponder) {
    cert_config.ocsp_stapling = false;
    acme::OcspStapler off(ctx, certs, [](const acme::HttpOptions&) {
        ADD_FAILURE() << "no client for a certificate without stapling";
        return std::make_unique<ScriptedResponder>();
    });
    store_chain(pki.chain);
    off.check(std::time(nullptr));

    cert_config.ocsp_stapling = true;
    store_chain(slurp(pki.d + "/ca.crt"));  // no authorityInfoAccess
    stapler->check(std::time(nullptr));
    EXPECT_EQ(responder, nullptr) << "no OCSP URL: nothing to fetch";
}

}  // namespace
