// RFC 8555 protocol client. An AcmeSession holds what one issuer's orders
// share (directory, account key and URL, nonce pool) and is thread-safe; an
// AcmeClient binds a session to one HttpClient and is used by one thread.
#pragma once

#include <chrono>
#include <ctime>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto.h"
#include "http.h"
#include "identifier.h"
#include "problem.h"

namespace acme {

struct Directory {
    std::string new_nonce, new_account, new_order, revoke_cert, key_change;
    std::string renewal_info;      // RFC 9773; empty when not offered
    std::string terms_of_service;  // meta.termsOfService
    bool external_account_required = false;
    std::vector<std::string> profiles;  // names in meta.profiles
};

struct Challenge {
    std::string type;  // "http-01", "tls-alpn-01", "dns-01"
    std::string url;
    std::string token;
    std::string status;
    std::optional<Problem> error;
    // dns-persist-01: the names the CA accepts in the standing record.
    std::vector<std::string> issuer_domain_names;
    bool wildcard = false;  // its authorization's "wildcard"
};

struct Authorization {
    std::string url;
    Identifier identifier;
    std::string status;  // pending, valid, invalid, deactivated, expired, revoked
    bool wildcard = false;
    std::vector<Challenge> challenges;
    std::optional<std::chrono::seconds> retry_after;

    const Challenge* find(std::string_view type) const;
    // The first problem found in a challenge, for error messages.
    std::optional<Problem> first_error() const;
};

struct Order {
    std::string url;
    std::string status;  // pending, ready, processing, valid, invalid
    std::vector<Identifier> identifiers;
    std::vector<std::string> authorizations;
    std::string finalize;
    std::string certificate;
    std::optional<Problem> error;
    std::optional<std::chrono::seconds> retry_after;
};

// Optional newOrder members: "profile" (draft-ietf-acme-profiles, one of
// Directory::profiles) and "replaces" (RFC 9773 ARI certificate ID of the
// certificate this order renews). Empty strings are left out.
struct OrderOptions {
    std::string profile;
    std::string replaces;
};

// External Account Binding (RFC 8555 section 7.3.4): the key identifier and
// MAC key a CA hands out to tie the ACME account to an account of its own.
struct ExternalAccountBinding {
    std::string kid;
    std::string mac_key;        // raw bytes (decoded from base64url)
    std::string alg = "HS256";  // "HS256", "HS384" or "HS512"
};

// RFC 9773 renewal information: the window in which the CA wants the
// certificate renewed, and when to ask again.
struct RenewalInfo {
    std::time_t window_start = 0;
    std::time_t window_end = 0;
    std::string explanation_url;  // empty when not given
    std::optional<std::chrono::seconds> retry_after;
};

struct AccountSettings {
    std::vector<std::string> contacts;  // full URIs, e.g. "mailto:admin@example.test"
    bool accept_terms = false;
    std::optional<ExternalAccountBinding> eab;
};

class AcmeSession {
public:
    AcmeSession(std::string directory_url, PrivateKey account_key, std::string user_agent);

    const std::string& directory_url() const { return directory_url_; }
    const PrivateKey& account_key() const { return account_key_; }
    std::string user_agent() const { return user_agent_; }

    // Filled by AcmeClient; guarded internally.
    std::optional<Directory> directory() const;
    void set_directory(Directory d);
    std::string account_url() const;  // the JWS "kid"; empty before registration
    void set_account_url(std::string url);

    std::optional<std::string> take_nonce();
    void put_nonce(std::string nonce);

    // Serialises account registration across threads.
    std::mutex& registration_mutex() { return registration_mutex_; }

private:
    const std::string directory_url_;
    const PrivateKey account_key_;
    const std::string user_agent_;
    mutable std::mutex mutex_;
    std::optional<Directory> directory_;
    std::string account_url_;
    std::vector<std::string> nonces_;
    std::mutex registration_mutex_;
};

class AcmeClient {
public:
    AcmeClient(HttpClient& http, AcmeSession& session) : http_(http), session_(session) {}

    // How the client waits between in-place retries (default: sleep). The
    // engine passes one that gives up when it is stopped.
    using Pause = std::function<void(std::chrono::milliseconds)>;
    void set_pause(Pause pause) { pause_ = std::move(pause); }

    // GET the directory (following redirects) unless the session has it.
    const Directory& directory();

    // newAccount: creates the account or finds the existing one for the key
    // (RFC 8555 7.3 / 7.3.1); stores the URL in the session and returns it.
    // Throws CaError (e.g. userActionRequired when terms are not accepted).
    std::string ensure_account(const AccountSettings& settings);

    Order new_order(const std::vector<Identifier>& identifiers, const OrderOptions& options = {});
    // newOrder for a renewal whose options.replaces names the certificate.
    // ARI must never block a renewal: if the CA refuses the order with any
    // problem but rateLimited (alreadyReplaced, a certificate it cannot
    // match, an error of its own), it goes once more without "replaces",
    // and `refused` gets the CA's reason ("" when it was accepted).
    Order new_order_replacing(const std::vector<Identifier>& identifiers, OrderOptions options,
                              std::string& refused);
    Order get_order(const std::string& url);
    Authorization get_authorization(const std::string& url);
    // Tells the CA to validate (POST {} to the challenge URL).
    Challenge respond(const Challenge& challenge);
    // POST {"csr": base64url(der)} to the order's finalize URL.
    Order finalize(const Order& order, const std::string& csr_der);
    // POST-as-GET of the certificate URL; returns the PEM chain (leaf first).
    // With alternates, also the URLs of the other chains the CA offers for
    // the same certificate (`Link: <url>;rel="alternate"`, section 7.4.2).
    std::string download_certificate(const std::string& url,
                                     std::vector<std::string>* alternates = nullptr);
    // GET {renewalInfo}/{certID} (RFC 9773). Throws Error when the directory
    // has no renewalInfo or the answer has no valid suggestedWindow, CaError
    // for an error status.
    RenewalInfo renewal_info(const std::string& cert_id);

    // Signed POST with nonce handling: takes a nonce from the pool (or HEAD
    // newNonce), keeps every Replay-Nonce, retries badNonce a few times with
    // the fresh nonce. Transport errors and 5xx answers are retried in place
    // twice (after 1 s and 3 s, or a Retry-After of up to 10 s). Throws
    // CaError for status >= 400 with the problem and Retry-After. payload ""
    // means POST-as-GET. use_jwk signs with the JWK instead of the kid
    // (newAccount).
    HttpResponse post(const std::string& url, const std::string& payload, bool use_jwk = false);

private:
    std::string fresh_nonce();
    // An unsigned request with the same in-place retries as post().
    HttpResponse send_retrying(const HttpRequest& request);
    // Whether to retry after in-place attempt `attempt` (1-based) failed with
    // a transport error (no response) or a 5xx; pauses first when so.
    bool retry_in_place(int attempt, const HttpResponse* response);
    // post() with extra request headers (Accept for the certificate download).
    HttpResponse post_with_headers(const std::string& url, const std::string& payload, bool use_jwk,
                                   const std::vector<std::pair<std::string, std::string>>& headers);
    HttpClient& http_;
    AcmeSession& session_;
    Directory directory_cache_;
    Pause pause_;
};

// The CA's JSON documents, parsed as AcmeClient does (public for the unit
// tests and the fuzz targets). Each throws acme::Error when the body is not
// a JSON object, to which the client adds which resource answered; missing
// or mistyped members keep their defaults. URLs and Retry-After come from
// the response, not the body, so the client fills those in.
// parse_directory also throws without newNonce, newAccount or newOrder.
Directory parse_directory(std::string_view body);
Order parse_order(std::string_view body);
Authorization parse_authorization(std::string_view body);
Challenge parse_challenge(std::string_view body);
// A suggestedWindow that is missing or invalid (end not after start, RFC
// 9773 section 4.2) gives window_start == window_end == 0.
RenewalInfo parse_renewal_info(std::string_view body);

// key authorization = token "." thumbprint (RFC 8555 section 8.1)
std::string key_authorization(const std::string& token, const PrivateKey& account_key);

}  // namespace acme
