// The ACME engine: one scheduler thread decides when each certificate needs an
// order or a look at the CA's renewal information (ARI), a bounded pool of
// worker threads runs them against the CA.
#include "engine.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "acme_client.h"
#include "cert_record.h"
#include "challenge.h"
#include "error.h"
#include "http.h"
#include "json.h"
#include "schedule.h"
#include "store.h"
#include "tls_alpn.h"

namespace acme {

std::string CertificateConfig::basename() const {
    return certificate_basename(identifiers, key_type);
}

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using SteadyClock = std::chrono::steady_clock;

// How long one order may wait for the CA to validate or to issue.
constexpr seconds poll_limit{300};
// Never reschedule a success sooner than this, whatever the CA's validity
// says: a broken notAfter must not turn into a busy loop of orders.
constexpr std::time_t min_reschedule = 5;
// Even with nothing due, the scheduler wakes this often, which keeps it
// right when the wall clock jumps.
constexpr seconds max_idle_wait{3600};

// Thrown inside a worker to abandon its order when stop() is called.
struct Stopped {};

// A failure that carries the ACME problem type behind it, for the .json file.
struct OrderFailure : Error {
    OrderFailure(const std::string& what, std::string problem_type)
        : Error(what), type(std::move(problem_type)) {}
    std::string type;
    // A challenge failed and the CA offered another configured type for the
    // same identifier: a new order can try that one at once.
    bool other_challenge = false;
};

std::string format_time(std::time_t t) {
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
    return buf;
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

std::string authz_name(const Authorization& a) {
    return a.wildcard ? "*." + a.identifier.value : a.identifier.value;
}

std::vector<Identifier> identifier_set(std::vector<Identifier> ids) {
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids;
}

std::string read_file(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error("open() \"" + path + "\" failed: " + std::strerror(errno));
    std::string content;
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            throw Error("read() \"" + path + "\" failed: " + std::strerror(err));
        }
        if (n == 0) break;
        content.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return content;
}

// Delays between polls: the CA's Retry-After when it sends one (within
// reason), else a quick start that backs off, since Pebble and most CAs
// validate within a second or two.
class PollDelay {
public:
    milliseconds next(const std::optional<seconds>& retry_after) {
        if (retry_after) {
            return std::chrono::duration_cast<milliseconds>(
                std::clamp(*retry_after, seconds(1), seconds(60)));
        }
        // The first look is immediate: an order whose authorizations are
        // all valid is usually ready already.
        milliseconds d = delay_;
        delay_ =
            delay_ == milliseconds(0) ? milliseconds(25) : std::min(delay_ * 2, milliseconds(2000));
        return d;
    }

private:
    milliseconds delay_{0};
};

struct IssuerState {
    const IssuerConfig* config = nullptr;
    Store* store = nullptr;  // shared by issuers with the same state_path
    HttpOptions http_options;
    // Guards session creation and account registration, so only the first
    // order of an issuer talks to newAccount.
    std::mutex mutex;
    std::unique_ptr<AcmeSession> session;
    bool account_json_checked = false;
};

struct CertState {
    const CertificateConfig* config = nullptr;
    IssuerState* issuer = nullptr;
    std::string basename;
    std::string name;          // first identifier, for log lines
    RenewBefore renew_before;  // the certificate's, else the issuer's

    // Scheduler fields, guarded by Impl::mutex.
    std::time_t due = 0;
    bool in_flight = false;

    // Owned by whoever runs a job for it (in_flight guarantees one at a time).
    int failures = 0;
    ChallengeHistory challenges;
    std::string profile;                // asked for in the last order, "" for none
    std::time_t retry_at = 0;           // next order attempt, when missing or failing
    std::time_t retry_after_until = 0;  // the CA's Retry-After: no order before this
    std::optional<LastError> last_error;
    std::optional<CertificateInfo> current;
    std::time_t ratio_pick = 0;  // random time in the ratio rule's window
    std::optional<Window> ari_window;
    std::time_t ari_check_at = 0;  // 0: no ARI check planned
    int ari_failures = 0;          // in a row, to warn only once
    std::time_t renewal_at = 0;    // ratio_pick, or earlier when ARI says so

    // Due when missing or failing: the retry time; else the renewal time.
    bool order_due(std::time_t now) const {
        return (!current || failures > 0) ? now >= retry_at : now >= renewal_at;
    }
    // ARI can only bring renewal forward: it is not asked once renewal is
    // due or failing.
    std::time_t next_due() const {
        if (!current || failures > 0) return retry_at;
        return ari_check_at != 0 ? std::min(renewal_at, ari_check_at) : renewal_at;
    }
};

// Publishes challenge answers and withdraws them however the order ends.
class PublishedAnswers {
public:
    explicit PublishedAnswers(ChallengeBoard& board) : board_(board) {}
    ~PublishedAnswers() {
        for (const std::string& t : tokens_) board_.withdraw_http01(t);
        for (const auto& [name, digest] : tls_alpn_) board_.withdraw_tls_alpn01(name, digest);
    }
    PublishedAnswers(const PublishedAnswers&) = delete;
    PublishedAnswers& operator=(const PublishedAnswers&) = delete;

    // False when the board has no room (or cannot serve the type).
    bool publish(const Challenge& challenge, const Identifier& id, const PrivateKey& account_key) {
        std::string answer = key_authorization(challenge.token, account_key);
        if (challenge.type == "tls-alpn-01") {
            std::string name = tls_alpn_server_name(id);
            std::string digest = sha256(answer);
            if (!board_.publish_tls_alpn01(name, id.value, digest)) return false;
            tls_alpn_.emplace_back(std::move(name), std::move(digest));
            return true;
        }
        if (!board_.publish_http01(challenge.token, answer)) return false;
        tokens_.push_back(challenge.token);
        return true;
    }

private:
    ChallengeBoard& board_;
    std::vector<std::string> tokens_;
    std::vector<std::pair<std::string, std::string>> tls_alpn_;  // server name, digest
};

}  // namespace

struct Engine::Impl {
    Impl(EngineConfig c, ChallengeBoard& b, Logger& l)
        : config(std::move(c)), board(b), logger(l) {}

    EngineConfig config;
    ChallengeBoard& board;
    Logger& logger;
    std::mutex log_mutex;  // the glue's Logger need not be thread-safe

    std::mutex mutex;
    std::condition_variable wake;     // scheduler: stop, an order finished
    std::condition_variable work;     // idle workers: queued order or stop
    std::condition_variable stop_cv;  // steps that sleep: stop
    std::atomic<bool> stopping{false};
    std::atomic<bool> is_running{false};
    bool started = false;
    std::thread thread;
    std::deque<CertState*> queue;
    std::vector<std::thread> workers;
    std::size_t idle_workers = 0;
    std::size_t active_orders = 0;
    bool leftovers_withdrawn = false;  // see withdraw_leftover_answers()

    std::map<std::string, std::unique_ptr<Store>> stores;  // by state path
    std::vector<std::unique_ptr<IssuerState>> issuers;
    std::vector<std::unique_ptr<CertState>> certs;
    std::mutex account_key_mutex;  // issuers may share a store and its account.key
    std::mutex random_mutex;
    std::mt19937_64 rng{std::random_device{}()};

    std::uint64_t random() {
        std::lock_guard<std::mutex> lk(random_mutex);
        return rng();
    }

    void log(LogLevel level, const std::string& message) {
        std::lock_guard<std::mutex> lk(log_mutex);
        try {
            logger.log(level, message);
        } catch (...) {
            // Logging must never take the engine down.
        }
    }

    void request_stop() {
        {
            std::lock_guard<std::mutex> lk(mutex);
            stopping = true;
        }
        wake.notify_all();
        work.notify_all();
        stop_cv.notify_all();
    }

    void check_stop() const {
        if (stopping.load()) throw Stopped{};
    }

    // Sleeps unless stop() comes first, in which case the order is abandoned.
    void pause(milliseconds d) {
        std::unique_lock<std::mutex> lk(mutex);
        if (stop_cv.wait_for(lk, d, [this] { return stopping.load(); })) throw Stopped{};
    }

    void run() {
        try {
            if (prepare()) schedule_loop();
        } catch (const std::exception& e) {
            log(LogLevel::crit, std::string("acme: engine failed: ") + e.what());
        }
        request_stop();
        for (std::thread& t : workers) t.join();
        workers.clear();
        // Let go of the store locks now, not at destruction: a stopped
        // engine must not keep a successor waiting.
        queue.clear();
        certs.clear();
        issuers.clear();
        stores.clear();
        is_running = false;
    }

    // Start-up: lock the stores, load account keys, look at what is issued.
    // False when stop() came while waiting for a lock.
    bool prepare() {
        for (const IssuerConfig& ic : config.issuers) {
            auto is = std::make_unique<IssuerState>();
            is->config = &ic;
            auto& store = stores[ic.state_path];
            if (!store) store = std::make_unique<Store>(ic.state_path);
            is->store = store.get();
            // RFC 8555 section 6.1 requires a User-Agent.
            is->http_options.user_agent =
                config.user_agent.empty() ? "ngx_http_acme_module" : config.user_agent;
            is->http_options.ca_file = ic.ca_file;
            is->http_options.verify = ic.verify;
            is->http_options.resolvers = ic.resolvers;
            is->http_options.follow_redirects = true;
            issuers.push_back(std::move(is));
        }

        // Reload and binary upgrade overlap an old and a new helper: the new
        // engine waits until the old one lets go of the state directory.
        std::vector<std::string> unusable;
        for (auto& [path, store] : stores) {
            bool told = false;
            for (;;) {
                bool locked = false;
                try {
                    locked = store->try_lock();
                } catch (const Error& e) {
                    log(LogLevel::error, std::string("acme: ") + e.what() +
                                             ", certificates stored there are not managed");
                    unusable.push_back(path);
                    break;
                }
                if (locked) break;
                if (!told) {
                    log(LogLevel::notice, "acme: state " + quoted(path) +
                                              " is locked by another nginx process, waiting");
                    told = true;
                }
                std::unique_lock<std::mutex> lk(mutex);
                if (stop_cv.wait_for(lk, seconds(1), [this] { return stopping.load(); })) {
                    return false;
                }
            }
            if (!unusable.empty() && unusable.back() == path) continue;
            if (told) log(LogLevel::notice, "acme: state " + quoted(path) + " lock acquired");
            try {
                if (std::size_t n = store->remove_unfinished()) {
                    log(LogLevel::notice, "acme: removed " + std::to_string(n) +
                                              " unfinished file(s) a killed helper left in " +
                                              quoted(path));
                }
            } catch (const Error& e) {
                log(LogLevel::warn, std::string("acme: ") + e.what());
            }
        }

        for (auto& is : issuers) {
            if (std::find(unusable.begin(), unusable.end(), is->config->state_path) !=
                unusable.end()) {
                is->store = nullptr;
                continue;
            }
            try {
                std::lock_guard<std::mutex> lk(is->mutex);
                load_session(*is);
            } catch (const std::exception& e) {
                // Orders retry loading it, with backoff, so a fixed file is
                // picked up without a reload.
                log(LogLevel::error, "acme: issuer " + quoted(is->config->name) + ": " + e.what());
            }
        }

        std::time_t now = std::time(nullptr);
        for (const CertificateConfig& cc : config.certificates) {
            auto it = std::find_if(issuers.begin(), issuers.end(),
                                   [&](const auto& is) { return is->config->name == cc.issuer; });
            if (cc.identifiers.empty()) continue;
            if (it == issuers.end()) {
                log(LogLevel::error, "acme: certificate " + quoted(cc.identifiers.front().value) +
                                         " refers to unknown issuer " + quoted(cc.issuer));
                continue;
            }
            if ((*it)->store == nullptr) continue;
            auto cs = std::make_unique<CertState>();
            cs->config = &cc;
            cs->issuer = it->get();
            cs->basename = cc.basename();
            cs->name = cc.identifiers.front().value;
            cs->renew_before =
                cc.renew_before.set() ? cc.renew_before : (*it)->config->renew_before;
            inspect(*cs, now);
            certs.push_back(std::move(cs));
        }
        return true;
    }

    // Decides from the store whether a certificate is current, and when to
    // act on it.
    void inspect(CertState& c, std::time_t now) {
        Store& store = *c.issuer->store;
        std::string reason;
        std::string saved_serial;
        std::time_t saved_renewal_at = 0;
        std::optional<Window> saved_ari;
        try {
            if (auto meta = store.read(c.basename + store_files::json_suffix)) {
                CertRecord r = parse_cert_record(*meta);
                // Keep counting failures across restarts, so backoff grows, and
                // keep away from challenge types that failed.
                c.failures = r.failures;
                c.challenges = r.challenge_failures;
                // The CA's Retry-After binds a new engine too.
                c.retry_after_until = r.retry_after_until.value_or(0);
                // Rewrites of the .json before the next order keep it.
                c.profile = r.profile;
                saved_serial = r.serial.value_or("");
                saved_renewal_at = r.renewal_at.value_or(0);
                saved_ari = r.ari_window;
                c.last_error = r.last_error;
            }
        } catch (const std::exception&) {
            // An unreadable metadata file only loses that history.
        }
        try {
            auto crt = store.read(c.basename + store_files::cert_suffix);
            auto key = store.read(c.basename + store_files::key_suffix);
            if (!crt || !key) {
                reason = "missing";
            } else {
                CertificateInfo info = inspect_certificate(*crt);
                PrivateKey pkey = PrivateKey::from_pem(*key);
                if (!certificate_matches_key(*crt, pkey)) {
                    reason = "key mismatch";
                } else if (identifier_set(info.names) != identifier_set(c.config->identifiers)) {
                    reason = "names changed";
                } else if (info.not_after <= now) {
                    reason = "expired";
                } else {
                    c.current = info;
                }
                // A crash after storing the certificate but before removing
                // its saved order: that order is done.
                if (auto saved = load_saved_order(c);
                    saved && saved->key && saved->key->to_pem() == pkey.to_pem()) {
                    discard_saved_order(c);
                }
            }
        } catch (const std::exception& e) {
            reason = std::string("unreadable: ") + e.what();
        }

        // A start or reload tries at once what is missing or was failing,
        // unless the CA said when to come back.
        c.retry_at = std::max(now, c.retry_after_until);
        if (c.current) {
            Window w = renewal_window(c.current->not_before, c.current->not_after, c.renew_before);
            // The same random pick as before a restart, if it still fits.
            bool keep = saved_serial == c.current->serial_hex && saved_renewal_at >= w.start &&
                        saved_renewal_at <= w.end;
            c.ratio_pick = keep ? saved_renewal_at : pick_time(w, random());
            c.renewal_at = c.ratio_pick;
            // The CA's last known window, until ARI is asked again.
            if (saved_serial == c.current->serial_hex && saved_ari) {
                c.ari_window = saved_ari;
                if (!keep) c.renewal_at = renewal_time(c.ratio_pick, saved_ari, random());
            }
            // Ask the CA's renewal information at once (a revocation may
            // have moved it); a CA without ARI clears this.
            c.ari_check_at = c.current->ari_cert_id.empty() ? 0 : now;
            log(LogLevel::notice, "acme: certificate " + quoted(c.name) + " is valid until " +
                                      format_time(c.current->not_after) + ", renewal at " +
                                      format_time(c.renewal_at));
        } else {
            std::string when;
            if (c.retry_at > now)
                when = ", not before " + format_time(c.retry_at) + " (Retry-After)";
            log(LogLevel::notice, "acme: certificate " + quoted(c.name) + " needs to be ordered (" +
                                      reason + ")" + when);
        }
        c.due = c.next_due();
    }

    void schedule_loop() {
        const std::size_t max_active =
            static_cast<std::size_t>(std::max(1, config.max_concurrent_orders));
        std::unique_lock<std::mutex> lk(mutex);
        while (!stopping) {
            std::time_t now = std::time(nullptr);
            std::time_t next = 0;
            bool have_next = false;
            for (auto& c : certs) {
                if (c->in_flight) continue;
                if (c->due <= now) {
                    // Due but no capacity: a finishing order wakes us.
                    if (active_orders >= max_active) continue;
                    c->in_flight = true;
                    ++active_orders;
                    queue.push_back(c.get());
                    spawn_worker_if_needed(max_active);
                    work.notify_one();
                } else if (!have_next || c->due < next) {
                    next = c->due;
                    have_next = true;
                }
            }
            if (!leftovers_withdrawn && active_orders == 0) {
                leftovers_withdrawn = true;
                withdraw_leftover_answers();
            }
            auto limit = std::chrono::system_clock::now() + max_idle_wait;
            auto until =
                have_next ? std::min(limit, std::chrono::system_clock::from_time_t(next)) : limit;
            wake.wait_until(lk, until);
        }
    }

    // A helper that was killed (kill -9, or ended by a reload in the middle
    // of an order) leaves its answers in the zone. They are withdrawn the
    // first time nothing runs here, not at start-up: a resumed order needs
    // its answer served until it has published it again, and while no job
    // runs, nothing in the zone is this engine's. (A reload that dropped a
    // state_path can leave the old helper running for a moment longer; it
    // is ended right after, so nothing of value is lost.)
    void withdraw_leftover_answers() {
        if (std::size_t n = board.withdraw_all_challenges()) {
            log(LogLevel::notice, "acme: withdrew " + std::to_string(n) +
                                      " challenge answer(s) left by a previous helper process");
        }
    }

    // Called with mutex held. Threads are created only when no idle one can
    // take the queued order, up to the configured bound.
    void spawn_worker_if_needed(std::size_t max_workers) {
        if (idle_workers >= queue.size() || workers.size() >= max_workers) return;
        try {
            workers.emplace_back([this] { worker_main(); });
        } catch (const std::exception& e) {
            log(LogLevel::error, std::string("acme: cannot start an order thread: ") + e.what());
            if (!workers.empty()) return;
            // Nobody could run it: put it back and try again later.
            CertState* c = queue.back();
            queue.pop_back();
            c->in_flight = false;
            c->due = std::time(nullptr) + 60;
            --active_orders;
        }
    }

    void worker_main() {
        // One HTTP client per issuer and thread: CurlHttpClient keeps a
        // connection cache and is not thread-safe.
        std::map<IssuerState*, std::unique_ptr<HttpClient>> clients;
        std::unique_lock<std::mutex> lk(mutex);
        for (;;) {
            ++idle_workers;
            work.wait(lk, [this] { return stopping.load() || !queue.empty(); });
            --idle_workers;
            if (stopping) return;
            CertState* c = queue.front();
            queue.pop_front();
            lk.unlock();
            bool done = run_job(*c, clients);
            lk.lock();
            if (done) c->due = c->next_due();
            c->in_flight = false;
            --active_orders;
            wake.notify_one();
        }
    }

    // Runs what is due for a certificate: an order, or a look at the CA's
    // renewal information. False when abandoned because of stop().
    bool run_job(CertState& c, std::map<IssuerState*, std::unique_ptr<HttpClient>>& clients) {
        auto& http = clients[c.issuer];
        try {
            if (!http) http = std::make_unique<CurlHttpClient>(c.issuer->http_options);
            if (c.order_due(std::time(nullptr))) {
                attempt(c, *http);
            } else {
                check_renewal_info(c, *http);
            }
        } catch (const Stopped&) {
            return false;
        } catch (const std::exception& e) {
            // Only setting up the HTTP client can get here (attempt() records
            // its own failures); an order thread must never end in terminate.
            clients.erase(c.issuer);
            ++c.failures;  // so that next_due() honours retry_at
            c.retry_at = std::time(nullptr) + 60;
            log(LogLevel::error, "acme: certificate " + quoted(c.name) + ": " + e.what() +
                                     ", next attempt at " + format_time(c.retry_at));
        }
        return true;
    }

    // A protocol client for one job; its in-place retries end with stop().
    AcmeSession& session_of(IssuerState& is) {
        std::lock_guard<std::mutex> lk(is.mutex);
        load_session(is);
        return *is.session;
    }

    void bind_pause(AcmeClient& client) {
        client.set_pause([this](milliseconds d) { pause(d); });
    }

    // RFC 9773: fetch the CA's suggested window; renew early if it moved.
    // Failures only delay the next look: the ratio rule still applies.
    void check_renewal_info(CertState& c, HttpClient& http) {
        std::time_t now = std::time(nullptr);
        std::time_t lifetime = c.current->not_after - c.current->not_before;
        std::optional<seconds> retry_after;
        try {
            AcmeClient client(http, session_of(*c.issuer));
            bind_pause(client);
            if (client.directory().renewal_info.empty()) {
                c.ari_check_at = 0;  // the CA has no ARI: the ratio rule alone
                return;
            }
            RenewalInfo info = client.renewal_info(c.current->ari_cert_id);
            retry_after = info.retry_after;
            Window w{info.window_start, info.window_end};
            if (!c.ari_window || c.ari_window->start != w.start || c.ari_window->end != w.end) {
                std::time_t before = c.renewal_at;
                bool first = !c.ari_window;
                c.ari_window = w;
                c.renewal_at = renewal_time(c.ratio_pick, w, random());
                std::string why =
                    info.explanation_url.empty() ? "" : " (see " + info.explanation_url + ")";
                bool earlier = !first && c.renewal_at < before;
                log(earlier || !why.empty() ? LogLevel::notice : LogLevel::info,
                    "acme: certificate " + quoted(c.name) + ": the CA suggests renewal between " +
                        format_time(w.start) + " and " + format_time(w.end) + why +
                        ", renewal at " + format_time(c.renewal_at));
                write_metadata(c, now);
            }
        } catch (const CaError& e) {
            retry_after = e.retry_after;
            ari_failed(c, e.what(), now, retry_after, lifetime);
            return;
        } catch (const std::exception& e) {
            ari_failed(c, e.what(), now, retry_after, lifetime);
            return;
        }
        c.ari_failures = 0;
        c.ari_check_at = now + ari_recheck_delay(retry_after, lifetime).count();
    }

    void ari_failed(CertState& c, const std::string& what, std::time_t now,
                    std::optional<seconds> retry_after, std::time_t lifetime) {
        c.ari_check_at = now + ari_recheck_delay(retry_after, lifetime).count();
        log(c.ari_failures++ == 0 ? LogLevel::warn : LogLevel::info,
            "acme: renewal information for certificate " + quoted(c.name) +
                " is not available: " + what + ", next check at " + format_time(c.ari_check_at));
    }

    // Runs one order and records the outcome in c and its .json file.
    void attempt(CertState& c, HttpClient& http) {
        auto started = SteadyClock::now();
        std::optional<LastError> failure;
        std::optional<seconds> retry_after;
        try {
            for (int tries = 1;; ++tries) {
                try {
                    run_order_falling_back(c, http);
                    break;
                } catch (const CaError& e) {
                    // The CA lost or dropped the account (a test CA
                    // restarted, say): register again, once.
                    if (tries > 1 || !e.problem.is("accountDoesNotExist")) throw;
                    forget_account(*c.issuer, e.what());
                }
            }
        } catch (const CaError& e) {
            failure = LastError{e.problem.type, e.what(), 0};
            retry_after = e.retry_after;
        } catch (const OrderFailure& e) {
            failure = LastError{e.type, e.what(), 0};
        } catch (const std::exception& e) {
            failure = LastError{"", e.what(), 0};
        }

        std::time_t now = std::time(nullptr);
        if (!failure) {
            c.failures = 0;
            c.retry_after_until = 0;
            c.last_error.reset();
            c.ari_window.reset();
            std::time_t lifetime = c.current->not_after - c.current->not_before;
            // A fresh certificate's window is far off: look at it later.
            auto dir = c.issuer->session ? c.issuer->session->directory() : std::nullopt;
            bool ari = dir && !dir->renewal_info.empty() && !c.current->ari_cert_id.empty();
            c.ari_check_at = ari ? now + ari_recheck_delay(std::nullopt, lifetime).count() : 0;
            c.renewal_at = std::max(c.ratio_pick, now + min_reschedule);
            double took = std::chrono::duration<double>(SteadyClock::now() - started).count();
            char took_text[32];
            std::snprintf(took_text, sizeof(took_text), "%.1f", took);
            log(LogLevel::notice, "acme: certificate " + quoted(c.name) + " issued by " +
                                      quoted(c.issuer->config->name) + ", valid until " +
                                      format_time(c.current->not_after) + ", renewal at " +
                                      format_time(c.renewal_at) + " (order took " + took_text +
                                      " s)");
            write_metadata(c, now);
            // Workers reload on this, so everything is on disk by now.
            board.certificate_updated(c.basename);
            return;
        }

        ++c.failures;
        failure->at = now;
        std::time_t lifetime = c.current ? c.current->not_after - c.current->not_before : 0;
        seconds delay = retry_delay(c.failures, classify_problem(failure->type), lifetime,
                                    retry_after, random());
        c.retry_at = now + static_cast<std::time_t>(delay.count());
        c.retry_after_until =
            retry_after ? now + static_cast<std::time_t>(retry_after->count()) : 0;
        c.last_error = failure;
        log(LogLevel::error, "acme: certificate " + quoted(c.name) + " from " +
                                 quoted(c.issuer->config->name) + " failed: " + failure->detail +
                                 ", next attempt at " + format_time(c.retry_at));
        if (c.current && expiry_near(c.current->not_before, c.current->not_after, now)) {
            log(LogLevel::warn,
                "acme: certificate " + quoted(c.name) +
                    (c.current->not_after <= now ? " expired at " : " expires at ") +
                    format_time(c.current->not_after) + " and could not be renewed yet");
        }
        write_metadata(c, now);
    }

    void forget_account(IssuerState& is, const std::string& why) {
        std::lock_guard<std::mutex> lk(is.mutex);
        log(LogLevel::notice, "acme: issuer " + quoted(is.config->name) + ": " + why +
                                  ", registering the account again");
        is.session->set_account_url("");
        is.account_json_checked = false;
    }

    void write_metadata(const CertState& c, std::time_t now) {
        CertRecord r;
        for (const Identifier& id : c.config->identifiers) r.names.push_back(id.value);
        r.key_type = key_type_name(c.config->key_type);
        r.issuer = c.issuer->config->name;
        r.profile = c.profile;
        if (c.current) {
            r.not_before = c.current->not_before;
            r.not_after = c.current->not_after;
            r.serial = c.current->serial_hex;
            r.renewal_at = c.renewal_at;
            // The CA's window is of this certificate: inspect() trusts it only for the same serial.
            r.ari_window = c.ari_window;
        }
        // Only a failing certificate waits for a retry; otherwise renewal_at says when.
        if (c.failures > 0) r.next_attempt = c.retry_at;
        // A Retry-After that has passed no longer binds anyone.
        if (c.retry_after_until > now) r.retry_after_until = c.retry_after_until;
        r.failures = c.failures;
        r.challenge_failures = c.challenges;
        r.last_error = c.last_error;
        r.updated_at = now;
        try {
            c.issuer->store->write(c.basename + store_files::json_suffix, format_cert_record(r),
                                   0644);
        } catch (const std::exception& e) {
            log(LogLevel::error, std::string("acme: ") + e.what());
        }
    }

    std::optional<SavedOrder> load_saved_order(const CertState& c) {
        Store& store = *c.issuer->store;
        std::string name = c.basename + store_files::order_suffix;
        try {
            auto text = store.read(name);
            if (!text) return std::nullopt;
            return parse_saved_order(*text);
        } catch (const std::exception& e) {
            // Never let a damaged file block renewals: order anew.
            log(LogLevel::warn,
                "acme: ignoring the saved order " + quoted(store.path(name)) + ": " + e.what());
            discard_saved_order(c);
            return std::nullopt;
        }
    }

    // Mode 0600: it holds the new private key once the CSR is sent.
    void save_order(const CertState& c, const std::string& url, const PrivateKey* key) {
        SavedOrder saved;
        saved.url = url;
        if (key != nullptr) saved.key = *key;
        saved.updated_at = std::time(nullptr);
        c.issuer->store->write(c.basename + store_files::order_suffix, format_saved_order(saved),
                               0600);
    }

    void discard_saved_order(const CertState& c) {
        try {
            c.issuer->store->remove(c.basename + store_files::order_suffix);
        } catch (const std::exception& e) {
            log(LogLevel::error, std::string("acme: ") + e.what());
        }
    }

    // Picks up an order an earlier engine left in progress. False (and the
    // file removed) when it cannot be used, so a new order is made; a CA
    // that does not answer leaves the file for the next attempt.
    bool resume_order(const CertState& c, AcmeClient& client, const SavedOrder& saved,
                      Order& order) {
        try {
            order = client.get_order(saved.url);
            if (order.url.empty()) order.url = saved.url;
        } catch (const CaError& e) {
            if (e.problem.status >= 500) throw;
            log(LogLevel::info, "acme: the saved order " + quoted(saved.url) + " for " +
                                    quoted(c.name) + " cannot be resumed: " + e.what());
            discard_saved_order(c);
            order = Order{};
            return false;
        }
        // Past finalize the certificate is of use only with the saved key.
        bool usable = order.status == "pending" || order.status == "ready" ||
                      ((order.status == "processing" || order.status == "valid") && saved.key);
        if (!usable) {
            log(LogLevel::info, "acme: the saved order " + quoted(saved.url) + " for " +
                                    quoted(c.name) + " is " + quoted(order.status) +
                                    ", ordering anew");
            discard_saved_order(c);
            order = Order{};
            return false;
        }
        log(LogLevel::notice, "acme: resuming order " + quoted(saved.url) + " for certificate " +
                                  quoted(c.name) + " (" + order.status + ")");
        return true;
    }

    // newOrder, with "replaces" for a renewal when the CA has ARI; a CA
    // that refuses the replacement gets the order without it.
    Order new_order(CertState& c, AcmeClient& client, const Directory& dir) {
        const std::vector<Identifier>& ids = c.config->identifiers;
        OrderOptions options;
        options.profile = order_profile(c, dir);
        c.profile = options.profile;
        if (c.current && !dir.renewal_info.empty()) options.replaces = c.current->ari_cert_id;
        log(LogLevel::info,
            "acme: ordering certificate " + quoted(c.name) + " from " +
                quoted(c.issuer->config->name) +
                (options.replaces.empty() ? "" : " to replace " + options.replaces));
        if (options.replaces.empty()) return client.new_order(ids, options);
        std::string refused;
        Order order = client.new_order_replacing(ids, options, refused);
        if (!refused.empty()) {
            // Pebble, for one, refuses serials whose DER form has a leading
            // zero (serverInternal: it cannot find the certificate).
            log(LogLevel::notice, "acme: the CA refused the order for " + quoted(c.name) +
                                      " as a replacement (" + refused + "), ordering without");
        }
        return order;
    }

    PrivateKey load_account_key(const IssuerState& is) {
        const std::string& spec = is.config->account_key;
        if (auto type = parse_key_type(spec)) {
            std::lock_guard<std::mutex> lk(account_key_mutex);
            std::string path = is.store->path(store_files::account_key);
            if (auto pem = is.store->read(store_files::account_key)) {
                try {
                    return PrivateKey::from_pem(*pem);
                } catch (const Error& e) {
                    throw Error("account key " + quoted(path) + ": " + e.what());
                }
            }
            PrivateKey key = PrivateKey::generate(*type);
            is.store->write(store_files::account_key, key.to_pem(), 0600);
            log(LogLevel::notice, "acme: issuer " + quoted(is.config->name) +
                                      ": created account key " + quoted(path));
            return key;
        }
        std::string pem = read_file(spec);
        try {
            return PrivateKey::from_pem(pem);
        } catch (const Error& e) {
            throw Error("account key " + quoted(spec) + ": " + e.what());
        }
    }

    // Called with is.mutex held.
    void load_session(IssuerState& is) {
        if (is.session) return;
        is.session = std::make_unique<AcmeSession>(is.config->directory_url, load_account_key(is),
                                                   is.http_options.user_agent);
    }

    void ensure_account(IssuerState& is, AcmeClient& client) {
        std::lock_guard<std::mutex> lk(is.mutex);
        bool registered = false;
        if (is.session->account_url().empty()) {
            AccountSettings settings;
            settings.contacts = is.config->contacts;
            settings.accept_terms = is.config->accept_terms;
            if (!is.config->eab_kid.empty()) {
                settings.eab = ExternalAccountBinding{is.config->eab_kid, is.config->eab_mac_key,
                                                      is.config->eab_alg};
            }
            if (!settings.eab && client.directory().external_account_required) {
                throw Error("issuer " + quoted(is.config->name) +
                            " requires an external account binding: set external_account_key");
            }
            try {
                client.ensure_account(settings);
            } catch (const CaError& e) {
                // Say that it is the account, not the order, that the CA
                // refused: a wrong EAB kid or key shows up here.
                std::string what = "account registration failed";
                if (settings.eab) {
                    what += " (external account binding, kid " + quoted(settings.eab->kid) + ")";
                }
                throw CaError(what + ": ", e.problem, e.retry_after);
            }
            registered = true;
            log(LogLevel::notice, "acme: issuer " + quoted(is.config->name) + ": using account " +
                                      quoted(is.session->account_url()));
        }
        if (registered || !is.account_json_checked) {
            if (registered || !is.store->read(store_files::account_json)) {
                Json j = Json::object();
                j.set("url", is.session->account_url());
                Json contacts = Json::array();
                for (const std::string& c : is.config->contacts) contacts.push(Json::string(c));
                j.set("contact", contacts);
                j.set("thumbprint", is.session->account_key().thumbprint());
                j.set("directory", is.config->directory_url);
                is.store->write(store_files::account_json, j.dump_pretty() + "\n", 0644);
            }
            is.account_json_checked = true;
        }
    }

    // When a challenge fails and the CA offered another configured type for
    // that identifier, a new order tries it at once rather than after the
    // backoff delay. An order stops at its first failed name, so each name
    // may need its own fallback: at most once per name and further type.
    void run_order_falling_back(CertState& c, HttpClient& http) {
        std::size_t fallbacks =
            c.config->identifiers.size() * (c.issuer->config->challenges.size() - 1) + 1;
        for (;;) {
            try {
                run_order(c, http);
                return;
            } catch (const OrderFailure& e) {
                if (!e.other_challenge || fallbacks <= 1) throw;
                --fallbacks;
                log(LogLevel::warn, "acme: certificate " + quoted(c.name) + ": " + e.what() +
                                        ", trying another challenge type");
            }
        }
    }

    // One order: a saved one resumed, or a new one.
    void run_order(CertState& c, HttpClient& http) {
        IssuerState& is = *c.issuer;
        check_stop();
        AcmeSession& session = session_of(is);
        AcmeClient client(http, session);
        bind_pause(client);
        const Directory& dir = client.directory();
        check_stop();
        ensure_account(is, client);
        check_stop();

        Order order;
        std::optional<PrivateKey> key;
        bool resumed = false;
        if (std::optional<SavedOrder> saved = load_saved_order(c)) {
            resumed = resume_order(c, client, *saved, order);
            if (resumed) key = std::move(saved->key);
        }
        if (order.url.empty()) {
            order = new_order(c, client, dir);
            // From here on a crash resumes this order instead of making another.
            save_order(c, order.url, nullptr);
        }
        try {
            complete_order(c, client, session, order, key);
        } catch (const std::exception&) {
            // A resumed order gets one try: one stuck at the CA must not
            // hold up renewal until it expires there.
            if (resumed) discard_saved_order(c);
            throw;
        }
    }

    // Validation, finalize, download and storage of one order.
    void complete_order(CertState& c, AcmeClient& client, AcmeSession& session, Order order,
                        std::optional<PrivateKey> key) {
        const std::vector<Identifier>& ids = c.config->identifiers;
        check_stop();
        if (order.status == "pending") {
            authorize(c, client, order, session.account_key());
            order = wait_order(client, order, {"pending"});
        }
        if (order.status == "ready") {
            // A fresh key for every certificate: renewal rotates it. It is
            // saved before the CSR goes out, so that a crash after finalize
            // can still use the certificate.
            key = PrivateKey::generate(c.config->key_type);
            save_order(c, order.url, &*key);
            order = client.finalize(order,
                                    make_csr_der(*key, ids, c.issuer->config->common_name_in_csr));
            check_stop();
            order = wait_order(client, order, {"ready", "processing"});
        } else if (order.status == "processing") {
            order = wait_order(client, order, {"processing"});
        }
        if (order.status == "invalid") {
            discard_saved_order(c);
            throw order_failure(order, "order for " + quoted(c.name));
        }
        if (order.status != "valid" || order.certificate.empty() || !key) {
            throw Error("order for " + quoted(c.name) + " is " + quoted(order.status) +
                        " instead of \"valid\"");
        }

        std::vector<std::string> alternates;
        std::string chain = client.download_certificate(order.certificate, &alternates);
        check_stop();
        if (!c.issuer->config->preferred_chain.empty()) {
            chain = preferred_chain(c, client, std::move(chain), alternates);
        }
        CertificateInfo info = inspect_certificate(chain);
        if (!certificate_matches_key(chain, *key)) {
            discard_saved_order(c);
            throw Error("the certificate issued for " + quoted(c.name) + " does not match its key");
        }
        if (identifier_set(info.names) != identifier_set(ids)) {
            log(LogLevel::warn, "acme: the certificate issued for " + quoted(c.name) +
                                    " does not carry exactly the configured names");
        }

        // The key goes first: a reader that finds a new .crt must find its key.
        Store& store = *c.issuer->store;
        store.write(c.basename + store_files::key_suffix, key->to_pem(), 0600);
        store.write(c.basename + store_files::cert_suffix, chain, 0644);
        discard_saved_order(c);
        c.current = info;
        c.ratio_pick =
            pick_time(renewal_window(info.not_before, info.not_after, c.renew_before), random());
    }

    // The profile to put in newOrder, checked against the directory's
    // meta.profiles; "" to let the CA choose.
    std::string order_profile(const CertState& c, const Directory& directory) {
        const IssuerConfig& ic = *c.issuer->config;
        const std::string& wanted = !c.config->profile.empty() ? c.config->profile : ic.profile;
        if (wanted.empty()) return "";
        const auto& offered = directory.profiles;
        if (std::find(offered.begin(), offered.end(), wanted) != offered.end()) return wanted;

        std::string list;
        for (const std::string& p : offered) list += (list.empty() ? "" : ", ") + p;
        std::string why = "profile " + quoted(wanted) + " is not offered by issuer " +
                          quoted(ic.name) + " (" +
                          (list.empty() ? "it offers no profiles" : "it offers " + list) + ")";
        if (ic.profile_required) throw Error(why + " and is required, not ordering");
        log(LogLevel::notice, "acme: certificate " + quoted(c.name) + ": " + why +
                                  ", ordering with the CA's default profile");
        return "";
    }

    static std::string top_issuer(const std::string& chain) {
        std::vector<std::string> certs = split_pem_chain(chain);
        return inspect_certificate(certs.back()).issuer_cn;
    }

    // Among the default chain and the alternates the CA offers, the first
    // whose topmost certificate was issued by the preferred name; the
    // default chain when none is.
    std::string preferred_chain(const CertState& c, AcmeClient& client, std::string chain,
                                const std::vector<std::string>& alternates) {
        const std::string& wanted = c.issuer->config->preferred_chain;
        std::vector<std::string> seen{top_issuer(chain)};
        if (seen.front() == wanted) return chain;
        for (const std::string& url : alternates) {
            std::string alternate = client.download_certificate(url);
            check_stop();
            seen.push_back(top_issuer(alternate));
            if (seen.back() == wanted) {
                log(LogLevel::info, "acme: certificate " + quoted(c.name) +
                                        ": using the alternate chain issued by " + quoted(wanted));
                return alternate;
            }
        }
        std::string list;
        for (const std::string& s : seen) list += (list.empty() ? "" : ", ") + quoted(s);
        log(LogLevel::notice, "acme: certificate " + quoted(c.name) + ": no chain issued by " +
                                  quoted(wanted) + " (offered: " + list +
                                  "), using the default chain");
        return chain;
    }

    static OrderFailure order_failure(const Order& order, const std::string& what) {
        if (order.error) {
            return OrderFailure(what + " failed: " + order.error->describe(), order.error->type);
        }
        return OrderFailure(what + " became invalid", "");
    }

    // Polls the order while its status is one of `waiting`.
    Order wait_order(AcmeClient& client, Order order, std::initializer_list<const char*> waiting) {
        auto deadline = SteadyClock::now() + poll_limit;
        PollDelay delay;
        auto is_waiting = [&](const std::string& status) {
            return std::any_of(waiting.begin(), waiting.end(),
                               [&](const char* w) { return status == w; });
        };
        while (is_waiting(order.status)) {
            if (SteadyClock::now() >= deadline) {
                throw Error("order " + quoted(order.url) + " is still " + quoted(order.status) +
                            " after " + std::to_string(poll_limit.count()) + " s");
            }
            pause(delay.next(order.retry_after));
            std::string url = order.url;
            order = client.get_order(url);
            if (order.url.empty()) order.url = url;
        }
        return order;
    }

    struct PendingAuthorization {
        std::string url;
        std::string name;
        Challenge challenge;
        bool alternatives = false;  // the CA offered another configured type
    };

    // Publishes an answer for every pending authorization, then asks the CA
    // to validate them all, then waits: names are validated in parallel.
    void authorize(CertState& c, AcmeClient& client, const Order& order,
                   const PrivateKey& account_key) {
        PublishedAnswers published(board);
        std::vector<PendingAuthorization> pending;
        const std::vector<std::string>& preferred = c.issuer->config->challenges;
        for (const std::string& url : order.authorizations) {
            Authorization a = client.get_authorization(url);
            check_stop();
            std::string name = authz_name(a);
            if (a.status == "valid") continue;
            if (a.status != "pending") throw authorization_failure(a, name);

            // Configured types the CA offers and this build can answer.
            std::vector<std::string> offered;
            for (const Challenge& ch : a.challenges) {
                if (canonical_challenge_type(ch.type) &&
                    std::find(preferred.begin(), preferred.end(), ch.type) != preferred.end()) {
                    offered.push_back(ch.type);
                }
            }
            std::optional<std::string> type = c.challenges.choose(preferred, offered, name);
            if (!type) {
                std::string types;
                for (const Challenge& ch : a.challenges) {
                    types += (types.empty() ? "" : ", ") + ch.type;
                }
                throw Error("the CA offers no configured challenge type for " + quoted(name) +
                            " (it offers " + (types.empty() ? "none" : types) + ")");
            }
            const Challenge* chosen = a.find(*type);
            // The answer must be in place before the CA is told to look.
            if (!published.publish(*chosen, a.identifier, account_key)) {
                throw Error("cannot publish the " + *type + " challenge for " + quoted(name) +
                            ": shared memory is full or the name is too long");
            }
            pending.push_back({url, name, *chosen, offered.size() > 1});
        }

        for (const PendingAuthorization& p : pending) {
            if (p.challenge.status == "pending") client.respond(p.challenge);
            check_stop();
        }

        auto deadline = SteadyClock::now() + poll_limit;
        for (const PendingAuthorization& p : pending) {
            PollDelay delay;
            std::optional<seconds> retry_after;
            for (;;) {
                pause(delay.next(retry_after));
                Authorization a = client.get_authorization(p.url);
                if (a.status == "valid") break;
                if (a.status != "pending" && a.status != "processing") {
                    c.challenges.failed(p.name, p.challenge.type);
                    OrderFailure failure = authorization_failure(a, p.name, p.challenge.type);
                    failure.other_challenge = p.alternatives;
                    throw failure;
                }
                if (SteadyClock::now() >= deadline) {
                    throw Error("authorization for " + quoted(p.name) + " is still " +
                                quoted(a.status) + " after " + std::to_string(poll_limit.count()) +
                                " s");
                }
                retry_after = a.retry_after;
            }
            c.challenges.succeeded(p.name, p.challenge.type);
            log(LogLevel::info, "acme: authorization for " + quoted(p.name) + " is valid (" +
                                    p.challenge.type + ")");
        }
    }

    // `type` names the challenge that was tried, when there was one.
    static OrderFailure authorization_failure(const Authorization& a, const std::string& name,
                                              const std::string& type = "") {
        std::string what = "authorization for " + quoted(name);
        if (!type.empty()) what += " by " + type;
        if (auto problem = a.first_error()) {
            return OrderFailure(what + " failed: " + problem->describe(), problem->type);
        }
        return OrderFailure(what + " is " + quoted(a.status), "");
    }
};

Engine::Engine(EngineConfig config, ChallengeBoard& board, Logger& log)
    : impl_(std::make_unique<Impl>(std::move(config), board, log)) {}

Engine::~Engine() { stop(); }

void Engine::start() {
    Impl& im = *impl_;
    if (im.started) return;
    im.started = true;
    im.is_running = true;
    // The thread (and the order threads it creates) inherit this mask, so
    // nginx's signals keep going to the process's main thread.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    try {
        im.thread = std::thread([&im] { im.run(); });
    } catch (...) {
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        im.is_running = false;
        throw;
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

void Engine::stop() {
    Impl& im = *impl_;
    im.request_stop();
    if (im.thread.joinable()) im.thread.join();
    im.is_running = false;
}

bool Engine::running() const { return impl_->is_running.load(); }

}  // namespace acme
