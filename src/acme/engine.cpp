// The engine's start-up and lifetime: its thread locks the storages, loads
// the issuers' accounts, inspects every certificate, then runs the
// scheduler until stopped.
#include "engine.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <map>
#include <thread>

#include "cert_state.h"
#include "error.h"
#include "file_storage.h"
#include "log_sink.h"
#include "ocsp_stapler.h"
#include "scheduler.h"

namespace acme {

std::string CertificateConfig::basename() const {
    return certificate_basename(identifiers, key_type);
}

namespace {

constexpr std::chrono::milliseconds max_restart_delay{600 * 1000};

}  // namespace

struct Engine::Impl {
    Impl(EngineConfig c, ChallengeBoard& board, Logger& logger, StorageFactory storage)
        : config(std::move(c)),
          make_storage(std::move(storage)),
          log_sink(logger),
          ctx{config, board, sinks, stop, random} {
        if (!make_storage) {
            make_storage = [](const std::string& path) {
                return std::make_unique<FileStorage>(path);
            };
        }
        sinks.add(log_sink);
    }

    EngineConfig config;
    StorageFactory make_storage;
    LogSink log_sink;
    EventSinks sinks;
    StopSignal stop;
    RandomSource random;
    EngineContext ctx;

    bool started = false;
    std::atomic<bool> is_running{false};
    std::thread thread;
    std::mutex scheduler_mutex;  // guards `scheduler` against stop() from outside
    Scheduler* scheduler = nullptr;

    std::map<std::string, std::unique_ptr<Storage>> storages;  // by state path
    std::vector<std::unique_ptr<IssuerState>> issuers;
    std::vector<std::unique_ptr<CertState>> certs;

    void request_stop() {
        stop.request();
        std::lock_guard<std::mutex> lk(scheduler_mutex);
        if (scheduler != nullptr) scheduler->wake_for_stop();
    }

    // Runs until stopped. A failure of the engine as a whole (not of one
    // order: those are retried by the scheduler) lets go of everything and
    // starts again after a growing delay, so that a passing problem does
    // not leave certificates unmanaged until the next reload.
    void run() {
        std::chrono::milliseconds delay = config.restart_delay;
        for (;;) {
            try {
                run_once();
                break;
            } catch (const std::exception& e) {
                ctx.report(events::EngineFailed{e.what(), delay});
            }
            release();
            if (stop.wait(delay)) break;
            delay = std::min(delay * 2, max_restart_delay);
        }
        release();
        is_running = false;
    }

    // Let go of the storage locks: a stopped or failed engine must not
    // keep a successor waiting.
    void release() {
        certs.clear();
        issuers.clear();
        storages.clear();
    }

    void run_once() {
        if (!prepare()) return;
        Scheduler s(ctx, certs, [](const HttpOptions& options) {
            return std::make_unique<CurlHttpClient>(options);
        });
        struct Published {
            Impl& im;
            Published(Impl& i, Scheduler* s) : im(i) { set(s); }
            ~Published() { set(nullptr); }
            void set(Scheduler* s) {
                std::lock_guard<std::mutex> lk(im.scheduler_mutex);
                im.scheduler = s;
            }
        } published(*this, &s);
        // OCSP responses for stapling, beside the orders; joined before
        // the certificates it looks at go.
        OcspStapler stapler(ctx, certs, [](const HttpOptions& options) {
            return std::make_unique<CurlHttpClient>(options);
        });
        stapler.start();
        // A stop() that came before `scheduler` was set is seen here.
        if (!stop.requested()) s.run();
    }

    // Waits for the storage lock (a reload or binary upgrade overlaps an
    // old and a new helper), then cleans up after a killed one. False when
    // the storage cannot be used; throws Stopped when stop() came first.
    bool lock_storage(const std::string& path, Storage& storage) {
        bool told = false;
        for (;;) {
            try {
                if (storage.try_lock()) break;
            } catch (const Error& e) {
                ctx.report(events::StoreUnusable{e.what()});
                return false;
            }
            if (!told) {
                ctx.report(events::StoreWaiting{path});
                told = true;
            }
            if (stop.wait(std::chrono::seconds(1))) throw Stopped{};
        }
        if (told) ctx.report(events::StoreLocked{path});
        try {
            if (std::size_t n = storage.remove_unfinished()) {
                ctx.report(events::UnfinishedRemoved{path, n});
            }
        } catch (const Error& e) {
            ctx.report(events::StorageFailed{e.what(), true});
        }
        return true;
    }

    // Start-up: lock the storages, load account keys, look at what is
    // stored. False when stop() came while waiting for a lock.
    bool prepare() {
        for (const IssuerConfig& ic : config.issuers) {
            auto is = std::make_unique<IssuerState>();
            is->config = &ic;
            auto& storage = storages[ic.state_path];
            if (!storage) storage = make_storage(ic.state_path);
            is->storage = storage.get();
            // RFC 8555 section 6.1 requires a User-Agent.
            is->http_options.user_agent =
                config.user_agent.empty() ? "ngx_http_acme_module" : config.user_agent;
            is->http_options.ca_file = ic.ca_file;
            is->http_options.verify = ic.verify;
            is->http_options.resolvers = ic.resolvers;
            SolverEnv env;
            env.pause = [&stop = ctx.stop](std::chrono::milliseconds d) { stop.pause(d); };
            env.note = [this, name = ic.name](const std::string& what, bool warn) {
                ctx.report(events::SolverNote{name, what, warn, {}, {}, {}});
            };
            env.record_needed = [this, name = ic.name](const std::string& what,
                                                       const std::string& record,
                                                       const std::string& value) {
                ctx.report(events::SolverNote{name, what, true, record, "TXT", value});
            };
            env.account_url = [this, is = is.get()] {
                return issuer_session(ctx, *is).account_url();
            };
            is->solvers = make_solvers(ic, ctx.board, std::move(env));
            is->pacer.set_rate(ic.background_rate);
            is->max_active = static_cast<std::size_t>(
                ic.max_concurrent_orders > 0 ? ic.max_concurrent_orders
                                             : std::max(1, config.max_concurrent_orders));
            issuers.push_back(std::move(is));
        }

        std::vector<Storage*> unusable;
        try {
            for (auto& [path, storage] : storages) {
                if (!lock_storage(path, *storage)) unusable.push_back(storage.get());
            }
        } catch (const Stopped&) {
            return false;
        }

        for (auto& is : issuers) {
            if (std::find(unusable.begin(), unusable.end(), is->storage) != unusable.end()) {
                is->storage = nullptr;
                continue;
            }
            try {
                issuer_session(ctx, *is);
            } catch (const std::exception& e) {
                // Orders retry loading it, with backoff, so a fixed file is
                // picked up without a reload.
                ctx.report(events::IssuerFailed{is->config->name, e.what()});
            }
        }

        for (const CertificateConfig& cc : config.certificates) {
            if (cc.identifiers.empty()) continue;
            auto it = std::find_if(issuers.begin(), issuers.end(),
                                   [&](const auto& is) { return is->config->name == cc.issuer; });
            if (it == issuers.end()) {
                ctx.report(events::UnknownIssuer{{"", cc.identifiers.front().value}, cc.issuer});
                continue;
            }
            if ((*it)->storage == nullptr) continue;
            auto cs = std::make_unique<CertState>();
            cs->config = &cc;
            cs->issuer = it->get();
            cs->basename = cc.basename();
            cs->name = cc.identifiers.front().value;
            cs->renew_before =
                cc.renew_before.set() ? cc.renew_before : (*it)->config->renew_before;
            inspect_stored(ctx, *cs);
            certs.push_back(std::move(cs));
        }
        return true;
    }
};

Engine::Engine(EngineConfig config, ChallengeBoard& board, Logger& log, StorageFactory storage)
    : impl_(std::make_unique<Impl>(std::move(config), board, log, std::move(storage))) {}

Engine::~Engine() { stop(); }

void Engine::add_sink(EventSink& sink) { impl_->sinks.add(sink); }

EventSink& Engine::events() { return impl_->sinks; }

void Engine::set_order_hook(OrderHook& hook) { impl_->ctx.hook = &hook; }

void Engine::set_renew_requests(RenewRequests& requests) { impl_->ctx.requests = &requests; }

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
