// Unit tests of renewal timing and failure backoff (schedule.h).
#include <gtest/gtest.h>

#include "acme/schedule.h"

namespace {

constexpr std::time_t day = 24 * 60 * 60;

TEST(Schedule, NinetyDayCertificateRenewsAfterSixtyDays) {
    std::time_t nb = 1700000000;
    EXPECT_EQ(acme::renewal_time(nb, nb + 90 * day), nb + 60 * day);
}

TEST(Schedule, SixDayCertificateRenewsAtHalfLife) {
    std::time_t nb = 1700000000;
    EXPECT_EQ(acme::renewal_time(nb, nb + 6 * day), nb + 3 * day);
}

TEST(Schedule, TenDaysUsesTheThirdRule) {
    std::time_t nb = 1700000000;
    EXPECT_EQ(acme::renewal_time(nb, nb + 30 * day), nb + 20 * day);
    EXPECT_EQ(acme::renewal_time(nb, nb + 9 * day), nb + 9 * day / 2);
}

TEST(Schedule, NonsenseValidityIsDueAtOnce) {
    EXPECT_EQ(acme::renewal_time(1000, 1000), 1000);
    EXPECT_EQ(acme::renewal_time(2000, 1000), 1000);
}

TEST(Schedule, BackoffSequence) {
    using std::chrono::seconds;
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

}  // namespace
