// When to act on a certificate: renewal time from its validity, and the
// backoff after failed attempts.
#pragma once

#include <chrono>
#include <ctime>

namespace acme {

// Renewal is due when a third of the lifetime remains (half for lifetimes
// under 10 days).
std::time_t renewal_time(std::time_t not_before, std::time_t not_after);

// Delay before attempt number `failures`+1 after `failures` consecutive
// failures (failures >= 1): 1 min, 2, 5, 10, 30 min, 1 h, then every 6 h.
std::chrono::seconds backoff_delay(int failures);

}  // namespace acme
