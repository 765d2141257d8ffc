// What the shared-memory areas (SharedState, StatusBoard) share: the
// cross-process spin lock (a 32-bit word holding the owner's pid, taken over
// from an owner that died inside a critical section) and the id hash.
#pragma once

#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
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

// The spin lock. Critical sections are a few hundred bytes of copying, so
// spinning with sched_yield beats any sleeping primitive here.
class SpinGuard {
public:
    explicit SpinGuard(std::atomic<std::uint32_t>& lock) : lock_(lock) {
        const std::uint32_t self = static_cast<std::uint32_t>(::getpid());
        for (unsigned spins = 1;; ++spins) {
            std::uint32_t expected = 0;
            if (lock_.compare_exchange_weak(expected, self, std::memory_order_acquire,
                                            std::memory_order_relaxed)) {
                return;
            }
            if (spins % 1024 == 0 && expected != 0 && expected != self &&
                ::kill(static_cast<pid_t>(expected), 0) == -1 && errno == ESRCH) {
                // The owner died inside a critical section (killed worker):
                // take the lock over rather than hang every process.
                if (lock_.compare_exchange_strong(expected, self, std::memory_order_acquire,
                                                  std::memory_order_relaxed)) {
                    return;
                }
            }
            ::sched_yield();
        }
    }
    ~SpinGuard() { lock_.store(0, std::memory_order_release); }
    SpinGuard(const SpinGuard&) = delete;
    SpinGuard& operator=(const SpinGuard&) = delete;

private:
    std::atomic<std::uint32_t>& lock_;
};

}  // namespace acme
