// Unit tests of the RFC 8555 protocol client (src/acme/acme_client.cpp)
// against a scripted HttpClient: every request is recorded and answered from
// a queue, so the tests can check exactly what went over the wire (JWS
// protected headers, nonces, payloads) without a CA.
#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "acme/acme_client.h"
#include "acme/base64url.h"
#include "acme/error.h"
#include "acme/json.h"

namespace acme {
namespace {

const char* const dir_url = "https://ca.test/dir";
const char* const nonce_url = "https://ca.test/nonce";
const char* const account_endpoint = "https://ca.test/new-acct";
const char* const order_endpoint = "https://ca.test/new-order";
const char* const account_url = "https://ca.test/acct/1";
const char* const order_url = "https://ca.test/order/1";
const char* const authz_url = "https://ca.test/authz/1";
const char* const chall_url = "https://ca.test/chall/1";
const char* const finalize_url = "https://ca.test/order/1/finalize";
const char* const cert_url = "https://ca.test/cert/1";

const char* const directory_json = R"({
  "newNonce": "https://ca.test/nonce",
  "newAccount": "https://ca.test/new-acct",
  "newOrder": "https://ca.test/new-order",
  "revokeCert": "https://ca.test/revoke",
  "keyChange": "https://ca.test/key-change",
  "renewalInfo": "https://ca.test/ari",
  "meta": {
    "termsOfService": "https://ca.test/tos.pdf",
    "externalAccountRequired": true,
    "profiles": {"classic": "90 days", "shortlived": "160 hours"}
  }
})";

using Headers = std::vector<std::pair<std::string, std::string>>;

class FakeHttp : public HttpClient {
public:
    HttpResponse send(const HttpRequest& request) override {
        requests.push_back(request);
        if (responses.empty()) {
            throw Error("fake: no response queued for " + request.method + " " + request.url);
        }
        HttpResponse r = std::move(responses.front());
        responses.pop_front();
        return r;
    }

    void queue(long status, std::string body, Headers headers = {}) {
        HttpResponse r;
        r.status = status;
        r.body = std::move(body);
        r.headers = std::move(headers);
        responses.push_back(std::move(r));
    }
    void queue_directory() { queue(200, directory_json); }
    void queue_nonce(const std::string& nonce) { queue(200, "", {{"replay-nonce", nonce}}); }

    std::vector<HttpRequest> requests;
    std::deque<HttpResponse> responses;
};

struct Jws {
    Json header;          // decoded protected header
    std::string payload;  // decoded payload ("" for POST-as-GET)
};

Jws decode_jws(const HttpRequest& request) {
    Json body = Json::parse(request.body);
    Jws jws;
    jws.header = Json::parse(base64url_decode(body.get_string("protected").value()));
    jws.payload = base64url_decode(body.get_string("payload").value());
    EXPECT_FALSE(body.get_string("signature").value_or("").empty());
    return jws;
}

std::string request_header(const HttpRequest& request, const std::string& name) {
    for (const auto& h : request.headers) {
        if (h.first == name) return h.second;
    }
    return "";
}

std::string problem_json(const std::string& type, const std::string& detail, int status) {
    return R"({"type":"urn:ietf:params:acme:error:)" + type + R"(","detail":")" + detail +
           R"(","status":)" + std::to_string(status) + "}";
}

const char* const pending_order = R"({
  "status": "pending",
  "expires": "2030-01-01T00:00:00Z",
  "identifiers": [{"type": "dns", "value": "example.test"}, {"type": "ip", "value": "192.0.2.1"}],
  "authorizations": ["https://ca.test/authz/1", "https://ca.test/authz/2"],
  "finalize": "https://ca.test/order/1/finalize"
})";

const char* const pending_authz = R"({
  "status": "pending",
  "identifier": {"type": "dns", "value": "example.test"},
  "wildcard": true,
  "challenges": [
    {"type": "http-01", "url": "https://ca.test/chall/1", "token": "tok-1", "status": "pending"},
    {"type": "dns-01", "url": "https://ca.test/chall/2", "token": "tok-2", "status": "invalid",
     "error": {"type": "urn:ietf:params:acme:error:dns", "detail": "no TXT record", "status": 400}}
  ]
})";

class AcmeClientTest : public ::testing::Test {
protected:
    AcmeClientTest()
        : session(dir_url, PrivateKey::generate(KeyType::ecdsa256), "test/1.0"),
          client(http, session) {
        // In-place retries are recorded instead of slept.
        client.set_pause([this](std::chrono::milliseconds d) { pauses.push_back(d); });
    }

    // A session that already has its account, as after ensure_account().
    void registered() { session.set_account_url(account_url); }

    FakeHttp http;
    AcmeSession session;
    AcmeClient client;
    std::vector<std::chrono::milliseconds> pauses;
};

TEST_F(AcmeClientTest, DirectoryParsing) {
    http.queue_directory();
    const Directory& d = client.directory();
    EXPECT_EQ(d.new_nonce, nonce_url);
    EXPECT_EQ(d.new_account, account_endpoint);
    EXPECT_EQ(d.new_order, order_endpoint);
    EXPECT_EQ(d.revoke_cert, "https://ca.test/revoke");
    EXPECT_EQ(d.key_change, "https://ca.test/key-change");
    EXPECT_EQ(d.renewal_info, "https://ca.test/ari");
    EXPECT_EQ(d.terms_of_service, "https://ca.test/tos.pdf");
    EXPECT_TRUE(d.external_account_required);
    EXPECT_EQ(d.profiles, (std::vector<std::string>{"classic", "shortlived"}));

    ASSERT_EQ(http.requests.size(), 1u);
    EXPECT_EQ(http.requests[0].method, "GET");
    EXPECT_EQ(http.requests[0].url, dir_url);

    // Cached in the client and in the session: no further requests.
    client.directory();
    AcmeClient other(http, session);
    EXPECT_EQ(other.directory().new_order, order_endpoint);
    EXPECT_EQ(http.requests.size(), 1u);
    ASSERT_TRUE(session.directory());
    EXPECT_EQ(session.directory()->renewal_info, "https://ca.test/ari");
}

TEST_F(AcmeClientTest, DirectoryWithoutOptionalMembers) {
    http.queue(200, R"({"newNonce":"https://ca.test/nonce","newAccount":"https://ca.test/a",
                        "newOrder":"https://ca.test/o"})");
    const Directory& d = client.directory();
    EXPECT_TRUE(d.renewal_info.empty());
    EXPECT_TRUE(d.terms_of_service.empty());
    EXPECT_FALSE(d.external_account_required);
    EXPECT_TRUE(d.profiles.empty());
}

TEST_F(AcmeClientTest, DirectoryErrorsNameTheUrl) {
    auto expect_error = [this](long status, const std::string& body, const std::string& what) {
        FakeHttp h;
        h.queue(status, body);
        AcmeSession s(dir_url, session.account_key(), "test/1.0");
        AcmeClient c(h, s);
        try {
            c.directory();
            ADD_FAILURE() << "no exception for " << what;
        } catch (const Error& e) {
            std::string msg = e.what();
            EXPECT_NE(msg.find("directory https://ca.test/dir is not an ACME directory"),
                      std::string::npos)
                << msg;
            EXPECT_NE(msg.find(what), std::string::npos) << msg;
        }
        EXPECT_FALSE(s.directory());
    };
    expect_error(404, "not found", "404");
    expect_error(200, "<html>hello</html>", "");
    expect_error(200, R"({"newNonce":"https://ca.test/n","newAccount":"https://ca.test/a"})",
                 "newOrder");
}

TEST_F(AcmeClientTest, NonceFromHeadThenFromReplayNonce) {
    registered();
    http.queue_directory();
    http.queue_nonce("nonce-1");
    http.queue(200, pending_order, {{"replay-nonce", "nonce-2"}});
    http.queue(200, pending_order, {{"replay-nonce", "nonce-3"}});

    client.get_order(order_url);
    client.get_order(order_url);

    ASSERT_EQ(http.requests.size(), 4u);
    EXPECT_EQ(http.requests[1].method, "HEAD");
    EXPECT_EQ(http.requests[1].url, nonce_url);
    EXPECT_EQ(http.requests[2].method, "POST");
    EXPECT_EQ(http.requests[3].method, "POST");  // no second HEAD
    EXPECT_EQ(decode_jws(http.requests[2]).header.get_string("nonce"), "nonce-1");
    EXPECT_EQ(decode_jws(http.requests[3]).header.get_string("nonce"), "nonce-2");
    // The last answer's nonce is pooled for the next request.
    EXPECT_EQ(session.take_nonce(), "nonce-3");
    EXPECT_FALSE(session.take_nonce());
}

TEST_F(AcmeClientTest, HeadWithoutReplayNonceFails) {
    registered();
    http.queue_directory();
    http.queue(200, "");
    EXPECT_THROW(client.get_order(order_url), Error);
}

TEST_F(AcmeClientTest, PostHeaders) {
    registered();
    http.queue_directory();
    http.queue_nonce("n");
    http.queue(200, pending_order);
    client.get_order(order_url);
    const HttpRequest& r = http.requests.back();
    EXPECT_EQ(r.url, order_url);
    EXPECT_EQ(request_header(r, "Content-Type"), "application/jose+json");
    Jws jws = decode_jws(r);
    EXPECT_EQ(jws.header.get_string("url"), order_url);
    EXPECT_EQ(jws.header.get_string("alg"), "ES256");
}

TEST_F(AcmeClientTest, BadNonceIsRetriedWithTheNonceItCarried) {
    registered();
    http.queue_directory();
    http.queue_nonce("stale");
    http.queue(400, problem_json("badNonce", "JWS has an invalid anti-replay nonce", 400),
               {{"replay-nonce", "fresh"}, {"content-type", "application/problem+json"}});
    http.queue(200, pending_order, {{"replay-nonce", "next"}});

    Order o = client.get_order(order_url);
    EXPECT_EQ(o.status, "pending");

    ASSERT_EQ(http.requests.size(), 4u);
    EXPECT_EQ(decode_jws(http.requests[2]).header.get_string("nonce"), "stale");
    EXPECT_EQ(decode_jws(http.requests[3]).header.get_string("nonce"), "fresh");
    EXPECT_EQ(session.take_nonce(), "next");
}

TEST_F(AcmeClientTest, BadNonceGivesUpAfterTenAttempts) {
    registered();
    http.queue_directory();
    http.queue_nonce("n0");
    for (int i = 1; i <= 10; ++i) {
        http.queue(400, problem_json("badNonce", "bad", 400),
                   {{"replay-nonce", "n" + std::to_string(i)}});
    }
    try {
        client.get_order(order_url);
        FAIL() << "no exception";
    } catch (const CaError& e) {
        EXPECT_TRUE(e.problem.is("badNonce"));
    }
    EXPECT_EQ(http.requests.size(), 2u + 10u);
    EXPECT_TRUE(http.responses.empty());
}

TEST_F(AcmeClientTest, RateLimitedCarriesRetryAfter) {
    registered();
    http.queue_directory();
    http.queue_nonce("n");
    http.queue(429, problem_json("rateLimited", "too many new orders", 429),
               {{"retry-after", "30"}, {"replay-nonce", "n2"}});
    try {
        client.new_order({Identifier{Identifier::Type::dns, "example.test"}});
        FAIL() << "no exception";
    } catch (const CaError& e) {
        EXPECT_EQ(e.problem.type, "urn:ietf:params:acme:error:rateLimited");
        EXPECT_EQ(e.problem.status, 429);
        ASSERT_TRUE(e.retry_after);
        EXPECT_EQ(*e.retry_after, std::chrono::seconds(30));
        EXPECT_NE(std::string(e.what()).find("too many new orders"), std::string::npos);
    }
    EXPECT_EQ(http.requests.size(), 3u);  // not retried
    EXPECT_EQ(session.take_nonce(), "n2");
}

TEST_F(AcmeClientTest, ErrorWithoutProblemDocument) {
    registered();
    http.queue_directory();
    http.queue_nonce("n");
    http.queue(503, "<html>down for maintenance</html>");
    for (int i = 0; i < 2; ++i) {
        http.queue_nonce("n" + std::to_string(i));  // the 503 carried none
        http.queue(503, "<html>down for maintenance</html>");
    }
    try {
        client.get_order(order_url);
        FAIL() << "no exception";
    } catch (const CaError& e) {
        EXPECT_EQ(e.problem.status, 503);
        EXPECT_FALSE(e.retry_after);
        EXPECT_NE(std::string(e.what()).find("down for maintenance"), std::string::npos);
    }
}

TEST_F(AcmeClientTest, ServerErrorsAreRetriedInPlace) {
    registered();
    http.queue_directory();
    http.queue_nonce("n1");
    http.queue(500, problem_json("serverInternal", "oops", 500), {{"replay-nonce", "n2"}});
    http.queue(503, "busy", {{"retry-after", "5"}});  // no nonce: HEAD again
    http.queue_nonce("n3");
    http.queue(200, pending_order, {{"replay-nonce", "n4"}});
    Order o = client.get_order(order_url);
    EXPECT_EQ(o.status, "pending");
    // 1 s, then the Retry-After of 5 s (longer than the 3 s step).
    EXPECT_EQ(pauses, (std::vector<std::chrono::milliseconds>{std::chrono::seconds(1),
                                                              std::chrono::seconds(5)}));
    ASSERT_EQ(http.requests.size(), 6u);
    EXPECT_EQ(decode_jws(http.requests[3]).header.get_string("nonce"), "n2");
    EXPECT_EQ(http.requests[4].method, "HEAD");
    EXPECT_EQ(decode_jws(http.requests[5]).header.get_string("nonce"), "n3");
}

TEST_F(AcmeClientTest, LongRetryAfterIsLeftToTheScheduler) {
    registered();
    http.queue_directory();
    http.queue_nonce("n1");
    http.queue(503, problem_json("serverInternal", "maintenance", 503),
               {{"retry-after", "120"}, {"replay-nonce", "n2"}});
    try {
        client.get_order(order_url);
        FAIL() << "no exception";
    } catch (const CaError& e) {
        ASSERT_TRUE(e.retry_after);
        EXPECT_EQ(*e.retry_after, std::chrono::seconds(120));
    }
    EXPECT_TRUE(pauses.empty());
}

// A CA down for maintenance answers newNonce with 503 and Retry-After as
// well: that is a CA error with its Retry-After, which the scheduler honours
// (it was a plain error, and the next attempt came after the backoff).
TEST_F(AcmeClientTest, NewNonceServerErrorCarriesRetryAfter) {
    registered();
    http.queue_directory();
    http.queue(503, "", {{"retry-after", "120"}});
    try {
        client.get_order(order_url);
        FAIL() << "no exception";
    } catch (const CaError& e) {
        EXPECT_EQ(e.problem.status, 503);
        ASSERT_TRUE(e.retry_after);
        EXPECT_EQ(*e.retry_after, std::chrono::seconds(120));
        EXPECT_NE(
            std::string(e.what()).find("newNonce https://ca.test/nonce answered HTTP status 503"),
            std::string::npos)
            << e.what();
    }
    EXPECT_TRUE(pauses.empty());  // longer than what is retried in place
    EXPECT_EQ(http.requests.size(), 2u);
}

TEST_F(AcmeClientTest, NewNonceServerErrorsAreRetriedInPlace) {
    registered();
    http.queue_directory();
    for (int i = 0; i < 3; ++i) {
        http.queue(500, problem_json("serverInternal", "no nonces today", 500));
    }
    try {
        client.get_order(order_url);
        FAIL() << "no exception";
    } catch (const CaError& e) {
        EXPECT_TRUE(e.problem.is("serverInternal"));
        EXPECT_FALSE(e.retry_after);
        EXPECT_NE(std::string(e.what()).find("no nonces today"), std::string::npos) << e.what();
    }
    EXPECT_EQ(pauses, (std::vector<std::chrono::milliseconds>{std::chrono::seconds(1),
                                                              std::chrono::seconds(3)}));
}

TEST_F(AcmeClientTest, TransportErrorsAreRetriedInPlace) {
    // FakeHttp throws acme::Error, as a refused connection does, when
    // nothing is queued: three attempts, then the error.
    EXPECT_THROW(client.directory(), Error);
    EXPECT_EQ(http.requests.size(), 3u);
    EXPECT_EQ(pauses, (std::vector<std::chrono::milliseconds>{std::chrono::seconds(1),
                                                              std::chrono::seconds(3)}));
}

TEST_F(AcmeClientTest, DirectoryServerErrorIsACaError) {
    for (int i = 0; i < 3; ++i) http.queue(502, "bad gateway", {{"retry-after", "2"}});
    try {
        client.directory();
        FAIL() << "no exception";
    } catch (const CaError& e) {
        EXPECT_EQ(e.problem.status, 502);
        EXPECT_NE(std::string(e.what()).find("https://ca.test/dir answered HTTP status 502"),
                  std::string::npos)
            << e.what();
    }
}

TEST_F(AcmeClientTest, RenewalInfo) {
    http.queue_directory();
    http.queue(200, R"({"suggestedWindow": {"start": "2025-01-02T03:04:05Z",
                                             "end": "2025-01-03T03:04:05.123+01:00"},
                        "explanationURL": "https://ca.test/why"})",
               {{"retry-after", "21600"}});
    RenewalInfo info = client.renewal_info("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
    EXPECT_EQ(info.window_start, 1735787045);
    EXPECT_EQ(info.window_end, 1735787045 + 86400 - 3600);
    EXPECT_EQ(info.explanation_url, "https://ca.test/why");
    ASSERT_TRUE(info.retry_after);
    EXPECT_EQ(*info.retry_after, std::chrono::seconds(21600));
    ASSERT_EQ(http.requests.size(), 2u);
    EXPECT_EQ(http.requests[1].method, "GET");
    EXPECT_EQ(http.requests[1].url, "https://ca.test/ari/aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
}

TEST_F(AcmeClientTest, RenewalInfoErrors) {
    http.queue_directory();
    client.directory();
    auto expect_error = [this](long status, const std::string& body, const std::string& what) {
        http.queue(status, body);
        try {
            client.renewal_info("a.b");
            ADD_FAILURE() << "no exception for " << body;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        }
    };
    expect_error(200, R"({"suggestedWindow": {"start": "2025-01-03T00:00:00Z",
                                              "end": "2025-01-02T00:00:00Z"}})",
                 "has no valid suggestedWindow");
    expect_error(200, R"({"suggestedWindow": {"start": "yesterday", "end": "today"}})",
                 "has no valid suggestedWindow");
    expect_error(200, R"({})", "has no valid suggestedWindow");
    expect_error(
        404, problem_json("malformed", "no such certificate", 404),
        "renewalInfo https://ca.test/ari/a.b answered HTTP status 404: no such certificate");

    FakeHttp h;
    h.queue(200, R"({"newNonce":"https://ca.test/n","newAccount":"https://ca.test/a",
                     "newOrder":"https://ca.test/o"})");
    AcmeSession s(dir_url, session.account_key(), "test/1.0");
    AcmeClient c(h, s);
    EXPECT_THROW(c.renewal_info("a.b"), Error);
    EXPECT_EQ(h.requests.size(), 1u);
}

TEST_F(AcmeClientTest, PostWithoutAccountFails) {
    EXPECT_THROW(client.get_order(order_url), Error);
    EXPECT_TRUE(http.requests.empty());
}

TEST_F(AcmeClientTest, NewAccountUsesJwkThenKid) {
    http.queue_directory();
    http.queue_nonce("n1");
    http.queue(201, R"({"status":"valid","contact":["mailto:admin@example.test"]})",
               {{"location", account_url}, {"replay-nonce", "n2"}});
    http.queue(200, pending_order, {{"replay-nonce", "n3"}});

    AccountSettings settings;
    settings.contacts = {"mailto:admin@example.test"};
    settings.accept_terms = true;
    EXPECT_EQ(client.ensure_account(settings), account_url);
    EXPECT_EQ(session.account_url(), account_url);

    ASSERT_EQ(http.requests.size(), 3u);
    const HttpRequest& reg = http.requests[2];
    EXPECT_EQ(reg.url, account_endpoint);
    Jws jws = decode_jws(reg);
    EXPECT_TRUE(jws.header.get("jwk").is_object());
    EXPECT_EQ(jws.header.get("jwk").dump(), session.account_key().jwk());
    EXPECT_TRUE(jws.header.get("kid").is_null());
    EXPECT_EQ(jws.header.get_string("url"), account_endpoint);
    Json payload = Json::parse(jws.payload);
    EXPECT_EQ(payload.get_bool("termsOfServiceAgreed"), true);
    auto contacts = payload.get("contact").items();
    ASSERT_EQ(contacts.size(), 1u);
    EXPECT_EQ(contacts[0].as_string(), "mailto:admin@example.test");

    // Registered once per session.
    EXPECT_EQ(client.ensure_account(settings), account_url);
    EXPECT_EQ(http.requests.size(), 3u);

    client.get_order(order_url);
    Jws later = decode_jws(http.requests.back());
    EXPECT_EQ(later.header.get_string("kid"), account_url);
    EXPECT_TRUE(later.header.get("jwk").is_null());
    EXPECT_EQ(later.header.get_string("nonce"), "n2");
}

TEST_F(AcmeClientTest, NewAccountWithExternalAccountBinding) {
    http.queue_directory();
    http.queue_nonce("n1");
    http.queue(201, R"({"status":"valid"})", {{"location", account_url}, {"replay-nonce", "n2"}});

    const std::string mac_key =
        base64url_decode("zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W");
    for (const char* alg : {"HS256", "HS512"}) {
        SCOPED_TRACE(alg);
        AccountSettings settings;
        settings.eab = ExternalAccountBinding{"kid-1", mac_key, alg};
        if (std::string(alg) == "HS512") {
            session.set_account_url("");
            http.queue(200, R"({"status":"valid"})", {{"location", account_url}});
        }
        EXPECT_EQ(client.ensure_account(settings), account_url);

        Json payload = Json::parse(decode_jws(http.requests.back()).payload);
        Json eab = payload.get("externalAccountBinding");
        ASSERT_TRUE(eab.is_object());
        std::string protected64 = eab.get_string("protected").value_or("");
        std::string payload64 = eab.get_string("payload").value_or("");
        Json header = Json::parse(base64url_decode(protected64));
        EXPECT_EQ(header.get_string("alg"), alg);
        EXPECT_EQ(header.get_string("kid"), "kid-1");
        EXPECT_EQ(header.get_string("url"), account_endpoint);
        EXPECT_TRUE(header.get("nonce").is_null());  // section 7.3.4: no nonce
        EXPECT_EQ(base64url_decode(payload64), session.account_key().jwk());
        EXPECT_EQ(eab.get_string("signature"),
                  base64url_encode(hmac(alg, mac_key, protected64 + "." + payload64)));
        // The MAC key itself never goes over the wire.
        EXPECT_EQ(http.requests.back().body.find(base64url_encode(mac_key)), std::string::npos);
    }
}

TEST_F(AcmeClientTest, CertificateDownloadReportsAlternates) {
    registered();
    http.queue_directory();
    http.queue_nonce("n1");
    http.queue(200, "PEM",
               {{"link", "<https://ca.test/cert/1/1>;rel=\"alternate\""},
                {"link", "<https://ca.test/dir>;rel=\"index\""},
                {"link", "<https://ca.test/cert/1/2>; rel=\"alternate\""}});
    std::vector<std::string> alternates;
    EXPECT_EQ(client.download_certificate(cert_url, &alternates), "PEM");
    EXPECT_EQ(alternates,
              (std::vector<std::string>{"https://ca.test/cert/1/1", "https://ca.test/cert/1/2"}));
}

TEST_F(AcmeClientTest, ExistingAccountAndNoTerms) {
    http.queue_directory();
    http.queue_nonce("n1");
    http.queue(200, R"({"status":"valid"})", {{"location", account_url}});
    EXPECT_EQ(client.ensure_account(AccountSettings{}), account_url);
    Json payload = Json::parse(decode_jws(http.requests.back()).payload);
    EXPECT_FALSE(payload.get_bool("termsOfServiceAgreed"));
}

TEST_F(AcmeClientTest, NewAccountWithoutLocationFails) {
    http.queue_directory();
    http.queue_nonce("n1");
    http.queue(201, R"({"status":"valid"})");
    EXPECT_THROW(client.ensure_account(AccountSettings{}), Error);
    EXPECT_TRUE(session.account_url().empty());
}

TEST_F(AcmeClientTest, UserActionRequiredIsACaError) {
    http.queue_directory();
    http.queue_nonce("n1");
    http.queue(403, problem_json("userActionRequired", "must agree to terms", 403));
    try {
        client.ensure_account(AccountSettings{});
        FAIL() << "no exception";
    } catch (const CaError& e) {
        EXPECT_TRUE(e.problem.is("userActionRequired"));
    }
}

TEST_F(AcmeClientTest, PostAsGetHasEmptyPayload) {
    registered();
    http.queue_directory();
    http.queue_nonce("n");
    http.queue(200, pending_authz);
    client.get_authorization(authz_url);
    Json body = Json::parse(http.requests.back().body);
    EXPECT_EQ(body.get_string("payload"), "");
    EXPECT_EQ(decode_jws(http.requests.back()).payload, "");
}

TEST_F(AcmeClientTest, OrderParsing) {
    registered();
    http.queue_directory();
    http.queue_nonce("n");
    http.queue(200, R"({
      "status": "invalid",
      "identifiers": [{"type": "dns", "value": "example.test"}],
      "authorizations": ["https://ca.test/authz/1"],
      "finalize": "https://ca.test/order/1/finalize",
      "certificate": "https://ca.test/cert/1",
      "error": {"type": "urn:ietf:params:acme:error:unauthorized", "detail": "nope",
                "status": 403}
    })",
               {{"retry-after", "7"}});
    Order o = client.get_order(order_url);
    EXPECT_EQ(o.url, order_url);
    EXPECT_EQ(o.status, "invalid");
    ASSERT_EQ(o.identifiers.size(), 1u);
    EXPECT_EQ(o.identifiers[0].value, "example.test");
    EXPECT_EQ(o.authorizations, (std::vector<std::string>{authz_url}));
    EXPECT_EQ(o.finalize, finalize_url);
    EXPECT_EQ(o.certificate, cert_url);
    ASSERT_TRUE(o.error);
    EXPECT_TRUE(o.error->is("unauthorized"));
    EXPECT_EQ(o.error->detail, "nope");
    ASSERT_TRUE(o.retry_after);
    EXPECT_EQ(*o.retry_after, std::chrono::seconds(7));
}

TEST_F(AcmeClientTest, NewOrderPayloadAndLocation) {
    registered();
    http.queue_directory();
    http.queue_nonce("n");
    http.queue(201, pending_order, {{"location", order_url}});
    Order o = client.new_order({Identifier{Identifier::Type::dns, "example.test"},
                                Identifier{Identifier::Type::ip, "192.0.2.1"}},
                               OrderOptions{"shortlived", "aki.serial"});
    EXPECT_EQ(o.url, order_url);
    EXPECT_EQ(o.status, "pending");
    ASSERT_EQ(o.identifiers.size(), 2u);
    EXPECT_EQ(o.identifiers[1].type, Identifier::Type::ip);
    EXPECT_EQ(o.identifiers[1].value, "192.0.2.1");
    EXPECT_EQ(o.authorizations.size(), 2u);
    EXPECT_FALSE(o.error);
    EXPECT_FALSE(o.retry_after);

    EXPECT_EQ(http.requests.back().url, order_endpoint);
    Json payload = Json::parse(decode_jws(http.requests.back()).payload);
    auto ids = payload.get("identifiers").items();
    ASSERT_EQ(ids.size(), 2u);
    EXPECT_EQ(ids[0].get_string("type"), "dns");
    EXPECT_EQ(ids[0].get_string("value"), "example.test");
    EXPECT_EQ(ids[1].get_string("type"), "ip");
    EXPECT_EQ(payload.get_string("profile"), "shortlived");
    EXPECT_EQ(payload.get_string("replaces"), "aki.serial");
}

TEST_F(AcmeClientTest, RefusedReplacementIsOrderedWithout) {
    registered();
    http.queue_directory();
    http.queue_nonce("n1");
    // Pebble's answer for a serial it cannot match, after the in-place retries.
    for (int i = 2; i <= 4; ++i) {
        http.queue(500, problem_json("serverInternal", "could not find an order", 500),
                   {{"replay-nonce", "n" + std::to_string(i)}});
    }
    http.queue(201, pending_order, {{"location", order_url}});
    std::string refused = "stale";
    Order o = client.new_order_replacing({Identifier{Identifier::Type::dns, "example.test"}},
                                         OrderOptions{"", "aki.serial"}, refused);
    EXPECT_EQ(o.url, order_url);
    EXPECT_NE(refused.find("serverInternal"), std::string::npos) << refused;
    EXPECT_NE(refused.find("could not find an order"), std::string::npos) << refused;
    Json first = Json::parse(decode_jws(http.requests[2]).payload);
    EXPECT_EQ(first.get_string("replaces"), "aki.serial");
    Json last = Json::parse(decode_jws(http.requests.back()).payload);
    EXPECT_TRUE(last.get("replaces").is_null());
}

TEST_F(AcmeClientTest, AcceptedReplacementIsNotRepeated) {
    registered();
    http.queue_directory();
    http.queue_nonce("n1");
    http.queue(201, pending_order, {{"location", order_url}});
    std::string refused = "stale";
    client.new_order_replacing({Identifier{Identifier::Type::dns, "example.test"}},
                               OrderOptions{"", "aki.serial"}, refused);
    EXPECT_EQ(refused, "");
    EXPECT_EQ(http.requests.size(), 3u);  // directory, nonce, newOrder
}

TEST_F(AcmeClientTest, RateLimitedReplacementIsNotWorkedAround) {
    registered();
    http.queue_directory();
    http.queue_nonce("n1");
    http.queue(429, problem_json("rateLimited", "too many", 429),
               {{"replay-nonce", "n2"}, {"retry-after", "3600"}});
    std::string refused;
    try {
        client.new_order_replacing({Identifier{Identifier::Type::dns, "example.test"}},
                                   OrderOptions{"", "aki.serial"}, refused);
        FAIL() << "no exception";
    } catch (const CaError& e) {
        EXPECT_TRUE(e.problem.is("rateLimited"));
    }
    EXPECT_EQ(http.requests.size(), 3u);
}

// A CA that asks for time, or is down for maintenance, gets no second
// newOrder (without "replaces") at once: that ignored its Retry-After.
TEST_F(AcmeClientTest, UnavailableCaGetsNoReplacementWorkaround) {
    struct Case {
        long status;
        Headers headers;
    };
    for (const Case& c : {Case{500, {{"retry-after", "60"}}}, Case{503, {}}}) {
        FakeHttp http;
        AcmeSession session(dir_url, PrivateKey::generate(KeyType::ecdsa256), "test/1.0");
        AcmeClient client(http, session);
        session.set_account_url(account_url);
        client.set_pause([](std::chrono::milliseconds) {});
        http.queue_directory();
        http.queue_nonce("n1");
        for (int i = 0; i < 3; ++i) {
            http.queue(c.status, problem_json("serverInternal", "maintenance", int(c.status)),
                       c.headers);
            http.queue_nonce("n" + std::to_string(i + 2));
        }
        std::string refused;
        try {
            client.new_order_replacing({Identifier{Identifier::Type::dns, "example.test"}},
                                       OrderOptions{"", "aki.serial"}, refused);
            FAIL() << "no exception for " << c.status;
        } catch (const CaError& e) {
            EXPECT_EQ(e.problem.status, c.status);
        }
        EXPECT_EQ(refused, "");
        for (const HttpRequest& r : http.requests) {
            if (r.url != order_endpoint) continue;
            Json payload = Json::parse(decode_jws(r).payload);
            EXPECT_EQ(payload.get_string("replaces"), "aki.serial") << c.status;
        }
    }
}

TEST_F(AcmeClientTest, NewOrderWithoutOptionsOmitsThem) {
    registered();
    http.queue_directory();
    http.queue_nonce("n");
    http.queue(201, pending_order, {{"location", order_url}});
    client.new_order({Identifier{Identifier::Type::dns, "example.test"}});
    Json payload = Json::parse(decode_jws(http.requests.back()).payload);
    EXPECT_TRUE(payload.get("profile").is_null());
    EXPECT_TRUE(payload.get("replaces").is_null());
}

TEST_F(AcmeClientTest, AuthorizationParsing) {
    registered();
    http.queue_directory();
    http.queue_nonce("n");
    http.queue(200, pending_authz, {{"retry-after", "3"}});
    Authorization a = client.get_authorization(authz_url);
    EXPECT_EQ(a.url, authz_url);
    EXPECT_EQ(a.status, "pending");
    EXPECT_EQ(a.identifier.type, Identifier::Type::dns);
    EXPECT_EQ(a.identifier.value, "example.test");
    EXPECT_TRUE(a.wildcard);
    ASSERT_EQ(a.challenges.size(), 2u);
    ASSERT_TRUE(a.retry_after);
    EXPECT_EQ(*a.retry_after, std::chrono::seconds(3));

    const Challenge* http01 = a.find("http-01");
    ASSERT_NE(http01, nullptr);
    EXPECT_EQ(http01->url, chall_url);
    EXPECT_EQ(http01->token, "tok-1");
    EXPECT_EQ(http01->status, "pending");
    EXPECT_FALSE(http01->error);
    EXPECT_EQ(a.find("tls-alpn-01"), nullptr);

    std::optional<Problem> err = a.first_error();
    ASSERT_TRUE(err);
    EXPECT_TRUE(err->is("dns"));
    EXPECT_EQ(err->detail, "no TXT record");
}

TEST_F(AcmeClientTest, FirstErrorEmptyWithoutErrors) {
    Authorization a;
    a.challenges.push_back(
        Challenge{"http-01", chall_url, "t", "pending", std::nullopt, {}, false});
    EXPECT_FALSE(a.first_error());
}

TEST_F(AcmeClientTest, FullFlow) {
    http.queue_directory();
    http.queue_nonce("n1");
    http.queue(201, R"({"status":"valid"})", {{"location", account_url}, {"replay-nonce", "n2"}});
    http.queue(201, R"({"status":"pending","identifiers":[{"type":"dns","value":"example.test"}],
                        "authorizations":["https://ca.test/authz/1"],
                        "finalize":"https://ca.test/order/1/finalize"})",
               {{"location", order_url}, {"replay-nonce", "n3"}});
    http.queue(200, R"({"status":"pending","identifier":{"type":"dns","value":"example.test"},
                        "challenges":[{"type":"http-01","url":"https://ca.test/chall/1",
                                       "token":"tok-1","status":"pending"}]})",
               {{"replay-nonce", "n4"}});
    http.queue(200, R"({"type":"http-01","url":"https://ca.test/chall/1","token":"tok-1",
                        "status":"processing"})",
               {{"replay-nonce", "n5"}});
    http.queue(200, R"({"status":"ready","identifiers":[{"type":"dns","value":"example.test"}],
                        "authorizations":["https://ca.test/authz/1"],
                        "finalize":"https://ca.test/order/1/finalize"})",
               {{"replay-nonce", "n6"}});
    http.queue(200, R"({"status":"processing","identifiers":[{"type":"dns","value":"example.test"}],
                        "authorizations":["https://ca.test/authz/1"],
                        "finalize":"https://ca.test/order/1/finalize"})",
               {{"replay-nonce", "n7"}, {"retry-after", "1"}, {"location", order_url}});
    http.queue(200, R"({"status":"valid","identifiers":[{"type":"dns","value":"example.test"}],
                        "authorizations":["https://ca.test/authz/1"],
                        "finalize":"https://ca.test/order/1/finalize",
                        "certificate":"https://ca.test/cert/1"})",
               {{"replay-nonce", "n8"}});
    const std::string pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    http.queue(200, pem,
               {{"replay-nonce", "n9"}, {"content-type", "application/pem-certificate-chain"}});

    AccountSettings settings;
    settings.accept_terms = true;
    client.ensure_account(settings);

    Order order = client.new_order({Identifier{Identifier::Type::dns, "example.test"}});
    EXPECT_EQ(order.url, order_url);
    ASSERT_EQ(order.authorizations.size(), 1u);

    Authorization authz = client.get_authorization(order.authorizations[0]);
    const Challenge* ch = authz.find("http-01");
    ASSERT_NE(ch, nullptr);
    std::string ka = key_authorization(ch->token, session.account_key());
    EXPECT_EQ(ka, "tok-1." + session.account_key().thumbprint());

    Challenge answered = client.respond(*ch);
    EXPECT_EQ(answered.status, "processing");
    EXPECT_EQ(answered.url, chall_url);
    Jws respond_jws = decode_jws(http.requests.back());
    EXPECT_EQ(respond_jws.payload, "{}");
    EXPECT_EQ(http.requests.back().url, chall_url);

    order = client.get_order(order.url);
    EXPECT_EQ(order.status, "ready");
    EXPECT_EQ(order.url, order_url);

    const std::string csr = std::string("\x30\x82\x01\x00 fake der \xff\xfe", 17);
    Order finalized = client.finalize(order, csr);
    EXPECT_EQ(finalized.status, "processing");
    EXPECT_EQ(finalized.url, order_url);
    ASSERT_TRUE(finalized.retry_after);
    EXPECT_EQ(*finalized.retry_after, std::chrono::seconds(1));
    EXPECT_EQ(http.requests.back().url, finalize_url);
    Json fin_payload = Json::parse(decode_jws(http.requests.back()).payload);
    EXPECT_EQ(fin_payload.get_string("csr"), base64url_encode(csr));
    EXPECT_EQ(base64url_decode(fin_payload.get_string("csr").value()), csr);

    order = client.get_order(finalized.url);
    EXPECT_EQ(order.status, "valid");
    EXPECT_EQ(order.certificate, cert_url);

    EXPECT_EQ(client.download_certificate(order.certificate), pem);
    const HttpRequest& dl = http.requests.back();
    EXPECT_EQ(dl.url, cert_url);
    EXPECT_EQ(request_header(dl, "Accept"), "application/pem-certificate-chain");
    EXPECT_EQ(decode_jws(dl).payload, "");

    // One HEAD for the whole flow: every later nonce came from Replay-Nonce.
    int heads = 0;
    for (const HttpRequest& r : http.requests) heads += r.method == "HEAD";
    EXPECT_EQ(heads, 1);
    EXPECT_EQ(http.requests.size(), 10u);
    EXPECT_EQ(decode_jws(dl).header.get_string("nonce"), "n8");
    EXPECT_EQ(decode_jws(dl).header.get_string("kid"), account_url);
    EXPECT_TRUE(http.responses.empty());
}

TEST_F(AcmeClientTest, KeyAuthorizationFormat) {
    std::string tp = session.account_key().thumbprint();
    EXPECT_EQ(tp.size(), 43u);  // base64url of 32 bytes, unpadded
    EXPECT_EQ(
        tp.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
        std::string::npos);
    EXPECT_EQ(
        key_authorization("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", session.account_key()),
        "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA." + tp);
}

TEST(AcmeSessionTest, NoncePoolIsBounded) {
    AcmeSession s(dir_url, PrivateKey::generate(KeyType::ecdsa256), "test/1.0");
    EXPECT_FALSE(s.take_nonce());
    s.put_nonce("");  // ignored
    EXPECT_FALSE(s.take_nonce());
    for (int i = 0; i < 40; ++i) s.put_nonce("n" + std::to_string(i));
    int taken = 0;
    std::optional<std::string> first = s.take_nonce();
    EXPECT_EQ(first, "n39");  // newest first
    ++taken;
    while (s.take_nonce()) ++taken;
    EXPECT_GE(taken, 1);
    EXPECT_LE(taken, 16);
}

TEST(AcmeSessionTest, Accessors) {
    AcmeSession s(dir_url, PrivateKey::generate(KeyType::ecdsa256), "ua/2");
    EXPECT_EQ(s.directory_url(), dir_url);
    EXPECT_EQ(s.user_agent(), "ua/2");
    EXPECT_FALSE(s.directory());
    EXPECT_TRUE(s.account_url().empty());
    s.set_account_url(account_url);
    EXPECT_EQ(s.account_url(), account_url);
    Directory d;
    d.new_nonce = nonce_url;
    s.set_directory(d);
    ASSERT_TRUE(s.directory());
    EXPECT_EQ(s.directory()->new_nonce, nonce_url);
}

// The parse functions on their own (what the fuzz targets call): tolerant of
// missing and mistyped members, strict only about the document being an
// object.
TEST(AcmeDocuments, ParseOrderKeepsWhatIsThere) {
    Order o = parse_order(
        R"({"status":"pending","identifiers":[{"type":"dns","value":"a.test"},{"type":"ip",)"
        R"("value":"127.0.0.1"},7],"authorizations":["https://ca.test/authz/1",3],)"
        R"("finalize":5,"error":{"type":"urn:ietf:params:acme:error:malformed"}})");
    EXPECT_EQ(o.status, "pending");
    ASSERT_EQ(o.identifiers.size(), 3u);
    EXPECT_EQ(o.identifiers[1].type, Identifier::Type::ip);
    EXPECT_EQ(o.authorizations, std::vector<std::string>{"https://ca.test/authz/1"});
    EXPECT_EQ(o.finalize, "");
    ASSERT_TRUE(o.error);
    EXPECT_TRUE(o.error->is("malformed"));
    EXPECT_THROW(parse_order("[]"), Error);
    EXPECT_THROW(parse_order("{"), Error);
}

TEST(AcmeDocuments, ParseAuthorizationAndDirectory) {
    Authorization a = parse_authorization(
        R"({"identifier":{"type":"dns","value":"a.test"},"status":"pending","wildcard":true,)"
        R"("challenges":[{"type":"http-01","url":"u","token":"t","status":"pending"},"x"]})");
    EXPECT_EQ(a.identifier.value, "a.test");
    EXPECT_TRUE(a.wildcard);
    ASSERT_EQ(a.challenges.size(), 2u);
    EXPECT_EQ(a.challenges[0].token, "t");
    EXPECT_EQ(a.challenges[1].type, "");
    EXPECT_THROW(parse_directory(R"({"newNonce":"n","newAccount":"a"})"), Error);
    EXPECT_EQ(parse_directory(R"({"newNonce":"n","newAccount":"a","newOrder":"o"})").new_order,
              "o");
}

TEST(AcmeDocuments, RenewalInfoWithoutValidWindowIsEmpty) {
    RenewalInfo ok = parse_renewal_info(
        R"({"suggestedWindow":{"start":"2025-01-02T00:00:00Z","end":"2025-01-03T00:00:00Z"}})");
    EXPECT_EQ(ok.window_end - ok.window_start, 86400);
    RenewalInfo reversed = parse_renewal_info(
        R"({"suggestedWindow":{"start":"2025-01-03T00:00:00Z","end":"2025-01-02T00:00:00Z"}})");
    EXPECT_EQ(reversed.window_start, 0);
    EXPECT_EQ(reversed.window_end, 0);
    EXPECT_EQ(parse_renewal_info("{}").window_end, 0);
}

}  // namespace
}  // namespace acme
