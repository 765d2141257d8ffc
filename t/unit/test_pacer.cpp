// Unit tests of the per-issuer rate of background requests (pacer.h).
#include <gtest/gtest.h>

#include <map>

#include "acme/pacer.h"

namespace {

TEST(Pacer, SpreadsABurstAtTheRate) {
    acme::Pacer pacer(4);
    std::map<std::time_t, int> per_second;
    for (int i = 0; i < 10000; ++i) per_second[pacer.claim(1000)]++;
    // 10,000 requests due at once go out 4 a second, none in the past.
    EXPECT_EQ(per_second.begin()->first, 1000);
    EXPECT_EQ(per_second.rbegin()->first, 1000 + 10000 / 4 - 1);
    for (const auto& [second, n] : per_second) ASSERT_EQ(n, 4) << second;
}

TEST(Pacer, QuietTimeGivesNoBurst) {
    acme::Pacer pacer(2);
    EXPECT_EQ(pacer.claim(100), 100);
    // An hour later the first two go at once, the third waits.
    EXPECT_EQ(pacer.claim(3700), 3700);
    EXPECT_EQ(pacer.claim(3700), 3700);
    EXPECT_EQ(pacer.claim(3700), 3701);
}

TEST(Pacer, RateChanges) {
    acme::Pacer pacer;
    pacer.set_rate(1);
    EXPECT_EQ(pacer.claim(10), 10);
    EXPECT_EQ(pacer.claim(10), 11);
    EXPECT_EQ(pacer.claim(10), 12);
}

}  // namespace
