// Tests of the tls-alpn-01 pieces (tls_alpn.h): reverse-DNS server names
// (RFC 8738), the challenge certificate read back with OpenSSL (RFC 8737),
// and parsing of the raw ALPN and server_name extensions.
#include <gtest/gtest.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <string>

#include "acme/error.h"
#include "acme/tls_alpn.h"

namespace {

using acme::Identifier;
using acme::PrivateKey;

Identifier dns(const char* v) { return {Identifier::Type::dns, v}; }
Identifier ip(const char* v) { return {Identifier::Type::ip, v}; }

std::string bytes(std::initializer_list<int> list) {
    std::string out;
    for (int b : list) out += static_cast<char>(b);
    return out;
}

const unsigned char* raw(const std::string& s) {
    return reinterpret_cast<const unsigned char*>(s.data());
}

// ALPN extension body for a list of protocol names.
std::string alpn(std::initializer_list<std::string> names) {
    std::string list;
    for (const std::string& n : names) list += static_cast<char>(n.size()) + n;
    return bytes({static_cast<int>(list.size() >> 8), static_cast<int>(list.size() & 255)}) + list;
}

// server_name extension body with one entry of the given type.
std::string sni(const std::string& name, int type = 0) {
    std::string entry =
        bytes({type, static_cast<int>(name.size() >> 8), static_cast<int>(name.size() & 255)}) +
        name;
    return bytes({static_cast<int>(entry.size() >> 8), static_cast<int>(entry.size() & 255)}) +
           entry;
}

TEST(TlsAlpn, ServerNames) {
    EXPECT_EQ(acme::tls_alpn_server_name(dns("example.test")), "example.test");
    EXPECT_EQ(acme::tls_alpn_server_name(ip("127.0.0.1")), "1.0.0.127.in-addr.arpa");
    EXPECT_EQ(acme::tls_alpn_server_name(ip("192.0.2.10")), "10.2.0.192.in-addr.arpa");
    // The example of RFC 8738 section 6.
    EXPECT_EQ(acme::tls_alpn_server_name(ip("2001:db8::567:89ab")),
              "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
    EXPECT_EQ(acme::tls_alpn_server_name(ip("::1")),
              "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa");
    EXPECT_THROW(acme::tls_alpn_server_name(ip("not-an-address")), acme::Error);
}

struct Decoded {
    std::vector<std::string> dns_names;
    std::vector<std::string> ip_bytes;
    bool acme_critical = false;
    std::string acme_value;  // contents of the inner OCTET STRING
    int acme_count = 0;
};

Decoded decode(X509* cert) {
    Decoded d;
    auto* names =
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
        GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
        int type;
        auto* v = static_cast<ASN1_STRING*>(GENERAL_NAME_get0_value(n, &type));
        std::string s(reinterpret_cast<const char*>(ASN1_STRING_get0_data(v)),
                      ASN1_STRING_length(v));
        (type == GEN_DNS ? d.dns_names : d.ip_bytes).push_back(s);
    }
    GENERAL_NAMES_free(names);

    ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
    for (int i = 0; i < X509_get_ext_count(cert); ++i) {
        X509_EXTENSION* ext = X509_get_ext(cert, i);
        if (OBJ_cmp(X509_EXTENSION_get_object(ext), oid) != 0) continue;
        ++d.acme_count;
        d.acme_critical = X509_EXTENSION_get_critical(ext) == 1;
        ASN1_OCTET_STRING* outer = X509_EXTENSION_get_data(ext);
        const unsigned char* p = ASN1_STRING_get0_data(outer);
        ASN1_OCTET_STRING* inner = d2i_ASN1_OCTET_STRING(nullptr, &p, ASN1_STRING_length(outer));
        if (inner != nullptr) {
            d.acme_value.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(inner)),
                                ASN1_STRING_length(inner));
            ASN1_OCTET_STRING_free(inner);
        }
    }
    ASN1_OBJECT_free(oid);
    return d;
}

TEST(TlsAlpn, CertificateForDnsName) {
    PrivateKey key = PrivateKey::generate(acme::KeyType::ecdsa256);
    std::string digest = acme::sha256("token.thumbprint");
    acme::X509Ptr cert = acme::make_tls_alpn_certificate(key, dns("example.test"), digest);
    ASSERT_TRUE(cert);

    Decoded d = decode(cert.get());
    EXPECT_EQ(d.dns_names, std::vector<std::string>{"example.test"});
    EXPECT_TRUE(d.ip_bytes.empty());
    EXPECT_EQ(d.acme_count, 1);
    EXPECT_TRUE(d.acme_critical);
    EXPECT_EQ(d.acme_value, digest);

    // Self-signed by the given key, and currently valid.
    EXPECT_EQ(X509_verify(cert.get(), key.get()), 1);
    EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
    EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(cert.get()), X509_get_issuer_name(cert.get())),
              0);
    EXPECT_LT(X509_cmp_current_time(X509_get0_notBefore(cert.get())), 0);
    EXPECT_GT(X509_cmp_current_time(X509_get0_notAfter(cert.get())), 0);
}

TEST(TlsAlpn, CertificateForIpAddresses) {
    PrivateKey key = PrivateKey::generate(acme::KeyType::ecdsa256);
    std::string digest(32, '\x5a');
    Decoded v4 = decode(acme::make_tls_alpn_certificate(key, ip("127.0.0.1"), digest).get());
    EXPECT_TRUE(v4.dns_names.empty());
    EXPECT_EQ(v4.ip_bytes, std::vector<std::string>{bytes({127, 0, 0, 1})});
    EXPECT_EQ(v4.acme_value, digest);

    Decoded v6 = decode(acme::make_tls_alpn_certificate(key, ip("::1"), digest).get());
    EXPECT_EQ(v6.ip_bytes, std::vector<std::string>{std::string(15, '\0') + '\1'});
}

TEST(TlsAlpn, CertificateNeedsTheWholeDigest) {
    PrivateKey key = PrivateKey::generate(acme::KeyType::ecdsa256);
    EXPECT_THROW(acme::make_tls_alpn_certificate(key, dns("example.test"), "short"), acme::Error);
}

TEST(TlsAlpn, AlpnOffers) {
    std::string p = "acme-tls/1";
    std::string only = alpn({"acme-tls/1"});
    EXPECT_TRUE(acme::alpn_offers(raw(only), only.size(), p));
    std::string last = alpn({"h2", "http/1.1", "acme-tls/1"});
    EXPECT_TRUE(acme::alpn_offers(raw(last), last.size(), p));
    std::string browser = alpn({"h2", "http/1.1"});
    EXPECT_FALSE(acme::alpn_offers(raw(browser), browser.size(), p));
    std::string longer = alpn({"acme-tls/12", "acme-tls/"});
    EXPECT_FALSE(acme::alpn_offers(raw(longer), longer.size(), p));

    // Lengths that do not add up are never trusted.
    std::string cut = only.substr(0, only.size() - 1);
    EXPECT_FALSE(acme::alpn_offers(raw(cut), cut.size(), p));
    std::string overlong = bytes({0, 11, 20}) + "acme-tls/1";
    EXPECT_FALSE(acme::alpn_offers(raw(overlong), overlong.size(), p));
    std::string empty_name = bytes({0, 1, 0});
    EXPECT_FALSE(acme::alpn_offers(raw(empty_name), empty_name.size(), p));
    EXPECT_FALSE(acme::alpn_offers(raw(only), 1, p));
    EXPECT_FALSE(acme::alpn_offers(raw(only), 0, p));
}

TEST(TlsAlpn, SniHostName) {
    std::string plain = sni("Example.TEST");
    EXPECT_EQ(acme::sni_host_name(raw(plain), plain.size()), "example.test");
    std::string reverse = sni("1.0.0.127.in-addr.arpa.");
    EXPECT_EQ(acme::sni_host_name(raw(reverse), reverse.size()), "1.0.0.127.in-addr.arpa");

    std::string other_type = sni("example.test", 1);
    EXPECT_EQ(acme::sni_host_name(raw(other_type), other_type.size()), std::nullopt);
    std::string cut = plain.substr(0, plain.size() - 2);
    EXPECT_EQ(acme::sni_host_name(raw(cut), cut.size()), std::nullopt);
    std::string nul = sni(std::string("a\0b", 3));
    EXPECT_EQ(acme::sni_host_name(raw(nul), nul.size()), std::nullopt);
    std::string empty = sni("");
    EXPECT_EQ(acme::sni_host_name(raw(empty), empty.size()), std::nullopt);
    EXPECT_EQ(acme::sni_host_name(raw(plain), 1), std::nullopt);
}

}  // namespace
