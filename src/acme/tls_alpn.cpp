// tls-alpn-01 pieces that need no TLS connection: reverse-DNS server names
// for IP identifiers, the challenge certificate, and ClientHello extension
// parsing (the nginx callback sees only raw extension bytes).
#include "tls_alpn.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <cctype>

#include "error.h"

namespace acme {

namespace {

[[noreturn]] void fail(const std::string& what) {
    std::string details = openssl_errors();
    throw Error(details.empty() ? what : what + ": " + details);
}

// id-pe-acmeIdentifier (RFC 8737 section 6.1).
constexpr const char* acme_identifier_oid = "1.3.6.1.5.5.7.1.31";

struct ObjectFree {
    void operator()(ASN1_OBJECT* o) const { ASN1_OBJECT_free(o); }
};
struct OctetStringFree {
    void operator()(ASN1_OCTET_STRING* s) const { ASN1_OCTET_STRING_free(s); }
};
struct ExtensionFree {
    void operator()(X509_EXTENSION* e) const { X509_EXTENSION_free(e); }
};
struct BignumFree {
    void operator()(BIGNUM* b) const { BN_free(b); }
};

void add_extension(X509* cert, X509_EXTENSION* ext, const char* what) {
    std::unique_ptr<X509_EXTENSION, ExtensionFree> owned(ext);
    if (!owned || X509_add_ext(cert, owned.get(), -1) != 1) fail(std::string("cannot add ") + what);
}

}  // namespace

std::string tls_alpn_server_name(const Identifier& id) {
    if (id.type == Identifier::Type::dns) return id.value;
    unsigned char addr[16];
    std::string name;
    if (inet_pton(AF_INET, id.value.c_str(), addr) == 1) {
        for (int i = 3; i >= 0; --i) name += std::to_string(addr[i]) + ".";
        return name + "in-addr.arpa";
    }
    if (inet_pton(AF_INET6, id.value.c_str(), addr) == 1) {
        static constexpr char digits[] = "0123456789abcdef";
        for (int i = 15; i >= 0; --i) {
            name += digits[addr[i] & 15];
            name += '.';
            name += digits[addr[i] >> 4];
            name += '.';
        }
        return name + "ip6.arpa";
    }
    throw Error("invalid IP address \"" + id.value + "\"");
}

X509Ptr make_tls_alpn_certificate(const PrivateKey& key, const Identifier& id,
                                  std::string_view digest) {
    ERR_clear_error();
    if (digest.size() != 32) throw Error("the tls-alpn-01 digest must be 32 bytes");
    X509Ptr cert(X509_new());
    if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) fail("X509_new() failed");

    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof serial) != 1) fail("RAND_bytes() failed");
    serial[0] &= 0x7f;
    std::unique_ptr<BIGNUM, BignumFree> bn(BN_bin2bn(serial, sizeof serial, nullptr));
    if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())))
        fail("cannot set serial");
    // Validators ignore the validity period; a wide one survives clock skew.
    if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), -86400) ||
        !X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7 * 86400))
        fail("cannot set validity");

    X509_NAME* subject = X509_get_subject_name(cert.get());
    if (X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("acme-tls/1 challenge"),
                                   -1, -1, 0) != 1 ||
        X509_set_issuer_name(cert.get(), subject) != 1)
        fail("cannot set subject");
    if (X509_set_pubkey(cert.get(), key.get()) != 1) fail("cannot set public key");

    // parse_identifier() admits only LDH names and addresses, so the text
    // form cannot smuggle another entry into the list.
    std::string san = (id.type == Identifier::Type::dns ? "DNS:" : "IP:") + id.value;
    add_extension(cert.get(),
                  X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str()),
                  "subjectAltName");

    // The extension's value is the DER of an OCTET STRING holding the digest.
    std::string der = std::string("\x04\x20", 2) + std::string(digest);
    std::unique_ptr<ASN1_OBJECT, ObjectFree> oid(OBJ_txt2obj(acme_identifier_oid, 1));
    std::unique_ptr<ASN1_OCTET_STRING, OctetStringFree> value(ASN1_OCTET_STRING_new());
    if (!oid || !value ||
        ASN1_OCTET_STRING_set(value.get(), reinterpret_cast<const unsigned char*>(der.data()),
                              static_cast<int>(der.size())) != 1)
        fail("cannot encode acmeIdentifier");
    add_extension(cert.get(), X509_EXTENSION_create_by_OBJ(nullptr, oid.get(), 1, value.get()),
                  "acmeIdentifier");

    if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0)
        fail("cannot sign the tls-alpn-01 certificate");
    return cert;
}

bool alpn_offers(const unsigned char* ext, std::size_t len, std::string_view protocol) {
    if (len < 2 || static_cast<std::size_t>((ext[0] << 8) | ext[1]) != len - 2) return false;
    for (std::size_t pos = 2; pos < len;) {
        std::size_t n = ext[pos++];
        if (n == 0 || pos + n > len) return false;
        if (std::string_view(reinterpret_cast<const char*>(ext + pos), n) == protocol) return true;
        pos += n;
    }
    return false;
}

std::optional<std::string> sni_host_name(const unsigned char* ext, std::size_t len) {
    if (len < 2 || static_cast<std::size_t>((ext[0] << 8) | ext[1]) != len - 2) return std::nullopt;
    for (std::size_t pos = 2; pos + 3 <= len;) {
        unsigned type = ext[pos];
        std::size_t n = static_cast<std::size_t>((ext[pos + 1] << 8) | ext[pos + 2]);
        pos += 3;
        if (pos + n > len) return std::nullopt;
        if (type == 0) {  // host_name
            if (n == 0) return std::nullopt;
            std::string name(reinterpret_cast<const char*>(ext + pos), n);
            for (char& c : name) {
                if (c == '\0') return std::nullopt;
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            }
            // The absolute form names the same host (RFC 6066 forbids it,
            // but reverse-DNS names are often written that way).
            if (name.size() > 1 && name.back() == '.') name.pop_back();
            return name;
        }
        pos += n;
    }
    return std::nullopt;
}

}  // namespace acme
