// Unit tests of renewal timing, ARI window choice, failure backoff and error
// classification (schedule.h).
#include <gtest/gtest.h>

#include <random>

#include "acme/schedule.h"

namespace {

using acme::FailureKind;
using acme::RenewBefore;
using acme::Window;
using std::chrono::seconds;

constexpr std::time_t day = 24 * 60 * 60;
constexpr std::time_t nb = 1700000000;

std::time_t centre(const Window& w) { return w.start + (w.end - w.start) / 2; }

TEST(Schedule, NinetyDayCertificateRenewsAroundSixtyDays) {
    Window w = acme::renewal_window(nb, nb + 90 * day);
    EXPECT_EQ(centre(w), nb + 60 * day);
    // 2 % of the lifetime either side: 1.8 days.
    EXPECT_EQ(w.end - w.start, 2 * (90 * day / 50));
}

TEST(Schedule, ShortLifetimeRenewsAtHalfLife) {
    EXPECT_EQ(centre(acme::renewal_window(nb, nb + 6 * day)), nb + 3 * day);
    EXPECT_EQ(centre(acme::renewal_window(nb, nb + 9 * day)), nb + 9 * day / 2);
    // 10 days and more: a third remains.
    EXPECT_EQ(centre(acme::renewal_window(nb, nb + 30 * day)), nb + 20 * day);
    // Seconds-long test certificates follow the same rule.
    Window w = acme::renewal_window(nb, nb + 40);
    EXPECT_EQ(centre(w), nb + 20);
    EXPECT_LT(w.end, nb + 40);
}

TEST(Schedule, NonsenseValidityIsDueAtOnce) {
    Window w = acme::renewal_window(1000, 1000);
    EXPECT_EQ(w.start, 1000);
    EXPECT_EQ(w.end, 1000);
    EXPECT_EQ(acme::renewal_window(2000, 1000).end, 1000);
}

TEST(Schedule, RenewBeforeOverrides) {
    RenewBefore ten_days;
    ten_days.seconds = 10 * day;
    Window w = acme::renewal_window(nb, nb + 90 * day, ten_days);
    EXPECT_EQ(centre(w), nb + 80 * day);
    // The window shrinks to a tenth of the margin, so it stays before expiry.
    EXPECT_EQ(w.end - w.start, 2 * day);

    RenewBefore half;
    half.percent = 50;
    EXPECT_EQ(centre(acme::renewal_window(nb, nb + 90 * day, half)), nb + 45 * day);

    // A time that does not fit the lifetime falls back to the default rule.
    RenewBefore month;
    month.seconds = 30 * day;
    EXPECT_EQ(centre(acme::renewal_window(nb, nb + 6 * day, month)), nb + 3 * day);
    EXPECT_FALSE(RenewBefore{}.set());
    EXPECT_TRUE(month.set());
}

TEST(Schedule, JitterStaysInsideTheWindowAndSpreads) {
    Window w = acme::renewal_window(nb, nb + 90 * day);
    std::mt19937_64 rng(42);
    std::time_t lo = w.end, hi = w.start;
    for (int i = 0; i < 10000; ++i) {
        std::time_t t = acme::pick_time(w, rng());
        ASSERT_GE(t, w.start);
        ASSERT_LE(t, w.end);
        lo = std::min(lo, t);
        hi = std::max(hi, t);
    }
    // Uniform: both ends of the window get used.
    EXPECT_LT(lo - w.start, day / 10);
    EXPECT_LT(w.end - hi, day / 10);
    EXPECT_EQ(acme::pick_time(Window{5, 5}, 12345), 5);
    EXPECT_EQ(acme::pick_time(Window{5, 4}, 12345), 5);
}

TEST(Schedule, AriWindowChoice) {
    std::time_t ratio = nb + 60 * day;
    // No ARI: the ratio rule's pick.
    EXPECT_EQ(acme::renewal_time(ratio, std::nullopt, 7), ratio);
    // A later window never postpones the ratio rule.
    EXPECT_EQ(acme::renewal_time(ratio, Window{nb + 70 * day, nb + 72 * day}, 7), ratio);
    // A window moved earlier (say after a revocation) wins, at a random
    // point inside it.
    Window moved{nb + 10 * day, nb + 11 * day};
    std::mt19937_64 rng(7);
    for (int i = 0; i < 1000; ++i) {
        std::time_t t = acme::renewal_time(ratio, moved, rng());
        ASSERT_GE(t, moved.start);
        ASSERT_LE(t, moved.end);
    }
    // A window in the past means "now" to the caller: the time is past.
    EXPECT_LT(acme::renewal_time(ratio, Window{nb - 2 * day, nb - day}, 3), nb);
    // An invalid window (end before start) is ignored.
    EXPECT_EQ(acme::renewal_time(ratio, Window{nb + 2, nb + 1}, 3), ratio);
}

TEST(Schedule, AriRecheckDelay) {
    // The CA's Retry-After within [1 min, 1 day].
    EXPECT_EQ(acme::ari_recheck_delay(seconds(21600), 90 * day), seconds(21600));
    EXPECT_EQ(acme::ari_recheck_delay(seconds(5), 90 * day), seconds(60));
    EXPECT_EQ(acme::ari_recheck_delay(seconds(7 * day), 90 * day), seconds(day));
    EXPECT_EQ(acme::ari_recheck_delay(std::nullopt, 90 * day), seconds(6 * 3600));
    // At most a tenth of the lifetime: a one-day certificate every 2.4 h.
    EXPECT_EQ(acme::ari_recheck_delay(seconds(21600), day), seconds(day / 10));
    EXPECT_EQ(acme::ari_recheck_delay(std::nullopt, 120), seconds(12));
    EXPECT_EQ(acme::ari_recheck_delay(std::nullopt, 5), seconds(1));
}

TEST(Schedule, BackoffSequence) {
    EXPECT_EQ(acme::backoff_delay(1), seconds(60));
    EXPECT_EQ(acme::backoff_delay(2), seconds(120));
    EXPECT_EQ(acme::backoff_delay(3), seconds(300));
    EXPECT_EQ(acme::backoff_delay(4), seconds(600));
    EXPECT_EQ(acme::backoff_delay(5), seconds(1800));
    EXPECT_EQ(acme::backoff_delay(6), seconds(3600));
    EXPECT_EQ(acme::backoff_delay(7), seconds(6 * 3600));
    EXPECT_EQ(acme::backoff_delay(100), seconds(6 * 3600));
    EXPECT_EQ(acme::backoff_delay(0), seconds(60));
}

TEST(Schedule, RetryDelayJitterBounds) {
    std::mt19937_64 rng(1);
    for (int failures = 1; failures <= 8; ++failures) {
        seconds base = acme::backoff_delay(failures);
        for (int i = 0; i < 1000; ++i) {
            seconds d = acme::retry_delay(failures, FailureKind::transient, 0, std::nullopt, rng());
            ASSERT_GE(d, base);
            ASSERT_LE(d, base + base / 5);
        }
    }
    // Extremes of the random input.
    EXPECT_EQ(acme::retry_delay(1, FailureKind::transient, 0, std::nullopt, 0), seconds(60));
    EXPECT_EQ(acme::retry_delay(1, FailureKind::transient, 0, std::nullopt, 2000), seconds(72));
}

TEST(Schedule, ConfigurationErrorsGoStraightToTheLongInterval) {
    EXPECT_EQ(acme::retry_delay(1, FailureKind::configuration, 0, std::nullopt, 0),
              seconds(6 * 3600));
    EXPECT_EQ(acme::retry_delay(1, FailureKind::transient, 0, std::nullopt, 0), seconds(60));
}

TEST(Schedule, RetryAfterIsAMinimum) {
    EXPECT_EQ(acme::retry_delay(1, FailureKind::rate_limited, 0, seconds(7200), 0), seconds(7200));
    // A shorter Retry-After does not shorten the backoff.
    EXPECT_EQ(acme::retry_delay(3, FailureKind::rate_limited, 0, seconds(10), 0), seconds(300));
    // Nor does the lifetime cap cut it.
    EXPECT_EQ(acme::retry_delay(1, FailureKind::rate_limited, 40, seconds(100), 0), seconds(100));
}

TEST(Schedule, ShortLifetimeCapsTheBackoff) {
    // A one-day certificate is retried at least every 2.4 hours.
    EXPECT_EQ(acme::retry_delay(7, FailureKind::transient, day, std::nullopt, 0),
              seconds(day / 10));
    EXPECT_EQ(acme::retry_delay(1, FailureKind::configuration, day, std::nullopt, 0),
              seconds(day / 10));
    // 90 days: no cap.
    EXPECT_EQ(acme::retry_delay(7, FailureKind::transient, 90 * day, std::nullopt, 0),
              seconds(6 * 3600));
    EXPECT_EQ(acme::retry_delay(1, FailureKind::transient, 40, std::nullopt, 0), seconds(4));
}

TEST(Schedule, ErrorClassification) {
    for (const char* type : {"unauthorized", "rejectedIdentifier", "caa", "accountDoesNotExist",
                             "unsupportedIdentifier", "externalAccountRequired",
                             "userActionRequired", "invalidContact"}) {
        EXPECT_EQ(acme::classify_problem(std::string("urn:ietf:params:acme:error:") + type),
                  FailureKind::configuration)
            << type;
        EXPECT_EQ(acme::classify_problem(type), FailureKind::configuration) << type;
    }
    EXPECT_EQ(acme::classify_problem("urn:ietf:params:acme:error:rateLimited"),
              FailureKind::rate_limited);
    for (const char* type :
         {"", "urn:ietf:params:acme:error:connection", "urn:ietf:params:acme:error:serverInternal",
          "urn:ietf:params:acme:error:dns", "urn:ietf:params:acme:error:badNonce", "about:blank",
          "urn:example:unauthorized"}) {
        EXPECT_EQ(acme::classify_problem(type), FailureKind::transient) << type;
    }
}

TEST(Schedule, ExpiryWarning) {
    std::time_t na = nb + 90 * day;
    EXPECT_FALSE(acme::expiry_near(nb, na, nb + 60 * day));
    EXPECT_FALSE(acme::expiry_near(nb, na, na - 9 * day - 1));
    EXPECT_TRUE(acme::expiry_near(nb, na, na - 9 * day));
    EXPECT_TRUE(acme::expiry_near(nb, na, na + 1));
}

}  // namespace
