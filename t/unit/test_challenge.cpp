// Tests of challenge type names and the choice between types (challenge.h).
#include <gtest/gtest.h>

#include "acme/challenge.h"

namespace {

using acme::ChallengeHistory;

TEST(Challenge, CanonicalNames) {
    EXPECT_EQ(acme::canonical_challenge_type("http-01"), "http-01");
    EXPECT_EQ(acme::canonical_challenge_type("http"), "http-01");
    EXPECT_EQ(acme::canonical_challenge_type("tls-alpn-01"), "tls-alpn-01");
    EXPECT_EQ(acme::canonical_challenge_type("tls-alpn"), "tls-alpn-01");
    EXPECT_EQ(acme::canonical_challenge_type("dns-01"), "dns-01");
    EXPECT_EQ(acme::canonical_challenge_type("dns"), "dns-01");
    EXPECT_EQ(acme::canonical_challenge_type("dns-account-01"), std::nullopt);
    EXPECT_EQ(acme::canonical_challenge_type("HTTP-01"), std::nullopt);
    EXPECT_EQ(acme::canonical_challenge_type(""), std::nullopt);
}

const std::vector<std::string> both{"tls-alpn-01", "http-01"};
const std::vector<std::string> all_offered{"http-01", "dns-01", "tls-alpn-01"};

TEST(Challenge, PreferenceOrderAmongOffered) {
    ChallengeHistory h;
    EXPECT_EQ(h.choose(both, all_offered, "a.test"), "tls-alpn-01");
    EXPECT_EQ(h.choose({"http-01", "tls-alpn-01"}, all_offered, "a.test"), "http-01");
    // The CA decides what it offers (IP identifiers get no dns-01, some CAs
    // offer no tls-alpn-01).
    EXPECT_EQ(h.choose(both, {"http-01", "dns-01"}, "a.test"), "http-01");
    EXPECT_EQ(h.choose({"tls-alpn-01"}, {"http-01", "dns-01"}, "a.test"), std::nullopt);
    EXPECT_EQ(h.choose(both, {}, "a.test"), std::nullopt);
}

TEST(Challenge, FallsBackAfterFailureAndRotates) {
    ChallengeHistory h;
    h.failed("a.test", "tls-alpn-01");
    EXPECT_EQ(h.choose(both, all_offered, "a.test"), "http-01");
    // Only that identifier is affected.
    EXPECT_EQ(h.choose(both, all_offered, "b.test"), "tls-alpn-01");
    // With only the failed type on offer, it is tried again.
    EXPECT_EQ(h.choose(both, {"tls-alpn-01"}, "a.test"), "tls-alpn-01");

    // Both failed: the one that failed longest ago comes next.
    h.failed("a.test", "http-01");
    EXPECT_EQ(h.choose(both, all_offered, "a.test"), "tls-alpn-01");
    h.failed("a.test", "tls-alpn-01");
    EXPECT_EQ(h.choose(both, all_offered, "a.test"), "http-01");

    // A type that works again is preferred again, in configured order.
    h.succeeded("a.test", "tls-alpn-01");
    EXPECT_EQ(h.choose(both, all_offered, "a.test"), "tls-alpn-01");
}

TEST(Challenge, WorkingFallbackStaysChosen) {
    // tls-alpn-01 failed once, http-01 then worked: renewals keep using
    // http-01 rather than failing tls-alpn-01 first every time.
    ChallengeHistory h;
    h.failed("a.test", "tls-alpn-01");
    h.succeeded("a.test", "http-01");
    EXPECT_EQ(h.choose(both, all_offered, "a.test"), "http-01");
}

TEST(Challenge, HistoryRoundTripsThroughJson) {
    ChallengeHistory h;
    h.failed("a.test", "http-01");
    h.failed("b.test", "tls-alpn-01");
    h.failed("a.test", "tls-alpn-01");
    acme::Json j = h.to_json();
    EXPECT_EQ(j.dump(), R"({"a.test":["http-01","tls-alpn-01"],"b.test":["tls-alpn-01"]})");

    ChallengeHistory restored;
    restored.load(acme::Json::parse(j.dump()));
    EXPECT_EQ(restored.to_json().dump(), j.dump());
    // Same order of failures: http-01 failed longest ago for a.test.
    EXPECT_EQ(restored.choose(both, all_offered, "a.test"), "http-01");
    EXPECT_EQ(restored.choose(both, all_offered, "b.test"), "http-01");

    // Anything else is ignored (an old or hand-edited file).
    ChallengeHistory other;
    other.load(acme::Json::parse(R"({"a.test":"http-01","b.test":[1,"tls-alpn-01"]})"));
    EXPECT_EQ(other.to_json().dump(), R"({"b.test":["tls-alpn-01"]})");
    other.load(acme::Json());
    other.load(acme::Json::parse("[]"));
    EXPECT_EQ(ChallengeHistory().to_json().dump(), "{}");
}

}  // namespace
