// Renewal and retry timing: when a certificate should be renewed, and how long
// to wait after failed orders so a broken setup does not hammer the CA.
#include "schedule.h"

#include <array>

namespace acme {

namespace {

constexpr std::time_t day = 24 * 60 * 60;

}  // namespace

std::time_t renewal_time(std::time_t not_before, std::time_t not_after) {
    std::time_t lifetime = not_after - not_before;
    if (lifetime <= 0) return not_after;  // nonsense validity: treat as due
    // Short-lived certificates (e.g. 6-day profiles) get half their lifetime
    // as margin, so a day of CA trouble does not let them lapse.
    std::time_t remaining = lifetime < 10 * day ? lifetime / 2 : lifetime / 3;
    return not_after - remaining;
}

std::chrono::seconds backoff_delay(int failures) {
    static constexpr std::array<long, 6> steps{60, 120, 300, 600, 1800, 3600};
    if (failures < 1) failures = 1;
    if (failures <= static_cast<int>(steps.size()))
        return std::chrono::seconds(steps[failures - 1]);
    return std::chrono::seconds(6 * 60 * 60);
}

}  // namespace acme
