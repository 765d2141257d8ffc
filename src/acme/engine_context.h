// What every part of the engine shares while it runs: its configuration, the
// board workers read, the event sinks, the stop signal and the randomness
// (for jitter). Passed by reference from the engine to the scheduler, the
// order runner and the ARI check.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <mutex>
#include <random>

#include "engine_config.h"
#include "events.h"
#include "order_hook.h"
#include "shared_state.h"
#include "status_board.h"

namespace acme {

// Thrown inside an order thread to abandon its work when the engine stops.
struct Stopped {};

class StopSignal {
public:
    void request() {
        {
            std::lock_guard<std::mutex> lk(mutex_);
            requested_ = true;
        }
        cv_.notify_all();
    }
    bool requested() const { return requested_.load(); }
    // Throws Stopped once stop was requested.
    void check() const {
        if (requested()) throw Stopped{};
    }
    // Waits up to `d`; true when stop came first.
    bool wait(std::chrono::milliseconds d) {
        std::unique_lock<std::mutex> lk(mutex_);
        return cv_.wait_for(lk, d, [this] { return requested_.load(); });
    }
    // Sleeps unless stop comes first, in which case the work is abandoned.
    void pause(std::chrono::milliseconds d) {
        if (wait(d)) throw Stopped{};
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::atomic<bool> requested_{false};
};

// Thread-safe 64-bit random values for renewal times and jitter.
class RandomSource {
public:
    std::uint64_t next() {
        std::lock_guard<std::mutex> lk(mutex_);
        return rng_();
    }

private:
    std::mutex mutex_;
    std::mt19937_64 rng_{std::random_device{}()};
};

struct EngineContext {
    const EngineConfig& config;
    ChallengeBoard& board;
    EventSink& events;
    StopSignal& stop;
    RandomSource& random;
    OrderHook* hook = nullptr;          // asked before every order; null: none
    RenewRequests* requests = nullptr;  // renew-now, polled by the scheduler; null: none

    // The wall clock, in one place.
    std::time_t now() const { return std::time(nullptr); }
    void report(const Event& event) const { events.on_event(event); }
};

}  // namespace acme
