// Renewal and retry timing: when a certificate should be renewed, and how long
// to wait after failed orders so a broken setup does not hammer the CA.
#include "schedule.h"

#include <algorithm>
#include <array>

namespace acme {

namespace {

using std::chrono::seconds;

constexpr std::time_t day = 24 * 60 * 60;
constexpr std::string_view acme_error_prefix = "urn:ietf:params:acme:error:";

}  // namespace

Window renewal_window(std::time_t not_before, std::time_t not_after,
                      const RenewBefore& renew_before) {
    std::time_t lifetime = not_after - not_before;
    if (lifetime <= 0) return {not_after, not_after};  // nonsense validity: due
    // Short-lived certificates (e.g. 6-day profiles) get half their lifetime
    // as margin, so a day of CA trouble does not let them lapse.
    std::time_t remaining = lifetime < 10 * day ? lifetime / 2 : lifetime / 3;
    if (renew_before.percent > 0) {
        remaining =
            static_cast<std::time_t>(static_cast<long long>(lifetime) * renew_before.percent / 100);
    } else if (renew_before.seconds > 0 && renew_before.seconds < lifetime) {
        remaining = renew_before.seconds;
    }
    std::time_t moment = not_after - remaining;
    // 2 % of the lifetime either side (a day and a bit for 90 days), but
    // never more than a tenth of the margin, so the window stays well
    // before expiry even with a small override.
    std::time_t half = std::min(lifetime / 50, remaining / 10);
    return {moment - half, moment + half};
}

std::time_t pick_time(const Window& window, std::uint64_t random) {
    if (window.end <= window.start) return window.start;
    auto width = static_cast<std::uint64_t>(window.end - window.start) + 1;
    return window.start + static_cast<std::time_t>(random % width);
}

std::time_t renewal_time(std::time_t ratio_pick, const std::optional<Window>& ari,
                         std::uint64_t random) {
    if (!ari || ari->end < ari->start) return ratio_pick;
    return std::min(ratio_pick, pick_time(*ari, random));
}

seconds ari_recheck_delay(std::optional<seconds> retry_after, std::time_t lifetime) {
    // RFC 9773 leaves the interval to the client when the CA gives none;
    // Let's Encrypt sends 6 hours.
    seconds delay = std::clamp(retry_after.value_or(seconds(6 * 3600)), seconds(60), seconds(day));
    if (lifetime > 0) delay = std::min(delay, seconds(std::max<std::time_t>(1, lifetime / 10)));
    return delay;
}

FailureKind classify_problem(std::string_view type) {
    if (type.substr(0, acme_error_prefix.size()) == acme_error_prefix) {
        type.remove_prefix(acme_error_prefix.size());
    }
    if (type == "rateLimited") return FailureKind::rate_limited;
    // Retrying these soon cannot help: the names, the account or the CA's
    // policy must change first.
    static constexpr std::array<std::string_view, 10> configuration{
        "unauthorized",        "rejectedIdentifier",      "caa",
        "accountDoesNotExist", "unsupportedIdentifier",   "invalidContact",
        "unsupportedContact",  "externalAccountRequired", "userActionRequired",
        "badPublicKey"};
    if (std::find(configuration.begin(), configuration.end(), type) != configuration.end()) {
        return FailureKind::configuration;
    }
    return FailureKind::transient;
}

seconds backoff_delay(int failures) {
    static constexpr std::array<long, 6> steps{60, 120, 300, 600, 1800, 3600};
    if (failures < 1) failures = 1;
    if (failures <= static_cast<int>(steps.size())) return seconds(steps[failures - 1]);
    return seconds(6 * 60 * 60);
}

seconds retry_delay(int failures, FailureKind kind, std::time_t lifetime,
                    std::optional<seconds> retry_after, std::uint64_t random) {
    seconds delay =
        kind == FailureKind::configuration ? backoff_delay(1000) : backoff_delay(failures);
    // Ten tries per lifetime at least: 6 hours between attempts would let
    // a certificate of a day lapse after a short outage.
    if (lifetime > 0) delay = std::min(delay, seconds(std::max<std::time_t>(1, lifetime / 10)));
    // Up to 20 % later, so certificates that failed together spread out.
    delay += seconds(delay.count() * static_cast<long>(random % 2001) / 10000);
    if (retry_after && *retry_after > delay) delay = *retry_after;
    return delay;
}

bool expiry_near(std::time_t not_before, std::time_t not_after, std::time_t now) {
    std::time_t lifetime = std::max<std::time_t>(0, not_after - not_before);
    return now >= not_after - lifetime / 10;
}

}  // namespace acme
