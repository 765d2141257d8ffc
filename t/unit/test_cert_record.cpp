// Unit tests of the per-certificate files (cert_record.h): <basename>.json
// and <basename>.order.json, which integration tests and people read too.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "acme/cert_record.h"
#include "acme/error.h"
#include "acme/json.h"

namespace {

using acme::CertRecord;
using acme::KeyType;
using acme::LastError;
using acme::PrivateKey;
using acme::SavedOrder;
using acme::Window;

CertRecord full_record() {
    CertRecord r;
    r.names = {"example.com", "www.example.com"};
    r.key_type = "ecdsa:256";
    r.issuer = "pebble";
    r.profile = "shortlived";
    r.not_before = 1700000000;
    r.not_after = 1707776000;
    r.serial = "0a1b2c";
    r.renewal_at = 1705000000;
    r.ari_window = Window{1704000000, 1704100000};
    r.next_attempt = 1700000600;
    r.retry_after_until = 1700000300;
    r.failures = 3;
    r.challenge_failures.failed("example.com", "http-01");
    r.challenge_failures.failed("example.com", "tls-alpn-01");
    r.last_error = LastError{"urn:ietf:params:acme:error:rateLimited", "too many", 1700000100};
    r.updated_at = 1700000200;
    return r;
}

void expect_same(const CertRecord& a, const CertRecord& b) {
    EXPECT_EQ(a.names, b.names);
    EXPECT_EQ(a.key_type, b.key_type);
    EXPECT_EQ(a.issuer, b.issuer);
    EXPECT_EQ(a.profile, b.profile);
    EXPECT_EQ(a.not_before, b.not_before);
    EXPECT_EQ(a.not_after, b.not_after);
    EXPECT_EQ(a.serial, b.serial);
    EXPECT_EQ(a.renewal_at, b.renewal_at);
    ASSERT_EQ(a.ari_window.has_value(), b.ari_window.has_value());
    if (a.ari_window) {
        EXPECT_EQ(a.ari_window->start, b.ari_window->start);
        EXPECT_EQ(a.ari_window->end, b.ari_window->end);
    }
    EXPECT_EQ(a.next_attempt, b.next_attempt);
    EXPECT_EQ(a.retry_after_until, b.retry_after_until);
    EXPECT_EQ(a.failures, b.failures);
    EXPECT_EQ(a.challenge_failures.to_json().dump(), b.challenge_failures.to_json().dump());
    ASSERT_EQ(a.last_error.has_value(), b.last_error.has_value());
    if (a.last_error) {
        EXPECT_EQ(a.last_error->type, b.last_error->type);
        EXPECT_EQ(a.last_error->detail, b.last_error->detail);
        EXPECT_EQ(a.last_error->at, b.last_error->at);
    }
    EXPECT_EQ(a.updated_at, b.updated_at);
}

TEST(CertRecord, FullRoundTrip) {
    CertRecord r = full_record();
    std::string text = acme::format_cert_record(r);
    expect_same(acme::parse_cert_record(text), r);
    // Nothing that formatting writes is lost by parsing.
    EXPECT_EQ(acme::format_cert_record(acme::parse_cert_record(text)), text);
}

TEST(CertRecord, EmptyRoundTrip) {
    CertRecord r;
    expect_same(acme::parse_cert_record(acme::format_cert_record(r)), r);
}

// Every key is present, unknown values as null, so scripts can rely on them.
TEST(CertRecord, UnsetIsNull) {
    acme::Json j = acme::Json::parse(acme::format_cert_record(CertRecord{}));
    std::vector<std::string> keys = j.keys();
    for (const char* key : {"profile", "not_before", "not_after", "serial", "renewal_at",
                            "ari_window", "next_attempt", "retry_after_until", "last_error"}) {
        EXPECT_TRUE(j.get(key).is_null()) << key;
        EXPECT_NE(keys.end(), std::find(keys.begin(), keys.end(), key)) << key;
    }
    EXPECT_EQ(j.get_int("failures"), 0);
    EXPECT_TRUE(j.get("challenge_failures").is_object());
    EXPECT_TRUE(j.get("names").is_array());
}

// A local failure has no ACME problem type: null, and back to "".
TEST(CertRecord, LocalErrorHasNullType) {
    CertRecord r;
    r.last_error = LastError{"", "connect() failed", 42};
    std::string text = acme::format_cert_record(r);
    acme::Json e = acme::Json::parse(text).get("last_error");
    EXPECT_TRUE(e.get("type").is_null());
    EXPECT_EQ(e.get_string("detail"), "connect() failed");
    CertRecord back = acme::parse_cert_record(text);
    ASSERT_TRUE(back.last_error);
    EXPECT_EQ(back.last_error->type, "");
    EXPECT_EQ(back.last_error->at, 42);
}

// An older or hand-edited file gives what it has.
TEST(CertRecord, MissingAndMistypedMembers) {
    CertRecord r = acme::parse_cert_record(
        R"({"failures": 2, "serial": 17, "ari_window": {"start": 5}, "last_error": "x"})");
    EXPECT_EQ(r.failures, 2);
    EXPECT_FALSE(r.serial);
    ASSERT_TRUE(r.ari_window);
    EXPECT_EQ(r.ari_window->start, 5);
    EXPECT_EQ(r.ari_window->end, 0);
    EXPECT_FALSE(r.last_error);
    EXPECT_FALSE(r.renewal_at);
    EXPECT_EQ(r.profile, "");
    expect_same(acme::parse_cert_record("{}"), CertRecord{});
}

TEST(CertRecord, FailuresClamped) {
    EXPECT_EQ(acme::parse_cert_record(R"({"failures": -4})").failures, 0);
    EXPECT_EQ(acme::parse_cert_record(R"({"failures": 99999999999})").failures, 1000);
    EXPECT_EQ(acme::parse_cert_record(R"({"failures": 1000})").failures, 1000);
}

TEST(CertRecord, DamagedFileThrows) {
    EXPECT_THROW(acme::parse_cert_record(""), acme::Error);
    EXPECT_THROW(acme::parse_cert_record(R"({"failures": 1,)"), acme::Error);
}

// The exact text: integration tests and scripts read these files, so a
// change of format must be deliberate.
TEST(CertRecord, ExactText) {
    CertRecord r;
    r.names = {"a.test"};
    r.key_type = "ecdsa:256";
    r.issuer = "ca";
    r.not_before = 10;
    r.not_after = 20;
    r.serial = "01";
    r.renewal_at = 15;
    r.failures = 1;
    r.next_attempt = 12;
    r.challenge_failures.failed("a.test", "http-01");
    r.last_error = LastError{"", "boom", 11};
    r.updated_at = 11;
    EXPECT_EQ(acme::format_cert_record(r),
              R"({
  "ari_window": null,
  "challenge_failures": {
    "a.test": [
      "http-01"
    ]
  },
  "failures": 1,
  "issuer": "ca",
  "key_type": "ecdsa:256",
  "last_error": {
    "at": 11,
    "detail": "boom",
    "type": null
  },
  "names": [
    "a.test"
  ],
  "next_attempt": 12,
  "not_after": 20,
  "not_before": 10,
  "profile": null,
  "renewal_at": 15,
  "retry_after_until": null,
  "serial": "01",
  "updated_at": 11
}
)");
}

TEST(SavedOrder, RoundTripWithoutKey) {
    SavedOrder o;
    o.url = "https://ca.test/order/1";
    o.updated_at = 1700000000;
    std::string text = acme::format_saved_order(o);
    EXPECT_EQ(text, R"({
  "updated_at": 1700000000,
  "url": "https://ca.test/order/1"
}
)");
    SavedOrder back = acme::parse_saved_order(text);
    EXPECT_EQ(back.url, o.url);
    EXPECT_FALSE(back.key);
    EXPECT_EQ(back.updated_at, o.updated_at);
}

TEST(SavedOrder, RoundTripWithKey) {
    SavedOrder o;
    o.url = "https://ca.test/order/2";
    o.key = PrivateKey::generate(KeyType::ecdsa256);
    o.updated_at = 5;
    std::string text = acme::format_saved_order(o);
    EXPECT_EQ(acme::Json::parse(text).get_string("key"), o.key->to_pem());
    SavedOrder back = acme::parse_saved_order(text);
    EXPECT_EQ(back.url, o.url);
    ASSERT_TRUE(back.key);
    EXPECT_EQ(back.key->to_pem(), o.key->to_pem());
}

// The engine orders anew instead of resuming from any of these.
TEST(SavedOrder, DamagedFileThrows) {
    EXPECT_THROW(acme::parse_saved_order("{"), acme::Error);
    EXPECT_THROW(acme::parse_saved_order(R"({"key": null})"), acme::Error);
    EXPECT_THROW(acme::parse_saved_order(R"({"url": ""})"), acme::Error);
    EXPECT_THROW(acme::parse_saved_order(R"({"url": "https://ca.test/o", "key": "not a key"})"),
                 acme::Error);
}

}  // namespace
