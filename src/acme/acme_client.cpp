// RFC 8555 protocol client: directory, nonces, signed POSTs with badNonce
// retries, account registration, orders, authorizations, challenges,
// finalization and certificate download. Only the wire protocol lives here;
// deciding what to order and when is the engine's job.
#include "acme_client.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <thread>
#include <utility>

#include "base64url.h"
#include "error.h"
#include "json.h"
#include "jws.h"

namespace acme {

namespace {

// Enough for a burst of concurrent orders; older nonces are the likeliest to
// have expired at the CA, so they are the ones dropped.
constexpr std::size_t max_pooled_nonces = 16;

// Total attempts for one POST when the CA keeps answering badNonce (RFC 8555
// section 6.5 asks clients to retry with the nonce from the error response).
// Each retry costs one round trip; ten make a give-up unlikely even when a
// CA rejects a third of all nonces (0.3^10 per request).
constexpr int max_post_attempts = 10;

// In-place retries of transport errors and 5xx answers: a hiccup of the
// network or the CA should not cost a whole attempt and its backoff. A
// longer Retry-After is left to the engine's scheduler.
constexpr int max_in_place_attempts = 3;
constexpr std::chrono::seconds in_place_delays[max_in_place_attempts - 1] = {
    std::chrono::seconds(1), std::chrono::seconds(3)};
constexpr std::chrono::seconds max_in_place_retry_after{10};

const char* const jose_content_type = "application/jose+json";

Json parse_object(std::string_view body) {
    Json j = Json::parse(body);
    if (!j.is_object()) throw Error("not a JSON object");
    return j;
}

// The body of an answer through one of the parse_* functions.
template <typename Parse>
auto parse_answer(const std::string& what, const std::string& url, const HttpResponse& response,
                  Parse parse) {
    try {
        return parse(response.body);
    } catch (const Error& e) {
        // Say which resource was malformed: jansson's message alone
        // ("'[' or '{' expected near '<'") does not tell the operator much.
        throw Error(what + " " + url + " returned an invalid response (HTTP " +
                    std::to_string(response.status) + "): " + e.what());
    }
}

std::string string_member(const Json& j, std::string_view key) {
    return j.get_string(key).value_or("");
}

std::optional<Problem> problem_member(const Json& j, std::string_view key) {
    Json p = j.get(key);
    if (!p.is_object()) return std::nullopt;
    return Problem::parse(p.dump(), 0);
}

Identifier parse_identifier_object(const Json& j) {
    Identifier id;
    // The CA echoes what we sent; no need to re-validate, just classify.
    id.type = string_member(j, "type") == "ip" ? Identifier::Type::ip : Identifier::Type::dns;
    id.value = string_member(j, "value");
    return id;
}

std::optional<std::chrono::seconds> retry_after_of(const HttpResponse& response) {
    std::string value = response.header("retry-after");
    if (value.empty()) return std::nullopt;
    return parse_retry_after(value, std::time(nullptr));
}

// RFC 3339 date-time ("2025-01-02T03:04:05Z", fraction and offset allowed).
std::optional<std::time_t> parse_rfc3339(const std::string& text) {
    int year, month, day, hour, minute, second, used = 0;
    if (std::sscanf(text.c_str(), "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &year, &month, &day, &hour,
                    &minute, &second, &used) != 6 ||
        used == 0) {
        return std::nullopt;
    }
    std::string rest = text.substr(static_cast<size_t>(used));
    if (!rest.empty() && rest[0] == '.') {
        size_t digits = rest.find_first_not_of("0123456789", 1);
        rest.erase(0, digits == std::string::npos ? rest.size() : digits);
    }
    long offset = 0;
    if (rest == "Z" || rest == "z") {
        offset = 0;
    } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
        int oh = 0, om = 0;
        if (std::sscanf(rest.c_str() + 1, "%2d:%2d", &oh, &om) != 2) return std::nullopt;
        offset = (rest[0] == '-' ? -1 : 1) * (oh * 3600L + om * 60L);
    } else {
        return std::nullopt;
    }
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
        return std::nullopt;
    }
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    return ::timegm(&tm) - offset;
}

Challenge challenge_from(const Json& j) {
    Challenge c;
    c.type = string_member(j, "type");
    c.url = string_member(j, "url");
    c.token = string_member(j, "token");
    c.status = string_member(j, "status");
    c.error = problem_member(j, "error");
    for (const Json& name : j.get("issuer-domain-names").items()) {
        if (name.is_string()) c.issuer_domain_names.push_back(name.as_string());
    }
    return c;
}

Order order_from(const Json& j) {
    Order o;
    o.status = string_member(j, "status");
    for (const Json& id : j.get("identifiers").items()) {
        o.identifiers.push_back(parse_identifier_object(id));
    }
    for (const Json& a : j.get("authorizations").items()) {
        if (a.is_string()) o.authorizations.push_back(a.as_string());
    }
    o.finalize = string_member(j, "finalize");
    o.certificate = string_member(j, "certificate");
    o.error = problem_member(j, "error");
    return o;
}

Json identifiers_json(const std::vector<Identifier>& identifiers) {
    Json ids = Json::array();
    for (const Identifier& id : identifiers) {
        Json entry = Json::object();
        entry.set("type", id.type_name());
        entry.set("value", id.value);
        ids.push(entry);
    }
    return ids;
}

}  // namespace

// ---- AcmeSession ----

AcmeSession::AcmeSession(std::string directory_url, PrivateKey account_key, std::string user_agent)
    : directory_url_(std::move(directory_url)),
      account_key_(std::move(account_key)),
      user_agent_(std::move(user_agent)) {}

std::optional<Directory> AcmeSession::directory() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return directory_;
}

void AcmeSession::set_directory(Directory d) {
    std::lock_guard<std::mutex> lock(mutex_);
    directory_ = std::move(d);
}

std::string AcmeSession::account_url() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return account_url_;
}

void AcmeSession::set_account_url(std::string url) {
    std::lock_guard<std::mutex> lock(mutex_);
    account_url_ = std::move(url);
}

std::optional<std::string> AcmeSession::take_nonce() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (nonces_.empty()) return std::nullopt;
    // Newest first: it is the least likely to have expired.
    std::string nonce = std::move(nonces_.back());
    nonces_.pop_back();
    return nonce;
}

void AcmeSession::put_nonce(std::string nonce) {
    if (nonce.empty()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (nonces_.size() >= max_pooled_nonces) nonces_.erase(nonces_.begin());
    nonces_.push_back(std::move(nonce));
}

// ---- Authorization ----

const Challenge* Authorization::find(std::string_view type) const {
    for (const Challenge& c : challenges) {
        if (c.type == type) return &c;
    }
    return nullptr;
}

std::optional<Problem> Authorization::first_error() const {
    for (const Challenge& c : challenges) {
        if (c.error) return c.error;
    }
    return std::nullopt;
}

// ---- AcmeClient ----

const Directory& AcmeClient::directory() {
    // Loaded once per client; a valid directory always has newNonce.
    if (!directory_cache_.new_nonce.empty()) return directory_cache_;
    if (std::optional<Directory> cached = session_.directory()) {
        directory_cache_ = std::move(*cached);
        return directory_cache_;
    }

    const std::string url = session_.directory_url();
    HttpRequest request;
    request.method = "GET";
    request.url = url;
    request.follow_redirects = true;
    HttpResponse response = send_retrying(request);
    if (response.status >= 500) {
        // The CA is there but in trouble: not a configuration error.
        Problem problem = Problem::parse(response.body, static_cast<int>(response.status));
        problem.detail = "directory " + url + " answered HTTP status " +
                         std::to_string(response.status) +
                         (problem.detail.empty() ? "" : ": " + problem.detail);
        throw CaError(std::move(problem), retry_after_of(response));
    }

    // A wrong "uri" in the configuration is the likeliest cause of any
    // failure here, so every message names the URL.
    const std::string prefix = "directory " + url + " is not an ACME directory: ";
    if (response.status != 200) {
        throw Error(prefix + "HTTP status " + std::to_string(response.status));
    }
    Directory d;
    try {
        d = parse_directory(response.body);
    } catch (const Error& e) {
        throw Error(prefix + e.what());
    }

    session_.set_directory(d);
    directory_cache_ = std::move(d);
    return directory_cache_;
}

std::string AcmeClient::fresh_nonce() {
    if (std::optional<std::string> nonce = session_.take_nonce()) return std::move(*nonce);

    const std::string url = directory().new_nonce;
    HttpRequest request;
    request.method = "HEAD";
    request.url = url;
    HttpResponse response = send_retrying(request);
    std::string nonce = response.header("replay-nonce");
    if (nonce.empty() && response.status >= 500) {
        // A CA in trouble (maintenance, overload) answers newNonce too: its
        // status and Retry-After decide the next attempt, as for any request.
        Problem problem = Problem::parse(response.body, static_cast<int>(response.status));
        problem.detail = "newNonce " + url + " answered HTTP status " +
                         std::to_string(response.status) +
                         (problem.detail.empty() ? "" : ": " + problem.detail);
        throw CaError(std::move(problem), retry_after_of(response));
    }
    if (nonce.empty()) {
        throw Error("newNonce " + url + " returned no Replay-Nonce (HTTP status " +
                    std::to_string(response.status) + ")");
    }
    return nonce;
}

HttpResponse AcmeClient::post(const std::string& url, const std::string& payload, bool use_jwk) {
    return post_with_headers(url, payload, use_jwk, {});
}

HttpResponse AcmeClient::post_with_headers(
    const std::string& url, const std::string& payload, bool use_jwk,
    const std::vector<std::pair<std::string, std::string>>& headers) {
    std::string kid;
    if (!use_jwk) {
        kid = session_.account_url();
        if (kid.empty()) throw Error("no ACME account yet for a request to " + url);
    }

    std::string nonce = fresh_nonce();
    int bad_nonces = 0;
    int in_place_failures = 0;
    for (;;) {
        HttpRequest request;
        request.method = "POST";
        request.url = url;
        request.headers.emplace_back("Content-Type", jose_content_type);
        for (const auto& h : headers) request.headers.push_back(h);
        request.body = jws_sign(session_.account_key(), url, nonce, kid, payload);

        HttpResponse response;
        try {
            response = http_.send(request);
        } catch (const Error&) {
            if (!retry_in_place(++in_place_failures, nullptr)) throw;
            // Whether the CA saw the nonce is unknown: take another.
            nonce = fresh_nonce();
            continue;
        }
        std::string replay = response.header("replay-nonce");
        if (response.status < 400) {
            session_.put_nonce(std::move(replay));
            return response;
        }
        if (response.status >= 500 && retry_in_place(++in_place_failures, &response)) {
            nonce = !replay.empty() ? std::move(replay) : fresh_nonce();
            continue;
        }

        Problem problem = Problem::parse(response.body, static_cast<int>(response.status));
        if (problem.is("badNonce") && ++bad_nonces < max_post_attempts) {
            // Use the nonce this very answer carried (RFC 8555 section 6.5):
            // the pool may hold only nonces as stale as the rejected one.
            nonce = !replay.empty() ? std::move(replay) : fresh_nonce();
            continue;
        }
        session_.put_nonce(std::move(replay));
        throw CaError(std::move(problem), retry_after_of(response));
    }
}

std::string AcmeClient::ensure_account(const AccountSettings& settings) {
    std::lock_guard<std::mutex> lock(session_.registration_mutex());
    std::string existing = session_.account_url();
    if (!existing.empty()) return existing;

    const std::string url = directory().new_account;
    Json payload = Json::object();
    if (settings.accept_terms) payload.set("termsOfServiceAgreed", true);
    if (!settings.contacts.empty()) {
        Json contacts = Json::array();
        for (const std::string& c : settings.contacts) contacts.push(Json::string(c));
        payload.set("contact", contacts);
    }
    if (settings.eab) {
        payload.set("externalAccountBinding", Json::parse(jws_external_account_binding(
                                                  session_.account_key(), settings.eab->alg,
                                                  settings.eab->kid, settings.eab->mac_key, url)));
    }

    HttpResponse response = post(url, payload.dump(), /*use_jwk=*/true);
    // 201: created; 200: the key already has an account (RFC 8555 7.3.1).
    if (response.status != 200 && response.status != 201) {
        throw Error("newAccount " + url + " answered HTTP status " +
                    std::to_string(response.status));
    }
    std::string account_url = response.header("location");
    if (account_url.empty()) {
        throw Error("newAccount " + url + " returned no account URL (Location header)");
    }
    session_.set_account_url(account_url);
    return account_url;
}

Order AcmeClient::new_order(const std::vector<Identifier>& identifiers,
                            const OrderOptions& options) {
    const std::string url = directory().new_order;
    Json payload = Json::object();
    payload.set("identifiers", identifiers_json(identifiers));
    if (!options.profile.empty()) payload.set("profile", options.profile);
    if (!options.replaces.empty()) payload.set("replaces", options.replaces);

    HttpResponse response = post(url, payload.dump());
    std::string order_url = response.header("location");
    if (order_url.empty()) {
        throw Error("newOrder " + url + " returned no order URL (Location header)");
    }
    Order o = parse_answer("newOrder", url, response, parse_order);
    o.url = std::move(order_url);
    o.retry_after = retry_after_of(response);
    return o;
}

Order AcmeClient::new_order_replacing(const std::vector<Identifier>& identifiers,
                                      OrderOptions options, std::string& refused) {
    refused.clear();
    try {
        return new_order(identifiers, options);
    } catch (const CaError& e) {
        // A CA that limits us, asks us to wait, or is unavailable (503: a
        // maintenance, which also answers newNonce) has not refused the
        // replacement: another request now would only ignore what it said.
        if (options.replaces.empty() || e.problem.is("rateLimited") || e.retry_after ||
            e.problem.status == 503) {
            throw;
        }
        refused = e.what();
    }
    options.replaces.clear();
    return new_order(identifiers, options);
}

Order AcmeClient::get_order(const std::string& url) {
    HttpResponse response = post(url, "");
    Order o = parse_answer("order", url, response, parse_order);
    o.url = url;
    o.retry_after = retry_after_of(response);
    return o;
}

Authorization AcmeClient::get_authorization(const std::string& url) {
    HttpResponse response = post(url, "");
    Authorization a = parse_answer("authorization", url, response, parse_authorization);
    a.url = url;
    a.retry_after = retry_after_of(response);
    return a;
}

Challenge AcmeClient::respond(const Challenge& challenge) {
    HttpResponse response = post(challenge.url, "{}");
    Challenge c = parse_answer("challenge", challenge.url, response, parse_challenge);
    // Keep what the answer left out, so the caller can go on using it.
    if (c.url.empty()) c.url = challenge.url;
    if (c.type.empty()) c.type = challenge.type;
    if (c.token.empty()) c.token = challenge.token;
    return c;
}

Order AcmeClient::finalize(const Order& order, const std::string& csr_der) {
    Json payload = Json::object();
    payload.set("csr", base64url_encode(csr_der));
    HttpResponse response = post(order.finalize, payload.dump());
    // The answer is the order object; its URL is the order's, not finalize's.
    Order o = parse_answer("finalize", order.finalize, response, parse_order);
    o.url = !order.url.empty() ? order.url : response.header("location");
    o.retry_after = retry_after_of(response);
    return o;
}

std::string AcmeClient::download_certificate(const std::string& url,
                                             std::vector<std::string>* alternates) {
    HttpResponse response =
        post_with_headers(url, "", false, {{"Accept", "application/pem-certificate-chain"}});
    if (response.status != 200 || response.body.empty()) {
        throw Error("certificate " + url + " could not be downloaded (HTTP status " +
                    std::to_string(response.status) + ")");
    }
    if (alternates != nullptr) *alternates = response.links("alternate");
    return response.body;
}

RenewalInfo AcmeClient::renewal_info(const std::string& cert_id) {
    std::string url = directory().renewal_info;
    if (url.empty()) throw Error("the CA offers no renewal information");
    if (url.back() != '/') url += '/';
    url += cert_id;
    HttpRequest request;
    request.method = "GET";
    request.url = url;
    HttpResponse response = send_retrying(request);
    if (response.status != 200) {
        Problem problem = Problem::parse(response.body, static_cast<int>(response.status));
        problem.detail = "renewalInfo " + url + " answered HTTP status " +
                         std::to_string(response.status) +
                         (problem.detail.empty() ? "" : ": " + problem.detail);
        throw CaError(std::move(problem), retry_after_of(response));
    }
    RenewalInfo info = parse_answer("renewalInfo", url, response, parse_renewal_info);
    if (info.window_end <= info.window_start) {
        throw Error("renewalInfo " + url + " has no valid suggestedWindow");
    }
    info.retry_after = retry_after_of(response);
    return info;
}

HttpResponse AcmeClient::send_retrying(const HttpRequest& request) {
    for (int failures = 1;; ++failures) {
        HttpResponse response;
        try {
            response = http_.send(request);
        } catch (const Error&) {
            if (retry_in_place(failures, nullptr)) continue;
            throw;
        }
        if (response.status >= 500 && retry_in_place(failures, &response)) continue;
        return response;
    }
}

bool AcmeClient::retry_in_place(int attempt, const HttpResponse* response) {
    if (attempt >= max_in_place_attempts) return false;
    std::chrono::milliseconds delay = in_place_delays[attempt - 1];
    if (response != nullptr) {
        if (std::optional<std::chrono::seconds> ra = retry_after_of(*response)) {
            if (*ra > max_in_place_retry_after) return false;
            delay = std::max<std::chrono::milliseconds>(delay, *ra);
        }
    }
    if (pause_) {
        pause_(delay);
    } else {
        std::this_thread::sleep_for(delay);
    }
    return true;
}

// ---- the CA's documents ----

Directory parse_directory(std::string_view body) {
    Json j = parse_object(body);
    Directory d;
    d.new_nonce = string_member(j, "newNonce");
    d.new_account = string_member(j, "newAccount");
    d.new_order = string_member(j, "newOrder");
    d.revoke_cert = string_member(j, "revokeCert");
    d.key_change = string_member(j, "keyChange");
    d.renewal_info = string_member(j, "renewalInfo");
    for (const char* required : {"newNonce", "newAccount", "newOrder"}) {
        if (string_member(j, required).empty()) {
            throw Error(std::string("no \"") + required + "\" URL");
        }
    }

    Json meta = j.get("meta");
    if (meta.is_object()) {
        d.terms_of_service = string_member(meta, "termsOfService");
        d.external_account_required = meta.get_bool("externalAccountRequired").value_or(false);
        Json profiles = meta.get("profiles");
        // draft-ietf-acme-profiles: an object mapping names to descriptions.
        if (profiles.is_object()) d.profiles = profiles.keys();
    }
    return d;
}

Order parse_order(std::string_view body) { return order_from(parse_object(body)); }

Authorization parse_authorization(std::string_view body) {
    Json j = parse_object(body);
    Authorization a;
    a.identifier = parse_identifier_object(j.get("identifier"));
    a.status = string_member(j, "status");
    a.wildcard = j.get_bool("wildcard").value_or(false);
    for (const Json& c : j.get("challenges").items()) {
        a.challenges.push_back(challenge_from(c));
        a.challenges.back().wildcard = a.wildcard;
    }
    return a;
}

Challenge parse_challenge(std::string_view body) { return challenge_from(parse_object(body)); }

RenewalInfo parse_renewal_info(std::string_view body) {
    Json j = parse_object(body);
    RenewalInfo info;
    Json window = j.get("suggestedWindow");
    std::optional<std::time_t> start, end;
    if (window.is_object()) {
        start = parse_rfc3339(string_member(window, "start"));
        end = parse_rfc3339(string_member(window, "end"));
    }
    // RFC 9773 section 4.2: a window whose end is not after its start is
    // invalid and must be ignored.
    if (start && end && *end > *start) {
        info.window_start = *start;
        info.window_end = *end;
    }
    info.explanation_url = string_member(j, "explanationURL");
    return info;
}

std::string key_authorization(const std::string& token, const PrivateKey& account_key) {
    return token + "." + account_key.thumbprint();
}

}  // namespace acme
