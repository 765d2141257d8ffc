// When to act on a certificate: the renewal window from its validity (or the
// CA's ARI window), the backoff after failed attempts, and which failures
// mean "the configuration is wrong". Pure functions: randomness comes in as
// an argument, so every choice is testable.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string_view>

namespace acme {

// renew_before_expiry: how much validity may remain when renewal is due,
// as a time or as a percentage of the lifetime. Neither set: the default
// (a third, or half for lifetimes under 10 days).
struct RenewBefore {
    std::time_t seconds = 0;  // > 0: a time
    int percent = 0;          // 1..99: a share of the lifetime

    bool set() const { return seconds > 0 || percent > 0; }
};

// A closed interval of time (start <= end).
struct Window {
    std::time_t start = 0;
    std::time_t end = 0;
};

// The window in which renewal is due: centred on the moment when the
// configured share of the lifetime remains, wide enough that a fleet does
// not renew in lockstep, never reaching past not_after. A time override not
// shorter than the lifetime is ignored (it would renew forever).
Window renewal_window(std::time_t not_before, std::time_t not_after,
                      const RenewBefore& renew_before = {});

// A uniformly distributed time in the window; `random` is any 64-bit value.
std::time_t pick_time(const Window& window, std::uint64_t random);

// When to renew given the ratio window's pick and the CA's ARI window
// (RFC 9773 section 4.2): a random time inside the ARI window, but never
// later than the ratio rule's pick, so ARI can only bring renewal forward.
std::time_t renewal_time(std::time_t ratio_pick, const std::optional<Window>& ari,
                         std::uint64_t random);

// When to fetch ARI again after an answer with `retry_after` (or none):
// the CA's interval clamped to [1 min, 1 day], and at most a tenth of the
// certificate's lifetime, so a short certificate sees a moved window in time.
std::chrono::seconds ari_recheck_delay(std::optional<std::chrono::seconds> retry_after,
                                       std::time_t lifetime);

// How a failed attempt counts.
enum class FailureKind {
    transient,      // network, CA errors, validation: grow the backoff
    configuration,  // the CA refuses what is configured: the long interval at once
    rate_limited,   // wait at least the CA's Retry-After
};

// Classifies an ACME problem type (full URN or short name; "" for local errors).
FailureKind classify_problem(std::string_view type);

// Base delay before the next attempt after `failures` consecutive failures
// (failures >= 1): 1 min, 2, 5, 10, 30 min, 1 h, then every 6 h.
std::chrono::seconds backoff_delay(int failures);

// The delay actually used: the base delay (the long one for configuration
// errors), at most a tenth of the certificate's lifetime when one is served
// (lifetime 0: none), plus up to 20 % jitter, and never shorter than
// retry_after (a CA's Retry-After is a minimum).
std::chrono::seconds retry_delay(int failures, FailureKind kind, std::time_t lifetime,
                                 std::optional<std::chrono::seconds> retry_after,
                                 std::uint64_t random);

// Expiry warning: within a tenth of the lifetime of not_after (or past it).
bool expiry_near(std::time_t not_before, std::time_t not_after, std::time_t now);

}  // namespace acme
