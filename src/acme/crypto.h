// Keys, digests, CSRs and certificate inspection on top of OpenSSL 3.
// RAII owners only; no raw OpenSSL handle escapes without an owner.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "identifier.h"

namespace acme {

// ecdsa521 comes last: the glue indexes arrays by these values.
enum class KeyType { ecdsa256, ecdsa384, rsa2048, rsa3072, rsa4096, ecdsa521 };

// "ecdsa:256" (or "ecdsa"), "ecdsa:384", "ecdsa:521", "rsa:2048" (or "rsa"),
// "rsa:3072", "rsa:4096"; nullopt otherwise.
std::optional<KeyType> parse_key_type(std::string_view spec);
std::string key_type_name(KeyType type);  // inverse of parse_key_type

struct EvpPkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct X509Free {
    void operator()(X509* x) const { X509_free(x); }
};
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

// A PEM private key (PKCS#8 or traditional, not encrypted), or null with
// OpenSSL's error queue set. Thread-safe; see crypto.cpp for why it is not
// PEM_read_bio_PrivateKey.
EvpPkeyPtr decode_private_key_pem(std::string_view pem);

class PrivateKey {
public:
    static PrivateKey generate(KeyType type);
    // PEM (PKCS#8 or traditional). Throws acme::Error if unreadable or of a
    // type/size outside KeyType.
    static PrivateKey from_pem(std::string_view pem);

    std::string to_pem() const;  // unencrypted PKCS#8
    KeyType type() const { return type_; }
    EVP_PKEY* get() const { return key_.get(); }

    // Public JWK with only the required members in lexicographic order and
    // no white space (exactly the RFC 7638 thumbprint input), e.g.
    // {"crv":"P-256","kty":"EC","x":"...","y":"..."} or {"e":"AQAB","kty":"RSA","n":"..."}
    std::string jwk() const;
    std::string thumbprint() const;  // base64url(SHA-256(jwk()))
    std::string jws_alg() const;     // "ES256", "ES384", "ES512" or "RS256"
    // JWS signature over data: raw r||s (fixed width) for EC, PKCS#1 v1.5 for RSA.
    std::string sign(std::string_view data) const;

private:
    PrivateKey(std::shared_ptr<EVP_PKEY> key, KeyType type) : key_(std::move(key)), type_(type) {}
    std::shared_ptr<EVP_PKEY> key_;
    KeyType type_;
};

std::string sha256(std::string_view data);  // raw 32 bytes
std::string hex(std::string_view bytes);    // lower-case
// HMAC for the JWS algorithms "HS256", "HS384" and "HS512" (RFC 7518 section
// 3.2); raw bytes. Throws acme::Error for any other algorithm.
std::string hmac(std::string_view alg, std::string_view key, std::string_view data);
// RFC 7638 thumbprint of a JWK already in canonical form: base64url(SHA-256(jwk)).
std::string jwk_thumbprint(std::string_view canonical_jwk);

// DER-encoded PKCS#10 request with every identifier as a SAN (DNS or IP),
// signed by key. With common_name the first DNS identifier is also the CN.
std::string make_csr_der(const PrivateKey& key, const std::vector<Identifier>& ids,
                         bool common_name);

struct CertificateInfo {
    std::vector<Identifier> names;  // SANs of the leaf
    std::time_t not_before = 0;
    std::time_t not_after = 0;
    std::string serial_hex;   // lower-case, no leading zeros
    std::string sha256_hex;   // fingerprint of the leaf's DER, lower-case
    std::string ari_cert_id;  // RFC 9773 certificate identifier; empty without an AKI
    std::string issuer_cn;    // of the leaf
    std::string subject_cn;
};

// PEM chain handling. split_pem_chain returns each certificate's PEM block
// in order; throws acme::Error when there is none or one is malformed.
std::vector<std::string> split_pem_chain(std::string_view pem);
CertificateInfo inspect_certificate(std::string_view pem_chain);  // of the leaf (first)
// The leaf's, with the leaf itself in *leaf; throws acme::Error like
// split_pem_chain for a chain that is not certificates. Only the leaf is
// parsed as X.509 (each parse decodes a public key, the most of what
// reading a store costs); the others are checked to be well-formed DER.
CertificateInfo inspect_chain(std::string_view pem_chain, X509Ptr* leaf = nullptr);
bool certificate_matches_key(std::string_view pem_chain, const PrivateKey& key);
bool certificate_matches_key(X509* leaf, const PrivateKey& key);

// A self-signed certificate for the given names (SANs; first DNS name as CN),
// valid from now - 1 h for `days`. Used as the fallback until the CA issues
// one. Returns PEM.
std::string make_self_signed(const PrivateKey& key, const std::vector<Identifier>& names, int days);

// OpenSSL's error queue as one line (and cleared), for exception messages.
std::string openssl_errors();

}  // namespace acme
