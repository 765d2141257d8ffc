// What the shared-memory areas (SharedState, StatusBoard) share: the
// cross-process spin lock and the id hash.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

namespace acme {

inline std::uint64_t fnv1a(std::string_view s) {
    std::uint64_t h = 14695981039346656037ull;
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

// The spin lock, a 64-bit word in shared memory: 0 when free, else the
// owner's pid in the low 32 bits and its start time in the high ones, so
// that a waiter can take it over from a process that died holding it, even
// once its pid is reused. Critical sections are a few hundred bytes of
// copying, so spinning with sched_yield beats any sleeping primitive, as
// long as the owner runs: when it does not (stopped with SIGSTOP,
// descheduled on a busy machine) waiters sleep, a little longer each time,
// instead of burning every core.
class SpinGuard {
public:
    explicit SpinGuard(std::atomic<std::uint64_t>& lock);
    ~SpinGuard() { lock_.store(0, std::memory_order_release); }
    SpinGuard(const SpinGuard&) = delete;
    SpinGuard& operator=(const SpinGuard&) = delete;

private:
    std::atomic<std::uint64_t>& lock_;
};

}  // namespace acme
