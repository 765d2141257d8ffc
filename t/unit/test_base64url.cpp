// Tests for base64url encoding as JOSE uses it (RFC 4648 section 5, no padding).
#include <gtest/gtest.h>

#include <random>

#include "acme/base64url.h"
#include "acme/error.h"

namespace {

using acme::base64url_decode;
using acme::base64url_encode;

TEST(Base64url, Rfc4648Vectors) {
    // RFC 4648 section 10, with the padding that base64url omits removed.
    const std::pair<const char*, const char*> vectors[] = {
        {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
    };
    for (const auto& [plain, encoded] : vectors) {
        EXPECT_EQ(base64url_encode(plain), encoded) << plain;
        EXPECT_EQ(base64url_decode(encoded), plain) << encoded;
    }
}

TEST(Base64url, UsesUrlSafeAlphabet) {
    // Standard base64 would give "+/8=" and "/w==".
    EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
    EXPECT_EQ(base64url_encode("\xff"), "_w");
    EXPECT_EQ(base64url_decode("-_8"), "\xfb\xff");
}

TEST(Base64url, AcceptsPadding) {
    EXPECT_EQ(base64url_decode("Zg=="), "f");
    EXPECT_EQ(base64url_decode("Zm8="), "fo");
    EXPECT_EQ(base64url_decode("Zm9v"), "foo");
}

TEST(Base64url, RoundTripsAllLengthsAndBytes) {
    std::mt19937 rng(42);
    for (size_t len = 0; len < 100; ++len) {  // covers every length mod 3 many times
        std::string data(len, '\0');
        for (char& c : data) c = static_cast<char>(rng() & 0xff);
        std::string encoded = base64url_encode(data);
        EXPECT_EQ(encoded.size(), (len * 4 + 2) / 3) << len;
        EXPECT_EQ(encoded.find_first_of("+/="), std::string::npos);
        EXPECT_EQ(base64url_decode(encoded), data) << len;
    }
    std::string all;
    for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
    EXPECT_EQ(base64url_decode(base64url_encode(all)), all);
}

TEST(Base64url, RejectsBadInput) {
    EXPECT_THROW(base64url_decode("Z"), acme::Error);      // impossible length
    EXPECT_THROW(base64url_decode("Zm9vY"), acme::Error);  // impossible length
    EXPECT_THROW(base64url_decode("Zm9v!"), acme::Error);  // not in alphabet
    EXPECT_THROW(base64url_decode("+/8"), acme::Error);    // standard alphabet
    EXPECT_THROW(base64url_decode("Zm 9v"), acme::Error);  // white space
    EXPECT_THROW(base64url_decode("Zh"), acme::Error);     // non-zero trailing bits
    EXPECT_THROW(base64url_decode("Zg="), acme::Error);    // wrong amount of padding
    EXPECT_THROW(base64url_decode("Zg==="), acme::Error);  // too much padding
    EXPECT_THROW(base64url_decode("Z=g="), acme::Error);   // padding in the middle
}

}  // namespace
