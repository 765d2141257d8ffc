// Unit tests of the sealing of private keys for Redis (sealed_value.h) and
// of SealedStorage around a store (a MemoryStorage stands in for Redis).
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "acme/base64url.h"
#include "acme/sealed_storage.h"
#include "acme/sealed_value.h"
#include "doubles.h"

namespace {

using acme::Access;

const std::string key_a(32, 'a');
const std::string key_b(32, 'b');
const std::string pem = "-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n-----END PRIVATE KEY-----\n";

TEST(SealedValue, RoundTripWithAFreshNonceEachTime) {
    std::string one = acme::seal_value(key_a, "example.test-1a2b3c4d.key", pem);
    std::string two = acme::seal_value(key_a, "example.test-1a2b3c4d.key", pem);
    EXPECT_TRUE(acme::is_sealed(one));
    EXPECT_EQ(one.find("PRIVATE KEY"), std::string::npos);
    EXPECT_NE(one, two);  // another nonce
    EXPECT_EQ(acme::open_sealed(key_a, "example.test-1a2b3c4d.key", one), pem);
    EXPECT_EQ(acme::open_sealed(key_a, "example.test-1a2b3c4d.key", two), pem);
    EXPECT_EQ(acme::open_sealed(key_a, "account.key", acme::seal_value(key_a, "account.key", "")),
              "");
}

TEST(SealedValue, WrongKeyFails) {
    std::string sealed = acme::seal_value(key_a, "account.key", pem);
    EXPECT_THROW(acme::open_sealed(key_b, "account.key", sealed), acme::SealError);
}

TEST(SealedValue, TamperedValueFails) {
    std::string sealed = acme::seal_value(key_a, "account.key", pem);
    std::string raw = acme::base64url_decode(sealed.substr(std::strlen(acme::sealed_prefix)));
    for (std::size_t at : {std::size_t{0}, std::size_t{12}, raw.size() - 1}) {
        std::string bad = raw;
        bad[at] = static_cast<char>(bad[at] ^ 1);
        EXPECT_THROW(acme::open_sealed(key_a, "account.key",
                                       acme::sealed_prefix + acme::base64url_encode(bad)),
                     acme::SealError)
            << "byte " << at;
    }
    EXPECT_THROW(acme::open_sealed(key_a, "account.key", std::string(acme::sealed_prefix) + "AAAA"),
                 acme::SealError);
    EXPECT_THROW(acme::open_sealed(key_a, "account.key", std::string(acme::sealed_prefix) + "!!"),
                 acme::SealError);
}

TEST(SealedValue, MovedToAnotherNameFails) {
    std::string sealed = acme::seal_value(key_a, "a.test-11111111.key", pem);
    EXPECT_THROW(acme::open_sealed(key_a, "b.test-22222222.key", sealed), acme::SealError);
}

TEST(SealedValue, KeyFileIs64HexDigits) {
    std::string hex64 = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    std::string key = acme::parse_sealing_key(hex64 + "\n");
    ASSERT_EQ(key.size(), 32u);
    EXPECT_EQ(static_cast<unsigned char>(key[1]), 0x11);
    EXPECT_EQ(static_cast<unsigned char>(key[31]), 0xff);
    EXPECT_THROW(acme::parse_sealing_key(""), acme::Error);
    EXPECT_THROW(acme::parse_sealing_key(hex64.substr(2)), acme::Error);
    EXPECT_THROW(acme::parse_sealing_key(hex64 + "00"), acme::Error);
    EXPECT_THROW(acme::parse_sealing_key("zz" + hex64.substr(2)), acme::Error);
    EXPECT_THROW(acme::parse_sealing_key(std::string(32, 'k')), acme::Error);
}

TEST(SealedStorage, SealsOnlyPrivateKeyItems) {
    auto inner = std::make_unique<acme_test::MemoryStorage>();
    acme_test::MemoryStorage* raw = inner.get();
    acme::SealedStorage s(std::move(inner), key_a);
    s.store_all({{"account.key", pem, Access::secret},
                 {"c-1a2b3c4d.key", pem, Access::secret},
                 {"c-1a2b3c4d.order.json", "{\"key\":\"" + pem + "\"}", Access::secret},
                 {"c-1a2b3c4d.crt", "CHAIN", Access::shared}});
    for (const char* name : {"account.key", "c-1a2b3c4d.key", "c-1a2b3c4d.order.json"}) {
        ASSERT_TRUE(raw->peek(name)) << name;
        EXPECT_TRUE(acme::is_sealed(*raw->peek(name))) << name;
        EXPECT_EQ(raw->peek(name)->find("PRIVATE KEY"), std::string::npos) << name;
    }
    EXPECT_EQ(raw->peek("c-1a2b3c4d.crt"), "CHAIN");
    EXPECT_EQ(s.load_secret("c-1a2b3c4d.key"), pem);
    EXPECT_EQ(s.load("account.key"), pem);
    EXPECT_EQ(s.load("c-1a2b3c4d.crt"), "CHAIN");
    EXPECT_EQ(s.load("missing.key"), std::nullopt);
}

TEST(SealedStorage, SealsSavedOrderHints) {
    auto inner = std::make_unique<acme_test::MemoryStorage>();
    acme_test::MemoryStorage* raw = inner.get();
    acme::SealedStorage s(std::move(inner), key_a);
    std::string order = "{\"key\":\"" + pem + "\"}";
    s.store_hint("c-1a2b3c4d.order.json", order, Access::secret);
    s.store_hint("c-1a2b3c4d.json", "{}", Access::shared);
    ASSERT_TRUE(raw->peek("c-1a2b3c4d.order.json"));
    EXPECT_TRUE(acme::is_sealed(*raw->peek("c-1a2b3c4d.order.json")));
    EXPECT_EQ(s.load_secret("c-1a2b3c4d.order.json"), order);
    EXPECT_EQ(raw->peek("c-1a2b3c4d.json"), "{}");
}

TEST(SealedStorage, WrongKeyIsAnErrorNamingTheItemAndLeavesIt) {
    auto backend = std::make_shared<acme_test::MemoryBackend>();
    acme::SealedStorage writer(std::make_unique<acme_test::MemoryStorage>(backend), key_a);
    writer.store("account.key", pem, Access::secret);
    auto inner = std::make_unique<acme_test::MemoryStorage>(backend);
    acme_test::MemoryStorage* raw = inner.get();
    std::string before = *raw->peek("account.key");
    acme::SealedStorage reader(std::move(inner), key_b);
    try {
        reader.load_secret("account.key");
        FAIL() << "opened with the wrong key";
    } catch (const acme::SealError& e) {
        EXPECT_NE(std::string(e.what()).find("account.key"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("encrypt_key_file"), std::string::npos) << e.what();
    }
    EXPECT_EQ(raw->peek("account.key"), before);
}

TEST(SealedStorage, SealedKeyMovedToAnotherNameFails) {
    auto inner = std::make_unique<acme_test::MemoryStorage>();
    acme_test::MemoryStorage* raw = inner.get();
    acme::SealedStorage s(std::move(inner), key_a);
    s.store("a-11111111.key", pem, Access::secret);
    raw->store("b-22222222.key", *raw->peek("a-11111111.key"), Access::secret);
    EXPECT_THROW(s.load_secret("b-22222222.key"), acme::SealError);
}

TEST(SealedStorage, PlainKeyIsAcceptedAndRewrittenSealed) {
    auto inner = std::make_unique<acme_test::MemoryStorage>();
    acme_test::MemoryStorage* raw = inner.get();
    raw->store("c-1a2b3c4d.key", pem, Access::secret);
    std::vector<std::string> notices;
    acme::SealedStorage s(std::move(inner), key_a,
                          [&notices](const std::string& text) { notices.push_back(text); });
    EXPECT_EQ(s.load_secret("c-1a2b3c4d.key"), pem);
    ASSERT_TRUE(raw->peek("c-1a2b3c4d.key"));
    EXPECT_TRUE(acme::is_sealed(*raw->peek("c-1a2b3c4d.key")));
    EXPECT_EQ(acme::open_sealed(key_a, "c-1a2b3c4d.key", *raw->peek("c-1a2b3c4d.key")), pem);
    ASSERT_EQ(notices.size(), 1u);
    EXPECT_NE(notices[0].find("c-1a2b3c4d.key"), std::string::npos) << notices[0];
    // Read again: already sealed, no second rewrite.
    EXPECT_EQ(s.load_secret("c-1a2b3c4d.key"), pem);
    EXPECT_EQ(notices.size(), 1u);
}

}  // namespace
