// Unit tests for acme::Problem and parse_retry_after (src/acme/problem.cpp).
#include <gtest/gtest.h>

#include "acme/error.h"
#include "acme/problem.h"

namespace acme {
namespace {

using std::chrono::seconds;

TEST(Problem, ParsesAcmeProblem) {
    Problem p = Problem::parse(R"({
        "type": "urn:ietf:params:acme:error:badNonce",
        "detail": "JWS has an invalid anti-replay nonce",
        "status": 400
    })",
                               400);
    EXPECT_EQ(p.type, "urn:ietf:params:acme:error:badNonce");
    EXPECT_EQ(p.short_type(), "badNonce");
    EXPECT_TRUE(p.is("badNonce"));
    EXPECT_FALSE(p.is("malformed"));
    EXPECT_EQ(p.detail, "JWS has an invalid anti-replay nonce");
    EXPECT_EQ(p.status, 400);
    EXPECT_TRUE(p.identifier.empty());
    EXPECT_TRUE(p.subproblems.empty());
    EXPECT_EQ(p.describe(),
              "urn:ietf:params:acme:error:badNonce: JWS has an invalid anti-replay nonce");
}

TEST(Problem, StatusFallsBackToHttpStatus) {
    Problem p = Problem::parse(R"({"type":"urn:ietf:params:acme:error:rateLimited",
                                   "detail":"too many"})",
                               429);
    EXPECT_EQ(p.status, 429);
    EXPECT_TRUE(p.is("rateLimited"));
}

TEST(Problem, NonAcmeTypeIsKeptWhole) {
    Problem p = Problem::parse(R"({"type":"about:blank","detail":"x"})", 500);
    EXPECT_EQ(p.short_type(), "about:blank");
}

TEST(Problem, Subproblems) {
    Problem p = Problem::parse(R"({
        "type": "urn:ietf:params:acme:error:rejectedIdentifier",
        "detail": "Some of the identifiers requested were rejected",
        "status": 400,
        "subproblems": [
            {
                "type": "urn:ietf:params:acme:error:malformed",
                "detail": "Invalid underscore in DNS name \"_example.org\"",
                "identifier": {"type": "dns", "value": "_example.org"}
            },
            {
                "type": "urn:ietf:params:acme:error:rejectedIdentifier",
                "detail": "This CA will not issue for \"example.net\"",
                "status": 403,
                "identifier": {"type": "dns", "value": "example.net"}
            },
            "not an object"
        ]
    })",
                               400);
    ASSERT_EQ(p.subproblems.size(), 2u);
    EXPECT_EQ(p.subproblems[0].identifier, "dns:_example.org");
    EXPECT_TRUE(p.subproblems[0].is("malformed"));
    EXPECT_EQ(p.subproblems[0].status, 400);  // inherited
    EXPECT_EQ(p.subproblems[1].identifier, "dns:example.net");
    EXPECT_EQ(p.subproblems[1].status, 403);
    EXPECT_EQ(p.describe(),
              "urn:ietf:params:acme:error:rejectedIdentifier: Some of the identifiers requested "
              "were rejected; dns:_example.org: Invalid underscore in DNS name \"_example.org\"; "
              "dns:example.net: This CA will not issue for \"example.net\"");
}

TEST(Problem, NonJsonBody) {
    Problem p = Problem::parse("<html>\r\n<body>502 Bad Gateway</body>\r\n</html>\r\n", 502);
    EXPECT_TRUE(p.type.empty());
    EXPECT_EQ(p.short_type(), "");
    EXPECT_EQ(p.status, 502);
    EXPECT_EQ(p.detail, "<html>  <body>502 Bad Gateway</body>  </html>");
    EXPECT_EQ(p.describe(), "HTTP 502: <html>  <body>502 Bad Gateway</body>  </html>");
}

TEST(Problem, LongNonJsonBodyIsCut) {
    std::string body(1000, 'x');
    Problem p = Problem::parse(body, 500);
    EXPECT_EQ(p.detail, std::string(200, 'x'));

    // Never cut inside a UTF-8 sequence.
    std::string utf8 = std::string(199, 'a') + "\xc3\xa9" + "tail";
    EXPECT_EQ(Problem::parse(utf8, 500).detail, std::string(199, 'a'));
}

TEST(Problem, EmptyBodyAndJsonThatIsNotAProblem) {
    Problem empty = Problem::parse("", 503);
    EXPECT_TRUE(empty.type.empty());
    EXPECT_TRUE(empty.detail.empty());
    EXPECT_EQ(empty.status, 503);
    EXPECT_EQ(empty.describe(), "HTTP 503");

    Problem other = Problem::parse(R"({"status":"weird"})", 400);
    EXPECT_TRUE(other.type.empty());
    EXPECT_EQ(other.detail, R"({"status":"weird"})");
    EXPECT_EQ(other.status, 400);

    Problem array = Problem::parse("[1,2]", 400);
    EXPECT_EQ(array.detail, "[1,2]");
}

TEST(Problem, CaErrorCarriesDescription) {
    CaError e(
        Problem::parse(R"({"type":"urn:ietf:params:acme:error:unauthorized","detail":"no"})", 403),
        seconds(5));
    EXPECT_STREQ(e.what(), "urn:ietf:params:acme:error:unauthorized: no");
    EXPECT_EQ(e.retry_after, seconds(5));
}

// 2023-11-14 22:13:20 UTC, a Tuesday.
constexpr std::time_t now = 1700000000;

TEST(RetryAfter, DeltaSeconds) {
    EXPECT_EQ(parse_retry_after("120", now), seconds(120));
    EXPECT_EQ(parse_retry_after("0", now), seconds(0));
    EXPECT_EQ(parse_retry_after("  30 ", now), seconds(30));
}

TEST(RetryAfter, ImfFixdate) {
    EXPECT_EQ(parse_retry_after("Tue, 14 Nov 2023 23:13:20 GMT", now), seconds(3600));
    EXPECT_EQ(parse_retry_after("Tue, 14 Nov 2023 21:13:20 GMT", now), seconds(0));
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), seconds(0));
}

TEST(RetryAfter, Rfc850Date) {
    EXPECT_EQ(parse_retry_after("Tuesday, 14-Nov-23 23:13:20 GMT", now), seconds(3600));
    EXPECT_EQ(parse_retry_after("Tuesday, 14-Nov-23 21:13:20 GMT", now), seconds(0));
    // "94" is 1994, not 2094: more than 50 years ahead means the past century.
    EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), seconds(0));
}

TEST(RetryAfter, AsctimeDate) {
    EXPECT_EQ(parse_retry_after("Tue Nov 14 23:13:20 2023", now), seconds(3600));
    EXPECT_EQ(parse_retry_after("Tue Nov 14 21:13:20 2023", now), seconds(0));
    // Space-padded single-digit day: 2024-03-05 01:02:03 UTC is 1709600523.
    EXPECT_EQ(parse_retry_after("Tue Mar  5 01:02:03 2024", now), seconds(1709600523 - now));
}

TEST(RetryAfter, LeapDay) {
    // 2024-02-29 00:00:00 UTC is 1709164800.
    EXPECT_EQ(parse_retry_after("Thu, 29 Feb 2024 00:00:00 GMT", now), seconds(1709164800 - now));
    EXPECT_EQ(parse_retry_after("Wed, 29 Feb 2023 00:00:00 GMT", now), std::nullopt);
}

TEST(RetryAfter, Garbage) {
    EXPECT_EQ(parse_retry_after("", now), std::nullopt);
    EXPECT_EQ(parse_retry_after("   ", now), std::nullopt);
    EXPECT_EQ(parse_retry_after("-5", now), std::nullopt);
    EXPECT_EQ(parse_retry_after("+5", now), std::nullopt);
    EXPECT_EQ(parse_retry_after("1.5", now), std::nullopt);
    EXPECT_EQ(parse_retry_after("soon", now), std::nullopt);
    EXPECT_EQ(parse_retry_after("12abc", now), std::nullopt);
    EXPECT_EQ(parse_retry_after("99999999999999999999999", now), std::nullopt);
    EXPECT_EQ(parse_retry_after("Tue, 14 Nov 2023 23:13:20", now), std::nullopt);      // no GMT
    EXPECT_EQ(parse_retry_after("Tue, 14 Nov 2023 23:13:20 PST", now), std::nullopt);  // not GMT
    EXPECT_EQ(parse_retry_after("Tue, 14 Foo 2023 23:13:20 GMT", now), std::nullopt);
    EXPECT_EQ(parse_retry_after("Tue, 32 Nov 2023 23:13:20 GMT", now), std::nullopt);
    EXPECT_EQ(parse_retry_after("Tue, 14 Nov 2023 24:13:20 GMT", now), std::nullopt);
    EXPECT_EQ(parse_retry_after("Tue, 14 Nov 2023 23:13:20 GMT extra", now), std::nullopt);
}

}  // namespace
}  // namespace acme
