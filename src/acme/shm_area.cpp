// The cross-process spin lock of the shared-memory areas.
#include "shm_area.h"

#include <sched.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace acme {

// Only lock-free atomics work between processes: a lock-based fallback
// would keep its mutex outside the shared memory.
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "need lock-free 64-bit atomics");

namespace {

// A process's start time in clock ticks since boot (field 22 of
// /proc/PID/stat), cut to 32 bits; 0 when it cannot be read.
std::uint32_t start_time(pid_t pid) {
    char path[64];
    std::snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
    FILE* f = std::fopen(path, "re");
    if (f == nullptr) return 0;
    char buf[1024];
    std::size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    // The command name (field 2) may hold spaces and parentheses: count
    // from the last ')'.
    const char* p = std::strrchr(buf, ')');
    if (p == nullptr) return 0;
    for (int field = 2; field < 22 && *p != '\0'; ++p) {
        if (*p == ' ') ++field;
    }
    return static_cast<std::uint32_t>(std::strtoull(p, nullptr, 10));
}

std::uint64_t owner_word(pid_t pid, std::uint32_t started) {
    return (std::uint64_t{started} << 32) | static_cast<std::uint32_t>(pid);
}

std::uint64_t self_word() {
    // Per process: a forked child computes its own.
    static thread_local pid_t cached_pid = 0;
    static thread_local std::uint64_t cached = 0;
    pid_t pid = ::getpid();
    if (pid != cached_pid) {
        cached = owner_word(pid, start_time(pid));
        cached_pid = pid;
    }
    return cached;
}

// The owner is gone: no such process, or another process has its pid now.
bool owner_dead(std::uint64_t word) {
    auto pid = static_cast<pid_t>(word & 0xffffffffu);
    auto started = static_cast<std::uint32_t>(word >> 32);
    if (::kill(pid, 0) == -1 && errno == ESRCH) return true;
    std::uint32_t now = start_time(pid);
    return now != 0 && started != 0 && now != started;
}

}  // namespace

SpinGuard::SpinGuard(std::atomic<std::uint64_t>& lock) : lock_(lock) {
    const std::uint64_t self = self_word();
    long sleep_ns = 50 * 1000;
    for (unsigned spins = 1;; ++spins) {
        std::uint64_t expected = 0;
        if (lock_.compare_exchange_weak(expected, self, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
            return;
        }
        if (spins % 64 == 0 && expected != 0 && expected != self && owner_dead(expected)) {
            // The owner died inside a critical section (killed worker): take
            // the lock over rather than hang every process.
            if (lock_.compare_exchange_strong(expected, self, std::memory_order_acquire,
                                              std::memory_order_relaxed)) {
                return;
            }
        }
        if (spins < 256) {
            ::sched_yield();
        } else {
            struct timespec ts {};
            ts.tv_nsec = sleep_ns;
            ::nanosleep(&ts, nullptr);
            sleep_ns = std::min(sleep_ns * 2, 5 * 1000 * 1000L);
        }
    }
}

}  // namespace acme
