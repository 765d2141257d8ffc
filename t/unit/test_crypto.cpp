// Tests for keys, JWK, digests, CSRs and certificate handling, checked
// against OpenSSL parsing the results back independently.
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "acme/base64url.h"
#include "acme/crypto.h"
#include "acme/error.h"

namespace {

using acme::Identifier;
using acme::KeyType;
using acme::PrivateKey;

Identifier dns(const char* v) { return {Identifier::Type::dns, v}; }
Identifier ip(const char* v) { return {Identifier::Type::ip, v}; }

struct BioFree {
    void operator()(BIO* b) const { BIO_free_all(b); }
};
struct ReqFree {
    void operator()(X509_REQ* r) const { X509_REQ_free(r); }
};
struct NamesFree {
    void operator()(GENERAL_NAMES* n) const { GENERAL_NAMES_free(n); }
};
struct ExtsFree {
    void operator()(STACK_OF(X509_EXTENSION) * e) const {
        sk_X509_EXTENSION_pop_free(e, X509_EXTENSION_free);
    }
};
struct CtxFree {
    void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};

// Key generation (RSA especially) is slow, so each type is made once.
const PrivateKey& key_of(KeyType type) {
    static std::mutex mutex;
    static std::map<KeyType, PrivateKey> keys;
    std::lock_guard<std::mutex> lock(mutex);
    auto it = keys.find(type);
    if (it == keys.end()) it = keys.emplace(type, PrivateKey::generate(type)).first;
    return it->second;
}

std::string pem_of(EVP_PKEY* key, bool traditional) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    int ok = traditional
                 ? PEM_write_bio_PrivateKey_traditional(bio.get(), key, nullptr, nullptr, 0,
                                                        nullptr, nullptr)
                 : PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
    EXPECT_EQ(ok, 1);
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(len));
}

acme::EvpPkeyPtr raw_key(const char* algorithm, const char* group, unsigned bits) {
    std::unique_ptr<EVP_PKEY_CTX, CtxFree> ctx(
        EVP_PKEY_CTX_new_from_name(nullptr, algorithm, nullptr));
    EXPECT_EQ(EVP_PKEY_keygen_init(ctx.get()), 1);
    if (group != nullptr) {
        EXPECT_EQ(EVP_PKEY_CTX_set_group_name(ctx.get(), group), 1);
    }
    if (bits != 0) {
        EXPECT_EQ(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), static_cast<int>(bits)), 1);
    }
    EVP_PKEY* key = nullptr;
    EXPECT_EQ(EVP_PKEY_generate(ctx.get(), &key), 1);
    return acme::EvpPkeyPtr(key);
}

acme::X509Ptr parse_cert(const std::string& pem) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    return acme::X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

// SANs of a GENERAL_NAMES as "DNS:name" / "IP:<raw bytes as hex>".
std::vector<std::string> describe(const GENERAL_NAMES* names) {
    std::vector<std::string> out;
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
        const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
        if (name->type == GEN_DNS) {
            const ASN1_STRING* s = name->d.dNSName;
            out.push_back("DNS:" +
                          std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                      static_cast<size_t>(ASN1_STRING_length(s))));
        } else if (name->type == GEN_IPADD) {
            const ASN1_STRING* s = name->d.iPAddress;
            out.push_back("IP:" + acme::hex(std::string(
                                      reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                      static_cast<size_t>(ASN1_STRING_length(s)))));
        } else {
            out.push_back("other");
        }
    }
    return out;
}

std::string common_name(const X509_NAME* name) {
    int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (index < 0) return "(none)";
    const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<size_t>(ASN1_STRING_length(s)));
}

// Matches text against literal pieces with a non-empty run of base64url
// characters between each pair and returns those runs. (std::regex trips a
// GCC 12 -Wmaybe-uninitialized false positive under some flags.)
std::optional<std::vector<std::string>> match_b64(const std::string& text,
                                                  const std::vector<std::string>& literals) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::vector<std::string> runs;
    size_t pos = 0;
    for (size_t i = 0; i < literals.size(); ++i) {
        if (text.compare(pos, literals[i].size(), literals[i]) != 0) return std::nullopt;
        pos += literals[i].size();
        if (i + 1 == literals.size()) break;
        size_t end = std::min(text.find_first_not_of(b64, pos), text.size());
        if (end == pos) return std::nullopt;
        runs.push_back(text.substr(pos, end - pos));
        pos = end;
    }
    if (pos != text.size()) return std::nullopt;
    return runs;
}

TEST(Crypto, ParseKeyType) {
    const std::pair<const char*, KeyType> valid[] = {
        {"ecdsa:256", KeyType::ecdsa256}, {"ecdsa:384", KeyType::ecdsa384},
        {"rsa:2048", KeyType::rsa2048},   {"rsa:3072", KeyType::rsa3072},
        {"rsa:4096", KeyType::rsa4096},   {"ecdsa:521", KeyType::ecdsa521},
    };
    for (const auto& [spec, type] : valid) {
        EXPECT_EQ(acme::parse_key_type(spec), type) << spec;
        EXPECT_EQ(acme::key_type_name(type), spec);
    }
    // nginx-acme's forms without a size; the name (and so the file names)
    // stays the sized one.
    EXPECT_EQ(acme::parse_key_type("ecdsa"), KeyType::ecdsa256);
    EXPECT_EQ(acme::parse_key_type("rsa"), KeyType::rsa2048);
    for (const char* spec :
         {"ecdsa:192", "rsa:1024", "", "RSA:2048", "rsa:2048 ", "ecdsa:256:x", "ed25519"}) {
        EXPECT_EQ(acme::parse_key_type(spec), std::nullopt) << '"' << spec << '"';
    }
}

TEST(Crypto, GenerateEveryTypeAndPemRoundTrip) {
    const std::tuple<KeyType, int, const char*> types[] = {
        {KeyType::ecdsa256, 256, "ES256"}, {KeyType::ecdsa384, 384, "ES384"},
        {KeyType::rsa2048, 2048, "RS256"}, {KeyType::rsa3072, 3072, "RS256"},
        {KeyType::rsa4096, 4096, "RS256"}, {KeyType::ecdsa521, 521, "ES512"},
    };
    for (const auto& [type, bits, alg] : types) {
        const PrivateKey& key = key_of(type);
        EXPECT_EQ(key.type(), type);
        EXPECT_EQ(EVP_PKEY_get_bits(key.get()), bits);
        EXPECT_EQ(key.jws_alg(), alg);

        std::string pem = key.to_pem();
        EXPECT_EQ(pem.rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u) << "PKCS#8 expected";
        PrivateKey again = PrivateKey::from_pem(pem);
        EXPECT_EQ(again.type(), type);
        EXPECT_EQ(again.jwk(), key.jwk());
        EXPECT_EQ(EVP_PKEY_eq(again.get(), key.get()), 1);
    }
}

TEST(Crypto, FromPemAcceptsTraditionalFormat) {
    acme::EvpPkeyPtr ec = raw_key("EC", "P-384", 0);
    std::string pem = pem_of(ec.get(), true);
    ASSERT_NE(pem.find("BEGIN EC PRIVATE KEY"), std::string::npos);
    EXPECT_EQ(PrivateKey::from_pem(pem).type(), KeyType::ecdsa384);

    std::string rsa = pem_of(key_of(KeyType::rsa2048).get(), true);
    ASSERT_NE(rsa.find("BEGIN RSA PRIVATE KEY"), std::string::npos);
    EXPECT_EQ(PrivateKey::from_pem(rsa).type(), KeyType::rsa2048);
}

TEST(Crypto, FromPemRejectsUnsupportedKeys) {
    EXPECT_THROW(PrivateKey::from_pem(""), acme::Error);
    EXPECT_THROW(PrivateKey::from_pem("garbage"), acme::Error);
    std::string pem = key_of(KeyType::ecdsa256).to_pem();
    EXPECT_THROW(PrivateKey::from_pem(pem.substr(0, pem.size() / 2)), acme::Error);

    for (auto& key : {raw_key("EC", "P-224", 0), raw_key("RSA", nullptr, 1024),
                      raw_key("ED25519", nullptr, 0), raw_key("EC", "secp256k1", 0)}) {
        try {
            PrivateKey::from_pem(pem_of(key.get(), false));
            ADD_FAILURE() << "accepted " << EVP_PKEY_get0_type_name(key.get());
        } catch (const acme::Error& e) {
            EXPECT_NE(std::string(e.what()).find("unsupported private key"), std::string::npos);
        }
    }
    EXPECT_EQ(ERR_peek_error(), 0u);

    // Encrypted keys must fail instead of prompting on the terminal.
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    ASSERT_EQ(
        PEM_write_bio_PKCS8PrivateKey(bio.get(), key_of(KeyType::ecdsa256).get(), EVP_aes_128_cbc(),
                                      nullptr, 0, nullptr, const_cast<char*>("secret")),
        1);
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    try {
        PrivateKey::from_pem(std::string(data, static_cast<size_t>(len)));
        ADD_FAILURE() << "accepted an encrypted key";
    } catch (const acme::Error& e) {
        EXPECT_NE(std::string(e.what()).find("cannot read private key: error:"), std::string::npos)
            << e.what();
    }
}

TEST(Crypto, JwkIsCanonicalAndMatchesThePublicKey) {
    for (KeyType type : {KeyType::ecdsa256, KeyType::ecdsa384}) {
        const PrivateKey& key = key_of(type);
        size_t width = type == KeyType::ecdsa256 ? 32 : 48;
        std::string jwk = key.jwk();
        auto m = match_b64(jwk, {std::string("{\"crv\":\"") + (width == 32 ? "P-256" : "P-384") +
                                     "\",\"kty\":\"EC\",\"x\":\"",
                                 "\",\"y\":\"", "\"}"});
        ASSERT_TRUE(m) << jwk;
        // Coordinates are always full width, even with leading zero bytes.
        EXPECT_EQ((*m)[0].size(), (width * 4 + 2) / 3);
        EXPECT_EQ((*m)[1].size(), (width * 4 + 2) / 3);

        // The uncompressed point is 04 || x || y.
        unsigned char point[1 + 2 * 48];
        size_t len = 0;
        ASSERT_EQ(EVP_PKEY_get_octet_string_param(key.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
                                                  point, sizeof point, &len),
                  1);
        ASSERT_EQ(len, 1 + 2 * width);
        std::string expect(reinterpret_cast<char*>(point) + 1, 2 * width);
        EXPECT_EQ(acme::base64url_decode((*m)[0]) + acme::base64url_decode((*m)[1]), expect);
    }

    for (KeyType type : {KeyType::rsa2048, KeyType::rsa4096}) {
        const PrivateKey& key = key_of(type);
        std::string jwk = key.jwk();
        auto m = match_b64(jwk, {"{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"", "\"}"});
        ASSERT_TRUE(m) << jwk;
        BIGNUM* n = nullptr;
        ASSERT_EQ(EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_N, &n), 1);
        std::string bytes(static_cast<size_t>(BN_num_bytes(n)), '\0');
        BN_bn2bin(n, reinterpret_cast<unsigned char*>(bytes.data()));
        BN_free(n);
        EXPECT_EQ(acme::base64url_decode((*m)[0]), bytes);
        EXPECT_EQ(bytes.size() * 8, type == KeyType::rsa2048 ? 2048u : 4096u);
    }
}

TEST(Crypto, ThumbprintRfc7638Example) {
    // RFC 7638 section 3.1: the canonical JWK of the example RSA key and its thumbprint.
    const char* jwk =
        R"({"e":"AQAB","kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"})";
    EXPECT_EQ(acme::jwk_thumbprint(jwk), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");

    const PrivateKey& key = key_of(KeyType::ecdsa256);
    EXPECT_EQ(key.thumbprint(), acme::jwk_thumbprint(key.jwk()));
    EXPECT_EQ(key.thumbprint().size(), 43u);
}

TEST(Crypto, Sha256AndHex) {
    EXPECT_EQ(acme::hex(acme::sha256("abc")),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(acme::hex(acme::sha256("")),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(acme::hex(""), "");
    EXPECT_EQ(acme::hex(std::string("\x00\x0f\xa0\xff", 4)), "000fa0ff");
}

TEST(Crypto, HmacRfc4231TestCase2) {
    // RFC 4231 section 4.3: key "Jefe".
    const std::string data = "what do ya want for nothing?";
    EXPECT_EQ(acme::hex(acme::hmac("HS256", "Jefe", data)),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    EXPECT_EQ(acme::hex(acme::hmac("HS384", "Jefe", data)),
              "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e"
              "8e2240ca5e69e2c78b3239ecfab21649");
    EXPECT_EQ(acme::hmac("HS512", "Jefe", data).size(), 64u);
    EXPECT_THROW(acme::hmac("RS256", "Jefe", data), acme::Error);
}

TEST(Crypto, SignatureSizes) {
    EXPECT_EQ(key_of(KeyType::ecdsa256).sign("data").size(), 64u);
    EXPECT_EQ(key_of(KeyType::ecdsa384).sign("data").size(), 96u);
    EXPECT_EQ(key_of(KeyType::rsa2048).sign("data").size(), 256u);
    EXPECT_EQ(key_of(KeyType::rsa3072).sign("").size(), 384u);
}

struct ParsedCsr {
    std::unique_ptr<X509_REQ, ReqFree> req;
    std::vector<std::string> sans;
    std::string cn;
};

ParsedCsr parse_csr(const std::string& der) {
    ParsedCsr out;
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    out.req.reset(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
    if (!out.req) return out;
    EXPECT_EQ(p, reinterpret_cast<const unsigned char*>(der.data()) + der.size())
        << "trailing bytes";
    std::unique_ptr<STACK_OF(X509_EXTENSION), ExtsFree> exts(
        X509_REQ_get_extensions(out.req.get()));
    for (int i = 0; i < sk_X509_EXTENSION_num(exts.get()); ++i) {
        X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts.get(), i);
        if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name) continue;
        std::unique_ptr<GENERAL_NAMES, NamesFree> names(
            static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(ext)));
        out.sans = describe(names.get());
    }
    out.cn = common_name(X509_REQ_get_subject_name(out.req.get()));
    return out;
}

TEST(Crypto, CsrContents) {
    for (KeyType type : {KeyType::ecdsa256, KeyType::ecdsa384, KeyType::rsa2048}) {
        const PrivateKey& key = key_of(type);
        std::vector<Identifier> ids = {dns("example.com"), dns("*.example.com"), ip("192.0.2.1"),
                                       ip("2001:db8::1")};
        ParsedCsr csr = parse_csr(acme::make_csr_der(key, ids, true));
        ASSERT_TRUE(csr.req);
        EXPECT_EQ(csr.sans,
                  (std::vector<std::string>{"DNS:example.com", "DNS:*.example.com", "IP:c0000201",
                                            "IP:20010db8000000000000000000000001"}));
        EXPECT_EQ(csr.cn, "example.com");
        EXPECT_EQ(X509_REQ_get_version(csr.req.get()), 0);
        EXPECT_EQ(X509_REQ_verify(csr.req.get(), key.get()), 1);
        EVP_PKEY* pub = X509_REQ_get0_pubkey(csr.req.get());
        ASSERT_NE(pub, nullptr);
        EXPECT_EQ(EVP_PKEY_eq(pub, key.get()), 1);
        // The public key alone verifies too (what the CA does).
        EXPECT_EQ(X509_REQ_verify(csr.req.get(), pub), 1);
    }
}

TEST(Crypto, CsrCommonNameRules) {
    const PrivateKey& key = key_of(KeyType::ecdsa256);
    EXPECT_EQ(parse_csr(acme::make_csr_der(key, {dns("a.example"), dns("b.example")}, false)).cn,
              "(none)");
    // The first DNS name, even when an IP address comes before it.
    ParsedCsr mixed = parse_csr(acme::make_csr_der(key, {ip("127.0.0.1"), dns("b.example")}, true));
    EXPECT_EQ(mixed.cn, "b.example");
    EXPECT_EQ(mixed.sans, (std::vector<std::string>{"IP:7f000001", "DNS:b.example"}));
    // Never an IP address as CN.
    ParsedCsr ip_only = parse_csr(acme::make_csr_der(key, {ip("::1")}, true));
    EXPECT_EQ(ip_only.cn, "(none)");
    EXPECT_EQ(ip_only.sans, (std::vector<std::string>{"IP:00000000000000000000000000000001"}));
    // Names longer than a CN may be (64) stay SAN-only rather than failing.
    std::string longname = std::string(60, 'a') + ".example";
    ParsedCsr long_csr = parse_csr(acme::make_csr_der(key, {dns(longname.c_str())}, true));
    EXPECT_EQ(long_csr.cn, "(none)");
    EXPECT_EQ(long_csr.sans, std::vector<std::string>{"DNS:" + longname});

    EXPECT_THROW(acme::make_csr_der(key, {}, true), acme::Error);
    EXPECT_THROW(acme::make_csr_der(key, {ip("not-an-ip")}, true), acme::Error);
}

TEST(Crypto, SelfSignedRoundTrip) {
    const PrivateKey& key = key_of(KeyType::ecdsa256);
    std::vector<Identifier> names = {dns("a.example"), dns("*.b.example"), ip("127.0.0.1"),
                                     ip("::1")};
    std::time_t now = std::time(nullptr);
    std::string pem = acme::make_self_signed(key, names, 30);
    acme::CertificateInfo info = acme::inspect_certificate(pem);
    EXPECT_EQ(info.names, names);
    EXPECT_EQ(info.subject_cn, "a.example");
    EXPECT_EQ(info.issuer_cn, "a.example");
    EXPECT_NEAR(static_cast<double>(info.not_before), static_cast<double>(now - 3600), 60);
    EXPECT_NEAR(static_cast<double>(info.not_after), static_cast<double>(now + 30 * 86400), 60);
    ASSERT_FALSE(info.serial_hex.empty());
    EXPECT_NE(info.serial_hex[0], '0');
    EXPECT_EQ(info.serial_hex.find_first_not_of("0123456789abcdef"), std::string::npos)
        << info.serial_hex;

    acme::X509Ptr cert = parse_cert(pem);
    ASSERT_TRUE(cert);
    EXPECT_EQ(X509_verify(cert.get(), key.get()), 1);
    EXPECT_EQ(X509_get_signature_nid(cert.get()), NID_ecdsa_with_SHA256);
    EXPECT_EQ(X509_get_version(cert.get()), X509_VERSION_3);

    // Fresh serial each time.
    EXPECT_NE(acme::inspect_certificate(acme::make_self_signed(key, names, 30)).serial_hex,
              info.serial_hex);

    // RSA keys work too and sign with SHA-256.
    std::string rsa_pem = acme::make_self_signed(key_of(KeyType::rsa2048), {dns("r.example")}, 1);
    EXPECT_EQ(X509_get_signature_nid(parse_cert(rsa_pem).get()), NID_sha256WithRSAEncryption);
    EXPECT_EQ(acme::inspect_certificate(rsa_pem).subject_cn, "r.example");
}

TEST(Crypto, SelfSignedFallbackName) {
    const PrivateKey& key = key_of(KeyType::ecdsa384);
    acme::CertificateInfo none = acme::inspect_certificate(acme::make_self_signed(key, {}, 1));
    EXPECT_EQ(none.subject_cn, "acme fallback");
    EXPECT_TRUE(none.names.empty());
    acme::CertificateInfo ips =
        acme::inspect_certificate(acme::make_self_signed(key, {ip("192.0.2.7")}, 1));
    EXPECT_EQ(ips.subject_cn, "acme fallback");
    EXPECT_EQ(ips.names, std::vector<Identifier>{ip("192.0.2.7")});
}

// A certificate with a chosen serial and issuer CN, signed by issuer_key, to
// check the fields inspect_certificate reads.
std::string custom_cert(long serial, const char* issuer_cn, const char* subject_cn,
                        const PrivateKey& subject_key, const PrivateKey& issuer_key) {
    acme::X509Ptr cert(X509_new());
    X509_set_version(cert.get(), X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
    ASN1_TIME_set_string(X509_getm_notBefore(cert.get()), "20240229120000Z");
    ASN1_TIME_set_string(X509_getm_notAfter(cert.get()), "20500101000000Z");
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(subject_cn), -1, -1, 0);
    X509_NAME_add_entry_by_txt(X509_get_issuer_name(cert.get()), "O", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>("Org"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(X509_get_issuer_name(cert.get()), "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(issuer_cn), -1, -1, 0);
    X509_set_pubkey(cert.get(), subject_key.get());
    X509_sign(cert.get(), issuer_key.get(), EVP_sha256());
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(bio.get(), cert.get());
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(len));
}

TEST(Crypto, InspectCertificateFields) {
    const PrivateKey& leaf_key = key_of(KeyType::ecdsa256);
    const PrivateKey& ca_key = key_of(KeyType::ecdsa384);
    std::string pem = custom_cert(0x0a1b, "Test CA", "Leaf", leaf_key, ca_key);
    acme::CertificateInfo info = acme::inspect_certificate(pem);
    EXPECT_EQ(info.serial_hex, "a1b");
    EXPECT_EQ(info.issuer_cn, "Test CA");
    EXPECT_EQ(info.subject_cn, "Leaf");
    EXPECT_EQ(info.not_before, 1709208000);  // 2024-02-29T12:00:00Z
    EXPECT_EQ(info.not_after, 2524608000);   // 2050-01-01T00:00:00Z, past 2038
    EXPECT_TRUE(info.names.empty());

    EXPECT_THROW(acme::inspect_certificate(""), acme::Error);
    EXPECT_THROW(
        acme::inspect_certificate("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        acme::Error);
}

// RFC 9773 appendix A: AKI keyIdentifier 69:88:5B:...:C8:D4 and serial
// 0x87654321 (DER 00 87 65 43 21) give "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE".
TEST(Crypto, AriCertificateId) {
    const PrivateKey& key = key_of(KeyType::ecdsa256);
    acme::X509Ptr cert(X509_new());
    X509_set_version(cert.get(), X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 0x87654321L);
    ASN1_TIME_set_string(X509_getm_notBefore(cert.get()), "20240229120000Z");
    ASN1_TIME_set_string(X509_getm_notAfter(cert.get()), "20500101000000Z");
    X509_set_pubkey(cert.get(), key.get());
    const unsigned char kid[] = {0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3,
                                 0x7B, 0x84, 0x7B, 0xA0, 0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4};
    AUTHORITY_KEYID* akid = AUTHORITY_KEYID_new();
    akid->keyid = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(akid->keyid, kid, sizeof kid);
    ASSERT_EQ(
        X509_add1_ext_i2d(cert.get(), NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT),
        1);
    AUTHORITY_KEYID_free(akid);
    X509_sign(cert.get(), key.get(), EVP_sha256());
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(bio.get(), cert.get());
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    acme::CertificateInfo info =
        acme::inspect_certificate(std::string(data, static_cast<size_t>(len)));
    EXPECT_EQ(info.ari_cert_id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
    EXPECT_EQ(info.serial_hex, "87654321");

    // No AKI (self-signed fallback): no ARI identifier.
    EXPECT_EQ(
        acme::inspect_certificate(acme::make_self_signed(key, {dns("a.example")}, 1)).ari_cert_id,
        "");
}

TEST(Crypto, CertificateMatchesKey) {
    const PrivateKey& key = key_of(KeyType::ecdsa256);
    std::string pem = acme::make_self_signed(key, {dns("m.example")}, 1);
    EXPECT_TRUE(acme::certificate_matches_key(pem, key));
    EXPECT_FALSE(acme::certificate_matches_key(pem, PrivateKey::generate(KeyType::ecdsa256)));
    EXPECT_FALSE(acme::certificate_matches_key(pem, key_of(KeyType::ecdsa384)));
    EXPECT_FALSE(acme::certificate_matches_key(pem, key_of(KeyType::rsa2048)));
    EXPECT_EQ(ERR_peek_error(), 0u) << "a mismatch must not leave errors behind";

    // Only the leaf counts: the key of the second certificate does not match.
    std::string other = acme::make_self_signed(key_of(KeyType::rsa2048), {dns("o.example")}, 1);
    EXPECT_TRUE(acme::certificate_matches_key(pem + other, key));
    EXPECT_FALSE(acme::certificate_matches_key(pem + other, key_of(KeyType::rsa2048)));

    EXPECT_THROW(acme::certificate_matches_key("garbage", key), acme::Error);
}

TEST(Crypto, SplitPemChain) {
    std::string leaf = acme::make_self_signed(key_of(KeyType::ecdsa256), {dns("leaf.example")}, 1);
    std::string issuer = acme::make_self_signed(key_of(KeyType::ecdsa384), {dns("ca.example")}, 1);

    std::vector<std::string> parts = acme::split_pem_chain(leaf + issuer);
    EXPECT_EQ(parts, (std::vector<std::string>{leaf, issuer}));

    // Text around and between the blocks is ignored, as OpenSSL does.
    parts = acme::split_pem_chain("garbage before\n" + leaf + "\nsome garbage\n\n" + issuer +
                                  "trailing");
    ASSERT_EQ(parts.size(), 2u);
    EXPECT_EQ(parts[0], leaf);
    EXPECT_EQ(parts[1], issuer);
    EXPECT_EQ(acme::inspect_certificate(parts[1]).subject_cn, "ca.example");

    // Inspecting a chain looks at the first certificate.
    EXPECT_EQ(acme::inspect_certificate(leaf + issuer).subject_cn, "leaf.example");

    EXPECT_THROW(acme::split_pem_chain(""), acme::Error);
    EXPECT_THROW(acme::split_pem_chain("just some garbage\n"), acme::Error);
    // A truncated second certificate (no END line).
    EXPECT_THROW(acme::split_pem_chain(leaf + issuer.substr(0, issuer.size() / 2)), acme::Error);
    // A block whose base64 does not decode to a certificate.
    std::string broken = issuer;
    broken[broken.find('\n') + 10] = '*';
    EXPECT_THROW(acme::split_pem_chain(leaf + broken), acme::Error);
    try {
        acme::split_pem_chain(leaf + broken);
    } catch (const acme::Error& e) {
        EXPECT_NE(std::string(e.what()).find("certificate 2"), std::string::npos) << e.what();
    }
}

TEST(Crypto, InspectChainParsesTheLeafChecksTheRestAndGivesTheLeaf) {
    std::string leaf = acme::make_self_signed(key_of(KeyType::ecdsa256), {dns("leaf.example")}, 1);
    std::string issuer = acme::make_self_signed(key_of(KeyType::ecdsa384), {dns("ca.example")}, 1);
    acme::X509Ptr first;
    acme::CertificateInfo info = acme::inspect_chain(leaf + issuer, &first);
    EXPECT_EQ(info.subject_cn, "leaf.example");
    ASSERT_TRUE(first);
    EXPECT_TRUE(acme::certificate_matches_key(first.get(), key_of(KeyType::ecdsa256)));
    EXPECT_FALSE(acme::certificate_matches_key(first.get(), key_of(KeyType::ecdsa384)));
    EXPECT_EQ(ERR_peek_error(), 0u);
    EXPECT_THROW(acme::inspect_chain(leaf + issuer.substr(0, issuer.size() / 2)), acme::Error);
    EXPECT_THROW(acme::inspect_chain(""), acme::Error);

    // The certificates after the leaf are checked as DER, not parsed, and
    // still refused when damaged: base64 that does not decode, DER that
    // ends early, and bytes after the DER.
    auto refused_second = [&](const std::string& chain, const char* what) {
        try {
            acme::inspect_chain(chain);
            ADD_FAILURE() << what << ": accepted";
        } catch (const acme::Error& e) {
            EXPECT_NE(std::string(e.what()).find("malformed PEM certificate chain: certificate 2"),
                      std::string::npos)
                << what << ": " << e.what();
        }
        EXPECT_EQ(ERR_peek_error(), 0u) << what;
    };
    std::string bad_base64 = issuer;
    bad_base64[bad_base64.find('\n') + 10] = '*';
    refused_second(leaf + bad_base64, "bad base64");
    auto reencoded = [](const std::vector<unsigned char>& der) {
        BIO* bio = BIO_new(BIO_s_mem());
        PEM_write_bio(bio, "CERTIFICATE", "", der.data(), static_cast<long>(der.size()));
        char* text = nullptr;
        long n = BIO_get_mem_data(bio, &text);
        std::string pem(text, static_cast<std::size_t>(n));
        BIO_free(bio);
        return pem;
    };
    BIO* in = BIO_new_mem_buf(issuer.data(), static_cast<int>(issuer.size()));
    acme::X509Ptr ca(PEM_read_bio_X509(in, nullptr, nullptr, nullptr));
    BIO_free(in);
    ASSERT_TRUE(ca);
    unsigned char* der = nullptr;
    int der_len = i2d_X509(ca.get(), &der);
    ASSERT_GT(der_len, 10);
    std::vector<unsigned char> bytes(der, der + der_len);
    OPENSSL_free(der);
    refused_second(leaf + reencoded({bytes.begin(), bytes.end() - 10}), "short DER");
    std::vector<unsigned char> longer = bytes;
    longer.push_back(0x05);
    longer.push_back(0x00);
    refused_second(leaf + reencoded(longer), "bytes after the DER");
    EXPECT_EQ(acme::inspect_chain(leaf + reencoded(bytes)).subject_cn, "leaf.example");
}

// decode_private_key_pem reuses one decoder per thread: a failure, another
// key type or another format in between changes nothing.
TEST(Crypto, ReusedKeyDecoderReadsEveryTypeAfterFailures) {
    for (int round = 0; round < 3; round++) {
        for (KeyType type :
             {KeyType::ecdsa256, KeyType::rsa2048, KeyType::ecdsa384, KeyType::ecdsa521}) {
            EXPECT_FALSE(acme::decode_private_key_pem("garbage"));
            ERR_clear_error();
            const PrivateKey& key = key_of(type);
            for (bool traditional : {false, true}) {
                acme::EvpPkeyPtr got = acme::decode_private_key_pem(pem_of(key.get(), traditional));
                ASSERT_TRUE(got) << key_type_name(type) << (traditional ? " traditional" : "");
                EXPECT_EQ(EVP_PKEY_eq(got.get(), key.get()), 1);
            }
        }
    }
    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    for (int i = 0; i < 4; i++) {
        threads.emplace_back([&] {
            std::string pem = key_of(KeyType::ecdsa256).to_pem();
            for (int k = 0; k < 50; k++) ok += acme::decode_private_key_pem(pem) ? 1 : 0;
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(ok.load(), 200);
}

TEST(Crypto, OpensslErrorsDrainsTheQueue) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf("nope", 4));
    EXPECT_EQ(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), nullptr);
    std::string errors = acme::openssl_errors();
    EXPECT_NE(errors.find("error:"), std::string::npos) << errors;
    EXPECT_EQ(errors.find('\n'), std::string::npos);
    EXPECT_EQ(acme::openssl_errors(), "");
}

TEST(Crypto, ConcurrentSigning) {
    // The engine signs from several threads with one shared key.
    const PrivateKey& key = key_of(KeyType::ecdsa256);
    std::vector<std::thread> threads;
    std::atomic<int> good{0};
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&key, &good] {
            for (int i = 0; i < 50; ++i) {
                PrivateKey copy = key;  // copies share the EVP_PKEY
                if (copy.sign("message").size() == 64 && copy.jwk() == key.jwk()) ++good;
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(good.load(), 400);
}

}  // namespace
