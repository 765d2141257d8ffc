// Tests for ACME's flattened JWS: layout, protected header, and signatures
// that verify with the public key (raw r||s rebuilt into DER for ECDSA).
#include <gtest/gtest.h>
#include <jansson.h>
#include <openssl/ec.h>

#include <cstdlib>
#include <memory>

#include "acme/base64url.h"
#include "acme/crypto.h"
#include "acme/jws.h"

namespace {

using acme::KeyType;
using acme::PrivateKey;

struct JsonFree {
    void operator()(json_t* j) const { json_decref(j); }
};
using JsonPtr = std::unique_ptr<json_t, JsonFree>;

JsonPtr parse(const std::string& text) {
    json_error_t error;
    JsonPtr j(json_loads(text.c_str(), 0, &error));
    EXPECT_TRUE(j) << error.text << " in " << text;
    return j;
}

std::string member(json_t* object, const char* name) {
    const char* s = json_string_value(json_object_get(object, name));
    return s != nullptr ? s : "(missing)";
}

std::string compact(json_t* j) {
    char* text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    std::string out = text != nullptr ? text : "";
    free(text);
    return out;
}

// Verifies a JWS signature the way a CA would: from the public key only.
bool verify(const PrivateKey& key, const std::string& input, const std::string& signature) {
    std::string der = signature;
    const EVP_MD* md = EVP_sha256();
    if (key.type() == KeyType::ecdsa256 || key.type() == KeyType::ecdsa384) {
        size_t width = key.type() == KeyType::ecdsa256 ? 32 : 48;
        if (key.type() == KeyType::ecdsa384) md = EVP_sha384();
        if (signature.size() != 2 * width) return false;
        const auto* raw = reinterpret_cast<const unsigned char*>(signature.data());
        ECDSA_SIG* sig = ECDSA_SIG_new();
        ECDSA_SIG_set0(sig, BN_bin2bn(raw, static_cast<int>(width), nullptr),
                       BN_bin2bn(raw + width, static_cast<int>(width), nullptr));
        unsigned char* out = nullptr;
        int len = i2d_ECDSA_SIG(sig, &out);
        der.assign(reinterpret_cast<char*>(out), static_cast<size_t>(len));
        OPENSSL_free(out);
        ECDSA_SIG_free(sig);
    }

    // Round-trip the public key through DER so no private part is involved.
    unsigned char* pub_der = nullptr;
    int pub_len = i2d_PUBKEY(key.get(), &pub_der);
    const unsigned char* p = pub_der;
    acme::EvpPkeyPtr pub(d2i_PUBKEY(nullptr, &p, pub_len));
    OPENSSL_free(pub_der);

    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    bool ok =
        EVP_DigestVerifyInit(ctx, nullptr, md, nullptr, pub.get()) == 1 &&
        EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(der.data()), der.size(),
                         reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

struct Jws {
    JsonPtr outer;
    std::string protected64, payload64, signature;
    std::string header_text;
    JsonPtr header;
};

Jws decode(const std::string& text) {
    Jws jws;
    jws.outer = parse(text);
    EXPECT_EQ(json_object_size(jws.outer.get()), 3u) << text;
    jws.protected64 = member(jws.outer.get(), "protected");
    jws.payload64 = member(jws.outer.get(), "payload");
    jws.signature = acme::base64url_decode(member(jws.outer.get(), "signature"));
    jws.header_text = acme::base64url_decode(jws.protected64);
    jws.header = parse(jws.header_text);
    return jws;
}

class JwsTest : public testing::TestWithParam<KeyType> {
protected:
    static const PrivateKey& key() {
        static const PrivateKey ec256 = PrivateKey::generate(KeyType::ecdsa256);
        static const PrivateKey ec384 = PrivateKey::generate(KeyType::ecdsa384);
        static const PrivateKey rsa = PrivateKey::generate(KeyType::rsa2048);
        switch (GetParam()) {
            case KeyType::ecdsa256:
                return ec256;
            case KeyType::ecdsa384:
                return ec384;
            default:
                return rsa;
        }
    }
};

TEST_P(JwsTest, NewAccountWithJwk) {
    const std::string payload = R"({"termsOfServiceAgreed":true})";
    Jws jws =
        decode(acme::jws_sign(key(), "https://ca.example/acme/new-acct", "nonce-1", "", payload));

    EXPECT_EQ(json_object_size(jws.header.get()), 4u);
    EXPECT_EQ(member(jws.header.get(), "alg"), key().jws_alg());
    EXPECT_EQ(member(jws.header.get(), "nonce"), "nonce-1");
    EXPECT_EQ(member(jws.header.get(), "url"), "https://ca.example/acme/new-acct");
    EXPECT_EQ(json_object_get(jws.header.get(), "kid"), nullptr);
    json_t* jwk = json_object_get(jws.header.get(), "jwk");
    ASSERT_TRUE(json_is_object(jwk));
    EXPECT_EQ(compact(jwk), key().jwk());
    // Members in the documented order, and the jwk exactly as PrivateKey::jwk() writes it.
    EXPECT_EQ(jws.header_text.rfind("{\"alg\":\"" + key().jws_alg() + "\",\"jwk\":" + key().jwk() +
                                        ",\"nonce\":\"nonce-1\",\"url\":",
                                    0),
              0u)
        << jws.header_text;

    EXPECT_EQ(acme::base64url_decode(jws.payload64), payload);
    EXPECT_TRUE(verify(key(), jws.protected64 + "." + jws.payload64, jws.signature));
    // Tampering breaks the signature.
    EXPECT_FALSE(
        verify(key(), jws.protected64 + "." + acme::base64url_encode("{}"), jws.signature));
}

TEST_P(JwsTest, PostAsGetWithKid) {
    const std::string kid = "https://ca.example/acme/acct/42";
    std::string text = acme::jws_sign(key(), "https://ca.example/acme/order/7", "n2", kid, "");
    Jws jws = decode(text);
    EXPECT_NE(text.find("\"payload\":\"\""), std::string::npos) << text;
    EXPECT_EQ(jws.payload64, "");
    EXPECT_EQ(json_object_size(jws.header.get()), 4u);
    EXPECT_EQ(member(jws.header.get(), "kid"), kid);
    EXPECT_EQ(json_object_get(jws.header.get(), "jwk"), nullptr);
    EXPECT_EQ(jws.header_text,
              "{\"alg\":\"" + key().jws_alg() + "\",\"kid\":\"" + kid +
                  "\",\"nonce\":\"n2\",\"url\":\"https://ca.example/acme/order/7\"}");
    EXPECT_TRUE(verify(key(), jws.protected64 + ".", jws.signature));
}

INSTANTIATE_TEST_SUITE_P(AllAlgorithms, JwsTest,
                         testing::Values(KeyType::ecdsa256, KeyType::ecdsa384, KeyType::ecdsa521,
                                         KeyType::rsa2048),
                         [](const testing::TestParamInfo<KeyType>& info) {
                             std::string name = acme::key_type_name(info.param);
                             name[name.find(':')] = '_';  // test names are identifiers
                             return name;
                         });

TEST(Jws, EscapesHeaderStrings) {
    PrivateKey key = PrivateKey::generate(KeyType::ecdsa256);
    const std::string url = "https://ca.example/a\"b\\c\n\x01";
    Jws jws = decode(acme::jws_sign(key, url, "n", "kid\"", "{}"));
    EXPECT_EQ(member(jws.header.get(), "url"), url);
    EXPECT_EQ(member(jws.header.get(), "kid"), "kid\"");
    EXPECT_TRUE(verify(key, jws.protected64 + "." + jws.payload64, jws.signature));
}

}  // namespace
