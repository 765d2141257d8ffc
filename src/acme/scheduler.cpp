// The scheduling loop and the pool of order threads.
#include "scheduler.h"

#include <algorithm>

#include "ari.h"
#include "order_runner.h"

namespace acme {

namespace {

// Even with nothing due, the scheduler wakes this often, which keeps it
// right when the wall clock jumps.
constexpr std::chrono::seconds max_idle_wait{3600};
// A certificate whose lease another engine holds is looked at again after
// this long: that engine's result is then in the storage.
constexpr std::time_t lease_recheck = 60;
constexpr std::time_t shared_lease_recheck = 5;
constexpr std::chrono::seconds lease_ttl{600};
// A shared store that could not be reached for a lease is tried again after this.
constexpr std::time_t storage_retry = 5;

}  // namespace

Scheduler::Scheduler(const EngineContext& ctx, std::vector<std::unique_ptr<CertState>>& certs,
                     HttpFactory make_http)
    : ctx_(ctx),
      certs_(certs),
      make_http_(std::move(make_http)),
      max_active_(static_cast<std::size_t>(std::max(1, ctx.config.max_concurrent_orders))) {
    for (auto& c : certs_) {
        Storage* s = &c->storage();
        auto group = std::find_if(stores_.begin(), stores_.end(),
                                  [s](const StoreGroup& g) { return g.storage == s; });
        if (group == stores_.end()) group = stores_.insert(stores_.end(), StoreGroup{s, 0, {}});
        group->certs.push_back(c.get());
    }
}

Scheduler::~Scheduler() {
    wake_for_stop();
    join_workers();
}

void Scheduler::wake_for_stop() {
    std::lock_guard<std::mutex> lk(mutex_);
    wake_.notify_all();
    work_.notify_all();
}

void Scheduler::join_workers() {
    for (std::thread& t : workers_) {
        if (t.joinable()) t.join();
    }
    workers_.clear();
}

void Scheduler::run() {
    {
        std::unique_lock<std::mutex> lk(mutex_);
        std::uint64_t requests_seen = ctx_.requests ? ctx_.requests->request_sequence() : 0;
        take_renew_requests();
        while (!ctx_.stop.requested()) {
            if (ctx_.requests && ctx_.requests->request_sequence() != requests_seen) {
                requests_seen = ctx_.requests->request_sequence();
                take_renew_requests();
            }
            take_remote_changes();
            std::time_t now = ctx_.now();
            std::time_t next = 0;
            bool have_next = false;
            for (auto& c : certs_) {
                if (c->in_flight) continue;
                if (c->due <= now) {
                    // Due but no capacity: a finishing job wakes us.
                    if (active_jobs_ >= max_active_) continue;
                    if (c->issuer->active_jobs >= c->issuer->max_active) continue;
                    c->in_flight = true;
                    ++active_jobs_;
                    ++c->issuer->active_jobs;
                    queue_.push_back(c.get());
                    spawn_worker_if_needed();
                    work_.notify_one();
                } else if (!have_next || c->due < next) {
                    next = c->due;
                    have_next = true;
                }
            }
            if (!leftovers_withdrawn_ && active_jobs_ == 0) {
                leftovers_withdrawn_ = true;
                withdraw_leftover_answers();
            }
            // Renew-now requests are looked for every second (one load).
            auto limit = std::chrono::system_clock::now() +
                         (ctx_.requests ? std::chrono::seconds(1) : max_idle_wait);
            auto until =
                have_next ? std::min(limit, std::chrono::system_clock::from_time_t(next)) : limit;
            wake_.wait_until(lk, until);
        }
        work_.notify_all();
    }
    join_workers();
}

// Called with mutex_ held: a requested certificate is due at once, with a
// new key and order; one whose order runs already is left to it.
void Scheduler::take_renew_requests() {
    if (ctx_.requests == nullptr) return;
    for (const std::string& id : ctx_.requests->take_renew_requests()) {
        for (auto& c : certs_) {
            if (c->basename != id) continue;
            ctx_.report(events::RenewRequested{c->ref(), c->in_flight});
            if (c->in_flight) break;
            c->renew_requested = true;
            c->due = ctx_.now();
            report_state(ctx_, *c);
            break;
        }
    }
}

// Called with mutex_ held: a certificate another node stored (a cluster
// store) is read again at once, so that this engine's schedule and status
// follow it instead of the certificate it had.
void Scheduler::take_remote_changes() {
    for (StoreGroup& g : stores_) {
        // The sequence first: a change that comes while we look is seen next time.
        std::uint64_t now_at = g.storage->change_sequence();
        if (now_at == g.seen) continue;
        for (CertState* c : g.certs) {
            if (!c->in_flight && g.storage->take_changed(c->basename)) {
                c->inspected = false;
                c->due = ctx_.now();
            }
        }
        g.seen = now_at;
    }
}

// A helper that was killed (kill -9, or ended by a reload in the middle of
// an order) leaves its answers in the zone. They are withdrawn the first
// time nothing runs here, not at start-up: a resumed order needs its answer
// served until it has published it again, and while no job runs, nothing
// in the zone is this engine's. (A reload that dropped a state_path can
// leave the old helper running for a moment longer; it is ended right
// after, so nothing of value is lost.)
void Scheduler::withdraw_leftover_answers() {
    if (std::size_t n = ctx_.board.withdraw_all_challenges()) {
        ctx_.report(events::LeftoverAnswersWithdrawn{n});
    }
}

// Called with mutex_ held. Threads are created only when no idle one can
// take the queued job, up to the configured bound.
void Scheduler::spawn_worker_if_needed() {
    if (idle_workers_ >= queue_.size() || workers_.size() >= max_active_) return;
    try {
        workers_.emplace_back([this] { worker_main(); });
    } catch (const std::exception& e) {
        ctx_.report(events::ThreadFailed{e.what()});
        if (!workers_.empty()) return;
        // Nobody could run it: put it back and try again later.
        CertState* c = queue_.back();
        queue_.pop_back();
        c->in_flight = false;
        c->due = ctx_.now() + 60;
        --active_jobs_;
        --c->issuer->active_jobs;
    }
}

void Scheduler::worker_main() {
    Clients clients;
    std::unique_lock<std::mutex> lk(mutex_);
    for (;;) {
        ++idle_workers_;
        work_.wait(lk, [this] { return ctx_.stop.requested() || !queue_.empty(); });
        --idle_workers_;
        if (ctx_.stop.requested()) return;
        CertState* c = queue_.front();
        queue_.pop_front();
        lk.unlock();
        std::optional<std::time_t> next = run_job(*c, clients);
        lk.lock();
        if (next) c->due = *next;
        c->in_flight = false;
        --active_jobs_;
        --c->issuer->active_jobs;
        wake_.notify_one();
    }
}

// Runs what is due for a certificate: an order (under its lease), or a look
// at the CA's renewal information. Returns when it is due next; nullopt
// when abandoned because of stop.
std::optional<std::time_t> Scheduler::run_job(CertState& c, Clients& clients) {
    auto& http = clients[c.issuer];
    try {
        if (!c.inspected) {
            inspect_stored(ctx_, c);
            return c.due;
        }
        // Background traffic (an ARI check, renewing a valid certificate)
        // waits for its place in the issuer's rate; first orders, retries
        // and renew-now go at once.
        std::time_t now = ctx_.now();
        bool background = c.current && c.failures == 0 && !c.renew_requested;
        if (background && c.paced_at == 0) {
            std::time_t at = c.issuer->pacer.claim(now);
            if (at > now) {
                c.paced_at = at;
                return at;
            }
        }
        c.paced_at = 0;
        if (!http) http = make_http_(c.issuer->http_options);
        if (!c.order_due(now)) {
            check_renewal_info(ctx_, c, *http);
            return c.next_due();
        }
        std::unique_ptr<Lease> lease = c.storage().try_lease(c.basename, lease_ttl);
        if (!lease) {
            // Another engine orders it: take its result from the storage.
            c.inspected = false;
            // A cluster's holder announces its result at once; a look every
            // few seconds costs Redis little and takes over soon when the
            // holder dies.
            return ctx_.now() + (c.storage().shared() ? shared_lease_recheck : lease_recheck);
        }
        if (c.storage().shared() && !c.renew_requested) {
            // Another node may have ordered it while we did not hold the
            // lease: take its result rather than order again.
            inspect_stored(ctx_, c);
            if (!c.inspected || !c.order_due(ctx_.now())) return c.due;
        }
        c.lease = lease.get();
        struct Unset {
            CertState& c;
            ~Unset() { c.lease = nullptr; }
        } unset{c};
        attempt_order(ctx_, c, *http);
        return c.next_due();
    } catch (const Stopped&) {
        return std::nullopt;
    } catch (const StorageUnavailable& e) {
        // A shared store out of reach (Redis restarting): not a failure of
        // the certificate, so no backoff; look again soon.
        ctx_.report(events::StorageFailed{"certificate \"" + c.name + "\": " + e.what(), false});
        return ctx_.now() + storage_retry;
    } catch (const std::exception& e) {
        // Only setting up the HTTP client or taking the lease can get here
        // (attempt_order() records its own failures); an order thread must
        // never end in terminate.
        clients.erase(c.issuer);
        ++c.failures;  // so that next_due() honours retry_at
        // The backoff of a failed order: a store that stays unusable (a
        // read-only disk) must not be tried every minute for ever, and a
        // short-lived certificate gets its tenth of the lifetime.
        std::time_t lifetime = c.current ? c.current->not_after - c.current->not_before : 0;
        c.retry_at = ctx_.now() + retry_delay(c.failures, FailureKind::transient, lifetime,
                                              std::nullopt, ctx_.random.next())
                                      .count();
        ctx_.report(events::JobFailed{c.ref(), e.what(), c.retry_at});
        return c.next_due();
    }
}

}  // namespace acme
