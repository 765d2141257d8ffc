// In-memory test doubles for the engine's seams: a Storage kept in a map (with
// leases shared between instances and a switch that makes it unreachable), a
// Solver and a ChallengeBoard that record what they were asked to do, an
// EventSink that keeps every event, and a fake ACME CA behind HttpClient that
// routes by URL and issues real certificates for the CSRs it is sent.
#pragma once

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "acme/acme_client.h"
#include "acme/base64url.h"
#include "acme/crypto.h"
#include "acme/error.h"
#include "acme/events.h"
#include "acme/http.h"
#include "acme/identifier.h"
#include "acme/json.h"
#include "acme/shared_state.h"
#include "acme/solver.h"
#include "acme/storage.h"

namespace acme_test {

// ---------------------------------------------------------------- storage

// What several MemoryStorage objects share, as engines share a remote store.
struct MemoryBackend {
    struct Item {
        std::string value;
        acme::Access access = acme::Access::shared;
        std::time_t modified = 0;
        std::uint64_t version = 0;
    };
    struct LeaseEntry {
        std::uint64_t holder = 0;
        std::chrono::seconds expires{0};  // on `clock`
    };

    std::mutex mutex;
    std::map<std::string, Item, std::less<>> items;
    std::vector<std::string> writes;  // keys in the order they were stored
    std::uint64_t next_version = 0;
    const void* lock_owner = nullptr;
    std::map<std::string, LeaseEntry, std::less<>> leases;
    std::uint64_t next_holder = 0;
    std::chrono::seconds clock{0};  // the store's time, for lease expiry
    bool unavailable = false;
    std::size_t fail_next = 0;  // calls still to refuse, as a brief outage
    std::size_t refused = 0;    // calls that threw StorageUnavailable
};

class MemoryStorage : public acme::Storage {
public:
    MemoryStorage() : backend_(std::make_shared<MemoryBackend>()) {}
    // Another engine's view of the same store.
    explicit MemoryStorage(std::shared_ptr<MemoryBackend> backend) : backend_(std::move(backend)) {}
    ~MemoryStorage() override {
        std::lock_guard<std::mutex> lk(backend_->mutex);
        if (backend_->lock_owner == this) backend_->lock_owner = nullptr;
    }
    MemoryStorage(const MemoryStorage&) = delete;
    MemoryStorage& operator=(const MemoryStorage&) = delete;

    const std::shared_ptr<MemoryBackend>& backend() const { return backend_; }

    // Every call (of every MemoryStorage on this backend) throws
    // StorageUnavailable while set, as a remote store that cannot be reached.
    void set_unavailable(bool on) {
        std::lock_guard<std::mutex> lk(backend_->mutex);
        backend_->unavailable = on;
    }
    // The next `n` calls throw StorageUnavailable, then the store is back.
    void fail_next(std::size_t n) {
        std::lock_guard<std::mutex> lk(backend_->mutex);
        backend_->fail_next = n;
    }
    std::size_t refused() const {
        std::lock_guard<std::mutex> lk(backend_->mutex);
        return backend_->refused;
    }
    // Moves the store's clock: leases not renewed within their ttl expire.
    void advance(std::chrono::seconds d) {
        std::lock_guard<std::mutex> lk(backend_->mutex);
        backend_->clock += d;
    }

    // Inspection without the unavailable switch.
    std::optional<std::string> peek(std::string_view key) const {
        std::lock_guard<std::mutex> lk(backend_->mutex);
        auto it = backend_->items.find(key);
        if (it == backend_->items.end()) return std::nullopt;
        return it->second.value;
    }
    std::optional<acme::Access> access(std::string_view key) const {
        std::lock_guard<std::mutex> lk(backend_->mutex);
        auto it = backend_->items.find(key);
        if (it == backend_->items.end()) return std::nullopt;
        return it->second.access;
    }
    std::vector<std::string> writes() const {
        std::lock_guard<std::mutex> lk(backend_->mutex);
        return backend_->writes;
    }
    std::set<std::string> keys() const {
        std::lock_guard<std::mutex> lk(backend_->mutex);
        std::set<std::string> out;
        for (const auto& [k, v] : backend_->items) out.insert(k);
        return out;
    }

    std::string describe() const override { return "memory"; }
    std::string locate(std::string_view key) const override { return "memory:" + std::string(key); }

    std::optional<std::string> load(std::string_view key) override {
        std::lock_guard<std::mutex> lk(backend_->mutex);
        check(key);
        auto it = backend_->items.find(key);
        if (it == backend_->items.end()) return std::nullopt;
        return it->second.value;
    }
    void store(std::string_view key, std::string_view value, acme::Access access) override {
        std::lock_guard<std::mutex> lk(backend_->mutex);
        check(key);
        MemoryBackend::Item& item = backend_->items[std::string(key)];
        item.value = std::string(value);
        item.access = access;
        item.modified = std::time(nullptr);
        item.version = ++backend_->next_version;
        backend_->writes.emplace_back(key);
    }
    void remove(std::string_view key) override {
        std::lock_guard<std::mutex> lk(backend_->mutex);
        check(key);
        auto it = backend_->items.find(key);
        if (it != backend_->items.end()) backend_->items.erase(it);
    }
    std::vector<std::string> list(std::string_view prefix) override {
        std::lock_guard<std::mutex> lk(backend_->mutex);
        check(prefix);
        std::vector<std::string> out;
        for (const auto& [k, v] : backend_->items) {
            if (k.compare(0, prefix.size(), prefix) == 0) out.push_back(k);
        }
        return out;
    }
    std::optional<acme::ItemStat> stat(std::string_view key) override {
        std::lock_guard<std::mutex> lk(backend_->mutex);
        check(key);
        auto it = backend_->items.find(key);
        if (it == backend_->items.end()) return std::nullopt;
        return acme::ItemStat{it->second.modified, std::to_string(it->second.version)};
    }
    bool try_lock() override {
        std::lock_guard<std::mutex> lk(backend_->mutex);
        check("the store lock");
        if (backend_->lock_owner != nullptr && backend_->lock_owner != this) return false;
        backend_->lock_owner = this;
        return true;
    }
    std::unique_ptr<acme::Lease> try_lease(std::string_view cert_id,
                                           std::chrono::seconds ttl) override {
        std::lock_guard<std::mutex> lk(backend_->mutex);
        check(cert_id);
        auto it = backend_->leases.find(cert_id);
        if (it != backend_->leases.end() && it->second.expires > backend_->clock) return nullptr;
        std::uint64_t holder = ++backend_->next_holder;
        backend_->leases[std::string(cert_id)] = {holder, backend_->clock + ttl};
        return std::make_unique<MemoryLease>(backend_, std::string(cert_id), holder, ttl);
    }

private:
    class MemoryLease : public acme::Lease {
    public:
        MemoryLease(std::shared_ptr<MemoryBackend> backend, std::string id, std::uint64_t holder,
                    std::chrono::seconds ttl)
            : backend_(std::move(backend)), id_(std::move(id)), holder_(holder), ttl_(ttl) {}
        // Released unless the store is unreachable: then it expires.
        ~MemoryLease() override {
            std::lock_guard<std::mutex> lk(backend_->mutex);
            if (backend_->unavailable) return;
            auto it = backend_->leases.find(id_);
            if (it != backend_->leases.end() && it->second.holder == holder_) {
                backend_->leases.erase(it);
            }
        }
        bool renew() override {
            std::lock_guard<std::mutex> lk(backend_->mutex);
            if (backend_->unavailable) {
                ++backend_->refused;
                throw acme::StorageUnavailable("memory store unavailable (lease " + id_ + ")");
            }
            auto it = backend_->leases.find(id_);
            if (it == backend_->leases.end() || it->second.holder != holder_ ||
                it->second.expires <= backend_->clock) {
                return false;
            }
            it->second.expires = backend_->clock + ttl_;
            return true;
        }

    private:
        std::shared_ptr<MemoryBackend> backend_;
        std::string id_;
        std::uint64_t holder_;
        std::chrono::seconds ttl_;
    };

    // Called with the backend's mutex held.
    void check(std::string_view what) {
        if (backend_->fail_next > 0) {
            --backend_->fail_next;
        } else if (!backend_->unavailable) {
            return;
        }
        ++backend_->refused;
        throw acme::StorageUnavailable("memory store unavailable (" + std::string(what) + ")");
    }

    std::shared_ptr<MemoryBackend> backend_;
};

// ---------------------------------------------------------------- solvers

struct SolverCall {
    enum class Kind { present, cleanup };
    Kind kind;
    acme::Identifier id;
    std::string type;
    std::string token;
    std::string url;
    std::string key_authorization;
};

class RecordingSolver : public acme::Solver {
public:
    // present() throws acme::Error(message) from now on, for every
    // identifier or only for `only_for` (its value).
    void fail_present(std::string message, std::string only_for = "") {
        std::lock_guard<std::mutex> lk(mutex_);
        fail_message_ = std::move(message);
        fail_only_for_ = std::move(only_for);
    }

    void present(const acme::Identifier& id, const acme::Challenge& challenge,
                 const std::string& key_authorization) override {
        std::lock_guard<std::mutex> lk(mutex_);
        if (fail_message_ && (fail_only_for_.empty() || fail_only_for_ == id.value)) {
            ++refused_;
            throw acme::Error(*fail_message_);
        }
        calls_.push_back({SolverCall::Kind::present, id, challenge.type, challenge.token,
                          challenge.url, key_authorization});
    }
    void cleanup(const acme::Identifier& id, const acme::Challenge& challenge,
                 const std::string& key_authorization) noexcept override {
        std::lock_guard<std::mutex> lk(mutex_);
        calls_.push_back({SolverCall::Kind::cleanup, id, challenge.type, challenge.token,
                          challenge.url, key_authorization});
    }
    // With `together` set (before the order starts) it presents an
    // order's answers at once, as dns-01 does; `batches` has each call's
    // size (negative for cleanup_together). A failing answer withdraws the
    // ones presented before it, as a throw must publish none.
    bool together = false;
    std::vector<int> batches;
    bool presents_together() const override { return together; }
    void present_together(const std::vector<Answer>& answers) override {
        batches.push_back(int(answers.size()));
        std::size_t done = 0;
        try {
            for (; done < answers.size(); done++) {
                present(answers[done].id, answers[done].challenge, answers[done].key_authorization);
            }
        } catch (...) {
            for (std::size_t i = 0; i < done; i++) {
                cleanup(answers[i].id, answers[i].challenge, answers[i].key_authorization);
            }
            throw;
        }
    }
    void cleanup_together(const std::vector<Answer>& answers) noexcept override {
        batches.push_back(-int(answers.size()));
        for (const Answer& a : answers) cleanup(a.id, a.challenge, a.key_authorization);
    }
    // wait_visible is counted apart from calls(); `on_wait` runs in it (set
    // it before the order starts); after fail_wait() it throws.
    void wait_visible(const acme::Identifier& id, const acme::Challenge&,
                      const std::string&) override {
        if (on_wait) on_wait(id);
        std::lock_guard<std::mutex> lk(mutex_);
        ++waits_;
        if (fail_wait_) throw acme::Error(*fail_wait_);
    }
    std::function<void(const acme::Identifier&)> on_wait;
    void fail_wait(std::string message) {
        std::lock_guard<std::mutex> lk(mutex_);
        fail_wait_ = std::move(message);
    }
    int waits() const {
        std::lock_guard<std::mutex> lk(mutex_);
        return waits_;
    }

    std::vector<SolverCall> calls() const {
        std::lock_guard<std::mutex> lk(mutex_);
        return calls_;
    }
    std::vector<SolverCall> presented() const { return of(SolverCall::Kind::present); }
    std::vector<SolverCall> cleaned_up() const { return of(SolverCall::Kind::cleanup); }
    // The answers presented and not cleaned up yet, by token.
    std::map<std::string, std::string> live() const {
        std::lock_guard<std::mutex> lk(mutex_);
        std::map<std::string, std::string> out;
        for (const SolverCall& c : calls_) {
            if (c.kind == SolverCall::Kind::present) {
                out[c.token] = c.key_authorization;
            } else {
                out.erase(c.token);
            }
        }
        return out;
    }
    int refused() const {
        std::lock_guard<std::mutex> lk(mutex_);
        return refused_;
    }

private:
    std::vector<SolverCall> of(SolverCall::Kind kind) const {
        std::lock_guard<std::mutex> lk(mutex_);
        std::vector<SolverCall> out;
        for (const SolverCall& c : calls_) {
            if (c.kind == kind) out.push_back(c);
        }
        return out;
    }

    mutable std::mutex mutex_;
    std::vector<SolverCall> calls_;
    std::optional<std::string> fail_message_;
    std::string fail_only_for_;
    int refused_ = 0;
    std::optional<std::string> fail_wait_;
    int waits_ = 0;
};

// A ChallengeBoard that keeps what is published, in order, and records
// every call.
class RecordingBoard : public acme::ChallengeBoard {
public:
    struct TlsAnswer {
        std::string server_name;
        std::string identifier;
        std::string digest;
    };

    bool publish_http01(std::string_view token, std::string_view key_authorization) override {
        std::lock_guard<std::mutex> lk(mutex_);
        if (full) return false;
        http01_[std::string(token)] = std::string(key_authorization);
        return true;
    }
    void withdraw_http01(std::string_view token) override {
        std::lock_guard<std::mutex> lk(mutex_);
        http01_withdrawn_.emplace_back(token);
        http01_.erase(std::string(token));
    }
    bool publish_tls_alpn01(std::string_view server_name, std::string_view identifier,
                            std::string_view digest) override {
        std::lock_guard<std::mutex> lk(mutex_);
        if (full) return false;
        tls_.push_back({std::string(server_name), std::string(identifier), std::string(digest)});
        return true;
    }
    void withdraw_tls_alpn01(std::string_view server_name, std::string_view digest) override {
        std::lock_guard<std::mutex> lk(mutex_);
        tls_withdrawn_.push_back({std::string(server_name), "", std::string(digest)});
        tls_.erase(std::remove_if(tls_.begin(), tls_.end(),
                                  [&](const TlsAnswer& a) {
                                      return a.server_name == server_name && a.digest == digest;
                                  }),
                   tls_.end());
    }
    void certificate_updated(std::string_view cert_id) override {
        std::lock_guard<std::mutex> lk(mutex_);
        updated_.emplace_back(cert_id);
    }

    std::map<std::string, std::string> http01() const {
        std::lock_guard<std::mutex> lk(mutex_);
        return http01_;
    }
    std::vector<std::string> http01_withdrawn() const {
        std::lock_guard<std::mutex> lk(mutex_);
        return http01_withdrawn_;
    }
    std::vector<TlsAnswer> tls_alpn01() const {
        std::lock_guard<std::mutex> lk(mutex_);
        return tls_;
    }
    std::vector<TlsAnswer> tls_alpn01_withdrawn() const {
        std::lock_guard<std::mutex> lk(mutex_);
        return tls_withdrawn_;
    }
    std::vector<std::string> updated() const {
        std::lock_guard<std::mutex> lk(mutex_);
        return updated_;
    }

    bool full = false;  // refuse every publish, as a full shared zone

private:
    mutable std::mutex mutex_;
    std::map<std::string, std::string> http01_;
    std::vector<std::string> http01_withdrawn_;
    std::vector<TlsAnswer> tls_;
    std::vector<TlsAnswer> tls_withdrawn_;
    std::vector<std::string> updated_;
};

// ---------------------------------------------------------------- events

class RecordingSink : public acme::EventSink {
public:
    void on_event(const acme::Event& event) override {
        std::lock_guard<std::mutex> lk(mutex_);
        events_.push_back(event);
        cv_.notify_all();
    }

    std::vector<acme::Event> events() const {
        std::lock_guard<std::mutex> lk(mutex_);
        return events_;
    }
    template <class T>
    std::optional<T> first() const {
        std::lock_guard<std::mutex> lk(mutex_);
        return first_locked<T>();
    }
    template <class T>
    std::vector<T> all() const {
        std::lock_guard<std::mutex> lk(mutex_);
        std::vector<T> out;
        for (const acme::Event& e : events_) {
            if (const T* p = std::get_if<T>(&e)) out.push_back(*p);
        }
        return out;
    }
    template <class T>
    std::size_t count() const {
        std::lock_guard<std::mutex> lk(mutex_);
        return static_cast<std::size_t>(
            std::count_if(events_.begin(), events_.end(),
                          [](const acme::Event& e) { return std::holds_alternative<T>(e); }));
    }
    // Where the first T is among all events; nullopt when there is none.
    template <class T>
    std::optional<std::size_t> position() const {
        std::lock_guard<std::mutex> lk(mutex_);
        for (std::size_t i = 0; i < events_.size(); ++i) {
            if (std::holds_alternative<T>(events_[i])) return i;
        }
        return std::nullopt;
    }
    // The first T, waiting up to `timeout` for it.
    template <class T>
    std::optional<T> wait_for(std::chrono::milliseconds timeout = std::chrono::seconds(10)) const {
        std::unique_lock<std::mutex> lk(mutex_);
        std::optional<T> found;
        cv_.wait_for(lk, timeout, [&] {
            found = first_locked<T>();
            return found.has_value();
        });
        return found;
    }

private:
    template <class T>
    std::optional<T> first_locked() const {
        for (const acme::Event& e : events_) {
            if (const T* p = std::get_if<T>(&e)) return *p;
        }
        return std::nullopt;
    }
    mutable std::mutex mutex_;
    mutable std::condition_variable cv_;
    std::vector<acme::Event> events_;
};

// ---------------------------------------------------------------- fake CA

namespace fake_ca_detail {

template <auto Free>
struct Deleter {
    template <class T>
    void operator()(T* p) const {
        Free(p);
    }
};
inline void free_extensions(STACK_OF(X509_EXTENSION) * exts) {
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
}
using X509ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using ExtensionsPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), Deleter<free_extensions>>;

inline acme::X509Ptr read_pem_certificate(const std::string& pem) {
    BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    acme::X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) throw acme::Error("fake CA: cannot read its own certificate");
    return cert;
}

inline std::string pem_of(X509* cert) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(bio.get(), cert);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

// "dns:example.test", "ip:192.0.2.1": what a CSR or an order names.
inline std::string identifier_key(const acme::Identifier& id) {
    return id.type_name() + ":" + id.value;
}

}  // namespace fake_ca_detail

// A small ACME CA behind HttpClient, routed by URL: directory, newNonce,
// newAccount, newOrder, authorizations with http-01, dns-01 and
// tls-alpn-01 challenges, order polling, finalize and certificate download.
// Every answer carries a Replay-Nonce; a POST with a nonce it did not hand
// out (or one used before) gets badNonce. At finalize it checks the CSR
// (signature, names equal to the order's) and issues a certificate for the
// CSR's public key, signed by its own CA key, with the CSR's SANs.
class FakeCa : public acme::HttpClient {
public:
    static constexpr const char* directory_url = "https://ca.test/dir";
    static constexpr const char* nonce_url = "https://ca.test/nonce";
    static constexpr const char* account_endpoint = "https://ca.test/new-acct";
    static constexpr const char* order_endpoint = "https://ca.test/new-order";
    static constexpr const char* problem_prefix = "urn:ietf:params:acme:error:";

    // The outcome of validating one challenge: nullopt means valid.
    struct Refusal {
        std::string type;  // full URN
        std::string detail;
    };
    using Validator = std::function<std::optional<Refusal>(
        const acme::Identifier& id, const std::string& type, const std::string& token)>;

    FakeCa()
        : ca_key_(acme::PrivateKey::generate(acme::KeyType::ecdsa256)),
          ca_pem_(acme::make_self_signed(
              ca_key_, {acme::Identifier{acme::Identifier::Type::dns, "fake-ca.test"}}, 3650)) {}

    // Called when a challenge is POSTed, i.e. at the moment the CA looks at
    // the answer; by default every challenge is valid.
    Validator validate;
    // Called before every request is answered (outside the CA's lock), e.g.
    // to make the storage unreachable at a given step.
    std::function<void(const acme::HttpRequest&)> on_request;
    // Polls that still say "pending" (authorization, and order once all
    // authorizations are valid) or "processing" (order after finalize).
    int pending_polls = 1;
    // Polls of an order that still say "pending" once its authorizations
    // are valid (a CA that has not caught up); -1: pending_polls.
    int ready_after_polls = -1;
    std::time_t lifetime = 90 * 86400;
    std::vector<std::string> offered{"http-01", "dns-01", "tls-alpn-01"};
    // Names whose authorizations are valid already (the CA reuses them).
    std::set<std::string> prevalidated;

    // The CA restarted and lost its accounts: old kids get accountDoesNotExist.
    void forget_accounts() {
        std::lock_guard<std::mutex> lk(mutex_);
        accounts_.clear();
    }

    acme::HttpResponse send(const acme::HttpRequest& request) override {
        if (on_request) on_request(request);
        std::lock_guard<std::mutex> lk(mutex_);
        requests_.push_back(request);
        acme::HttpResponse r = route(request);
        r.headers.emplace_back("replay-nonce", new_nonce());
        r.effective_url = request.url;
        return r;
    }

    std::vector<acme::HttpRequest> requests() const {
        std::lock_guard<std::mutex> lk(mutex_);
        return requests_;
    }
    // Requests of `method` to `url`.
    int count(const std::string& method, const std::string& url) const {
        std::lock_guard<std::mutex> lk(mutex_);
        return static_cast<int>(std::count_if(
            requests_.begin(), requests_.end(),
            [&](const acme::HttpRequest& r) { return r.method == method && r.url == url; }));
    }
    // POSTs to any challenge URL.
    int challenge_posts() const {
        std::lock_guard<std::mutex> lk(mutex_);
        return static_cast<int>(
            std::count_if(requests_.begin(), requests_.end(), [&](const acme::HttpRequest& r) {
                return r.method == "POST" && r.url.rfind("https://ca.test/chall/", 0) == 0 &&
                       decoded_payload(r) == "{}";
            }));
    }
    // Challenge URLs that were POSTed (told to validate), in order.
    std::vector<std::string> responded() const {
        std::lock_guard<std::mutex> lk(mutex_);
        return responded_;
    }
    int bad_nonces() const {
        std::lock_guard<std::mutex> lk(mutex_);
        return bad_nonces_;
    }
    int orders_created() const {
        std::lock_guard<std::mutex> lk(mutex_);
        return static_cast<int>(orders_.size());
    }
    int finalized() const {
        std::lock_guard<std::mutex> lk(mutex_);
        return finalized_;
    }
    int accounts_created() const {
        std::lock_guard<std::mutex> lk(mutex_);
        return next_account_;
    }
    // The chain issued last ("" before any).
    std::string issued_chain() const {
        std::lock_guard<std::mutex> lk(mutex_);
        return issued_chain_;
    }
    const std::string& ca_certificate() const { return ca_pem_; }

    // The token of a challenge type of authorization `n` (1-based, in the
    // order authorizations were created).
    static std::string token(int authz, const std::string& type) {
        return "tok" + std::to_string(authz) + "_" + type;
    }
    static std::string challenge_url(int authz, const std::string& type) {
        return "https://ca.test/chall/" + std::to_string(authz) + "/" + type;
    }

private:
    struct ChallengeState {
        std::string type;
        std::string status = "pending";
        std::optional<Refusal> error;
    };
    struct AuthzState {
        int n = 0;
        acme::Identifier id;
        std::string status = "pending";
        std::vector<ChallengeState> challenges;
        int polls_left = 0;  // while validating
        bool validating = false;
    };
    struct OrderState {
        int n = 0;
        std::vector<acme::Identifier> ids;
        std::vector<int> authzs;
        bool finalized = false;
        int ready_polls_left = 0;
        int processing_polls_left = 0;
        std::string chain;
    };

    static acme::HttpResponse answer(
        long status, std::string body,
        std::vector<std::pair<std::string, std::string>> headers = {}) {
        acme::HttpResponse r;
        r.status = status;
        r.body = std::move(body);
        r.headers = std::move(headers);
        r.headers.emplace_back("content-type", "application/json");
        return r;
    }
    static acme::HttpResponse problem(long status, const std::string& type,
                                      const std::string& detail) {
        acme::Json j = acme::Json::object();
        j.set("type", std::string(problem_prefix) + type);
        j.set("detail", detail);
        j.set("status", static_cast<std::int64_t>(status));
        acme::HttpResponse r;
        r.status = status;
        r.body = j.dump();
        r.headers.emplace_back("content-type", "application/problem+json");
        return r;
    }
    static std::string decoded_payload(const acme::HttpRequest& r) {
        try {
            return acme::base64url_decode(
                acme::Json::parse(r.body).get_string("payload").value_or(""));
        } catch (const std::exception&) {
            return "";
        }
    }

    std::string new_nonce() {
        std::string n = "nonce-" + std::to_string(++next_nonce_);
        nonces_.insert(n);
        return n;
    }

    static acme::Json identifier_json(const acme::Identifier& id) {
        acme::Json j = acme::Json::object();
        j.set("type", id.type_name());
        j.set("value", id.value);
        return j;
    }

    acme::Json authz_json(const AuthzState& a) const {
        acme::Json j = acme::Json::object();
        j.set("status", a.status);
        j.set("identifier", identifier_json(a.id));
        j.set("expires", "2099-01-01T00:00:00Z");
        acme::Json chs = acme::Json::array();
        for (const ChallengeState& c : a.challenges) chs.push(challenge_json(a, c));
        j.set("challenges", chs);
        return j;
    }
    acme::Json challenge_json(const AuthzState& a, const ChallengeState& c) const {
        acme::Json j = acme::Json::object();
        j.set("type", c.type);
        j.set("url", challenge_url(a.n, c.type));
        j.set("token", token(a.n, c.type));
        j.set("status", c.status);
        if (c.error) {
            acme::Json e = acme::Json::object();
            e.set("type", c.error->type);
            e.set("detail", c.error->detail);
            e.set("status", static_cast<std::int64_t>(403));
            j.set("error", e);
        }
        return j;
    }

    std::string order_url(const OrderState& o) const {
        return "https://ca.test/order/" + std::to_string(o.n);
    }

    // The order's status as of this request (polls move it on).
    acme::Json order_json(OrderState& o, bool poll) {
        std::string status = "pending";
        std::optional<Refusal> error;
        if (o.finalized) {
            status = "valid";
            if (o.processing_polls_left > 0) {
                status = "processing";
                if (poll) --o.processing_polls_left;
            }
        } else {
            bool all_valid = true;
            for (int n : o.authzs) {
                const AuthzState& a = authzs_.at(static_cast<std::size_t>(n - 1));
                if (a.status == "invalid") {
                    status = "invalid";
                    error = Refusal{std::string(problem_prefix) + "unauthorized",
                                    "authorization for " + a.id.value + " failed"};
                }
                if (a.status != "valid") all_valid = false;
            }
            if (status != "invalid" && all_valid) {
                status = "ready";
                if (o.ready_polls_left > 0) {
                    status = "pending";
                    if (poll) --o.ready_polls_left;
                }
            }
        }
        acme::Json j = acme::Json::object();
        j.set("status", status);
        j.set("expires", "2099-01-01T00:00:00Z");
        acme::Json ids = acme::Json::array();
        for (const acme::Identifier& id : o.ids) ids.push(identifier_json(id));
        j.set("identifiers", ids);
        acme::Json authz = acme::Json::array();
        for (int n : o.authzs) {
            authz.push(acme::Json::string("https://ca.test/authz/" + std::to_string(n)));
        }
        j.set("authorizations", authz);
        j.set("finalize", order_url(o) + "/finalize");
        if (status == "valid") j.set("certificate", "https://ca.test/cert/" + std::to_string(o.n));
        if (error) {
            acme::Json e = acme::Json::object();
            e.set("type", error->type);
            e.set("detail", error->detail);
            j.set("error", e);
        }
        return j;
    }

    // The number after `prefix` in url ("https://ca.test/order/3" -> 3), and
    // what follows it.
    static std::optional<std::pair<int, std::string>> numbered(const std::string& url,
                                                               const std::string& prefix) {
        if (url.rfind(prefix, 0) != 0) return std::nullopt;
        std::size_t end = url.find('/', prefix.size());
        std::string num =
            url.substr(prefix.size(), end == std::string::npos ? end : end - prefix.size());
        if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos) {
            return std::nullopt;
        }
        return std::make_pair(std::stoi(num), end == std::string::npos ? "" : url.substr(end));
    }

    acme::HttpResponse route(const acme::HttpRequest& req) {
        if (req.url == directory_url && req.method == "GET") {
            return answer(200, R"({"newNonce":"https://ca.test/nonce",)"
                               R"("newAccount":"https://ca.test/new-acct",)"
                               R"("newOrder":"https://ca.test/new-order",)"
                               R"("revokeCert":"https://ca.test/revoke",)"
                               R"("keyChange":"https://ca.test/key-change"})");
        }
        if (req.url == nonce_url && (req.method == "HEAD" || req.method == "GET")) {
            return answer(req.method == "HEAD" ? 200 : 204, "");
        }
        if (req.method != "POST") return problem(405, "malformed", "method not allowed");

        // The JWS: nonce, url and key or account.
        acme::Json jws, header;
        std::string payload;
        try {
            jws = acme::Json::parse(req.body);
            header =
                acme::Json::parse(acme::base64url_decode(jws.get_string("protected").value_or("")));
            payload = acme::base64url_decode(jws.get_string("payload").value_or(""));
        } catch (const std::exception& e) {
            return problem(400, "malformed", std::string("not a JWS: ") + e.what());
        }
        std::string nonce = header.get_string("nonce").value_or("");
        if (nonces_.erase(nonce) == 0) {
            ++bad_nonces_;
            return problem(400, "badNonce", "unknown or reused nonce " + nonce);
        }
        if (header.get_string("url").value_or("") != req.url) {
            return problem(400, "unauthorized", "the JWS url is not the request URL");
        }

        if (req.url == account_endpoint) {
            acme::Json jwk = header.get("jwk");
            if (!jwk.is_object()) return problem(400, "malformed", "newAccount needs a jwk");
            std::string key = jwk.dump();
            auto it = accounts_.find(key);
            if (it != accounts_.end())
                return answer(200, R"({"status":"valid"})", {{"location", it->second}});
            std::string url = "https://ca.test/acct/" + std::to_string(++next_account_);
            accounts_[key] = url;
            return answer(201, R"({"status":"valid"})", {{"location", url}});
        }

        std::string kid = header.get_string("kid").value_or("");
        bool known = std::any_of(accounts_.begin(), accounts_.end(),
                                 [&](const auto& a) { return a.second == kid; });
        if (!known) return problem(400, "accountDoesNotExist", "no account " + kid);

        if (req.url == order_endpoint) return new_order(payload);
        if (auto m = numbered(req.url, "https://ca.test/authz/")) {
            if (m->first < 1 || m->first > static_cast<int>(authzs_.size()) || !m->second.empty()) {
                return problem(404, "malformed", "no authorization " + req.url);
            }
            AuthzState& a = authzs_[static_cast<std::size_t>(m->first - 1)];
            if (a.validating) {
                if (a.polls_left > 0) {
                    --a.polls_left;
                } else {
                    a.validating = false;
                    for (ChallengeState& c : a.challenges) {
                        if (c.status != "processing") continue;
                        c.status = c.error ? "invalid" : "valid";
                        a.status = c.status;
                    }
                }
            }
            return answer(200, authz_json(a).dump());
        }
        if (auto m = numbered(req.url, "https://ca.test/chall/")) {
            if (m->first < 1 || m->first > static_cast<int>(authzs_.size())) {
                return problem(404, "malformed", "no challenge " + req.url);
            }
            AuthzState& a = authzs_[static_cast<std::size_t>(m->first - 1)];
            for (ChallengeState& c : a.challenges) {
                if ("/" + c.type != m->second) continue;
                if (payload == "{}" && c.status == "pending" && a.status == "pending") {
                    responded_.push_back(req.url);
                    c.status = "processing";
                    a.validating = true;
                    a.polls_left = pending_polls;
                    if (validate) c.error = validate(a.id, c.type, token(a.n, c.type));
                }
                return answer(200, challenge_json(a, c).dump());
            }
            return problem(404, "malformed", "no challenge " + req.url);
        }
        if (auto m = numbered(req.url, "https://ca.test/order/")) {
            if (m->first < 1 || m->first > static_cast<int>(orders_.size())) {
                return problem(404, "malformed", "no order " + req.url);
            }
            OrderState& o = orders_[static_cast<std::size_t>(m->first - 1)];
            if (m->second.empty()) return answer(200, order_json(o, true).dump());
            if (m->second == "/finalize") return finalize(o, payload);
            return problem(404, "malformed", "no such resource " + req.url);
        }
        if (auto m = numbered(req.url, "https://ca.test/cert/")) {
            if (m->first < 1 || m->first > static_cast<int>(orders_.size()) ||
                orders_[static_cast<std::size_t>(m->first - 1)].chain.empty()) {
                return problem(404, "malformed", "no certificate " + req.url);
            }
            acme::HttpResponse r;
            r.status = 200;
            r.body = orders_[static_cast<std::size_t>(m->first - 1)].chain;
            r.headers.emplace_back("content-type", "application/pem-certificate-chain");
            return r;
        }
        return problem(404, "malformed", "no such resource " + req.url);
    }

    acme::HttpResponse new_order(const std::string& payload) {
        OrderState o;
        o.n = static_cast<int>(orders_.size()) + 1;
        try {
            for (const acme::Json& id : acme::Json::parse(payload).get("identifiers").items()) {
                acme::Identifier ident;
                ident.type = id.get_string("type").value_or("") == "ip"
                                 ? acme::Identifier::Type::ip
                                 : acme::Identifier::Type::dns;
                ident.value = id.get_string("value").value_or("");
                o.ids.push_back(ident);
            }
        } catch (const std::exception& e) {
            return problem(400, "malformed", e.what());
        }
        if (o.ids.empty()) return problem(400, "malformed", "an order needs identifiers");
        for (const acme::Identifier& id : o.ids) {
            AuthzState a;
            a.n = static_cast<int>(authzs_.size()) + 1;
            a.id = id;
            if (prevalidated.count(id.value)) a.status = "valid";
            for (const std::string& type : offered) {
                ChallengeState c;
                c.type = type;
                if (a.status == "valid") c.status = type == offered.front() ? "valid" : "pending";
                a.challenges.push_back(c);
            }
            authzs_.push_back(a);
            o.authzs.push_back(a.n);
        }
        o.ready_polls_left = ready_after_polls >= 0 ? ready_after_polls : pending_polls;
        orders_.push_back(o);
        return answer(201, order_json(orders_.back(), false).dump(),
                      {{"location", order_url(orders_.back())}});
    }

    acme::HttpResponse finalize(OrderState& o, const std::string& payload) {
        std::string status = order_json(o, false).get_string("status").value_or("");
        if (o.finalized || status != "ready") {
            return problem(403, "orderNotReady", "the order is " + status);
        }
        std::string csr;
        try {
            csr = acme::base64url_decode(acme::Json::parse(payload).get_string("csr").value_or(""));
        } catch (const std::exception& e) {
            return problem(400, "malformed", e.what());
        }
        std::string why;
        std::string chain = issue(csr, o.ids, why);
        if (chain.empty()) return problem(400, "badCSR", why);
        o.finalized = true;
        o.processing_polls_left = pending_polls;
        o.chain = chain;
        issued_chain_ = chain;
        ++finalized_;
        acme::Json j = order_json(o, false);
        // The answer to finalize says "processing" while the CA is at it.
        if (o.processing_polls_left > 0) j.set("status", "processing");
        return answer(200, j.dump(), {{"location", order_url(o)}});
    }

    // A certificate for the CSR's key and names; "" and `why` when the CSR
    // is not acceptable.
    std::string issue(const std::string& der, const std::vector<acme::Identifier>& ids,
                      std::string& why) {
        using namespace fake_ca_detail;
        const auto* p = reinterpret_cast<const unsigned char*>(der.data());
        X509ReqPtr req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
        if (!req) {
            why = "the CSR is not DER";
            return "";
        }
        PkeyPtr pub(X509_REQ_get_pubkey(req.get()));
        if (!pub || X509_REQ_verify(req.get(), pub.get()) != 1) {
            why = "the CSR's signature does not verify";
            return "";
        }
        ExtensionsPtr exts(X509_REQ_get_extensions(req.get()));
        int at = exts ? X509v3_get_ext_by_NID(exts.get(), NID_subject_alt_name, -1) : -1;
        if (at < 0) {
            why = "the CSR has no subjectAltName";
            return "";
        }
        X509_EXTENSION* san = X509v3_get_ext(exts.get(), at);
        GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(san)));
        std::set<std::string> in_csr;
        for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
            const GENERAL_NAME* g = sk_GENERAL_NAME_value(names.get(), i);
            if (g->type == GEN_DNS) {
                const ASN1_IA5STRING* s = g->d.dNSName;
                in_csr.insert("dns:" +
                              std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                          static_cast<std::size_t>(ASN1_STRING_length(s))));
            } else if (g->type == GEN_IPADD) {
                const ASN1_OCTET_STRING* s = g->d.iPAddress;
                char text[INET6_ADDRSTRLEN] = "";
                int len = ASN1_STRING_length(s);
                inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), text,
                          sizeof text);
                in_csr.insert(std::string("ip:") + text);
            }
        }
        std::set<std::string> ordered;
        for (const acme::Identifier& id : ids) ordered.insert(identifier_key(id));
        if (in_csr != ordered) {
            why = "the CSR's names are not the order's";
            return "";
        }

        acme::X509Ptr ca = read_pem_certificate(ca_pem_);
        acme::X509Ptr leaf(X509_new());
        std::time_t now = std::time(nullptr);
        X509_set_version(leaf.get(), X509_VERSION_3);
        ASN1_INTEGER_set(X509_get_serialNumber(leaf.get()), 0x1000 + ++serial_);
        ASN1_TIME_set(X509_getm_notBefore(leaf.get()), now - 3600);
        ASN1_TIME_set(X509_getm_notAfter(leaf.get()), now + lifetime);
        X509_set_issuer_name(leaf.get(), X509_get_subject_name(ca.get()));
        X509_set_pubkey(leaf.get(), pub.get());
        X509_add_ext(leaf.get(), san, -1);
        if (X509_sign(leaf.get(), ca_key_.get(), EVP_sha256()) <= 0) {
            throw acme::Error("fake CA: cannot sign: " + acme::openssl_errors());
        }
        return pem_of(leaf.get()) + ca_pem_;
    }

    const acme::PrivateKey ca_key_;
    const std::string ca_pem_;
    mutable std::mutex mutex_;
    std::vector<acme::HttpRequest> requests_;
    std::set<std::string> nonces_;
    std::uint64_t next_nonce_ = 0;
    int bad_nonces_ = 0;
    std::map<std::string, std::string> accounts_;  // jwk -> account URL
    int next_account_ = 0;
    std::vector<AuthzState> authzs_;
    std::vector<OrderState> orders_;
    std::vector<std::string> responded_;
    int finalized_ = 0;
    long serial_ = 0;
    std::string issued_chain_;
};

}  // namespace acme_test
