// When each certificate needs work: the scheduler thread hands what is due
// (an order, or a look at the CA's renewal information) to a bounded pool of
// order threads and sleeps until the next due time or a finished job.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "cert_state.h"
#include "http.h"

namespace acme {

class Scheduler {
public:
    // One HTTP client per issuer and order thread: clients keep a
    // connection cache and need not be thread-safe.
    using HttpFactory = std::function<std::unique_ptr<HttpClient>(const HttpOptions&)>;

    Scheduler(const EngineContext& ctx, std::vector<std::unique_ptr<CertState>>& certs,
              HttpFactory make_http);
    ~Scheduler();  // stop() and join the order threads
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    // Runs until the context's stop signal, then joins the order threads.
    void run();
    // Wakes the scheduler and idle order threads after ctx.stop.request().
    void wake_for_stop();

private:
    using Clients = std::map<IssuerState*, std::unique_ptr<HttpClient>>;

    void spawn_worker_if_needed();
    void worker_main();
    std::optional<std::time_t> run_job(CertState& c, Clients& clients);
    void withdraw_leftover_answers();
    void take_renew_requests();
    void take_remote_changes();
    void join_workers();

    const EngineContext& ctx_;
    std::vector<std::unique_ptr<CertState>>& certs_;
    HttpFactory make_http_;
    const std::size_t max_active_;

    std::mutex mutex_;
    std::condition_variable wake_;  // scheduler: stop, a job finished
    std::condition_variable work_;  // idle order threads: a queued job or stop
    std::deque<CertState*> queue_;
    std::vector<std::thread> workers_;
    std::size_t idle_workers_ = 0;
    std::size_t active_jobs_ = 0;
    bool leftovers_withdrawn_ = false;  // see withdraw_leftover_answers()
    // The certificates by store, and the change sequence last seen of
    // each: looking for other engines' changes costs one call per store
    // at every wake, not one per certificate (10,000 per finished order).
    struct StoreGroup {
        Storage* storage;
        std::uint64_t seen = 0;
        std::vector<CertState*> certs;
    };
    std::vector<StoreGroup> stores_;
};

}  // namespace acme
