// Keys, JWS signatures, CSRs and certificate inspection with OpenSSL 3's
// provider-based EVP APIs (none of the deprecated EC_KEY / RSA calls).
#include "crypto.h"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <climits>

#include "base64url.h"
#include "error.h"

namespace acme {

namespace {

// One deleter template for the many OpenSSL free functions.
template <auto Free>
struct Deleter {
    template <class T>
    void operator()(T* p) const {
        Free(p);
    }
};

void free_extensions(STACK_OF(X509_EXTENSION) * exts) {
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
}

// OPENSSL_free is a macro, so it cannot be a template argument itself.
void free_openssl_string(char* s) { OPENSSL_free(s); }

using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG_free>>;
using X509ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, Deleter<GENERAL_NAME_free>>;
using Asn1StringPtr = std::unique_ptr<ASN1_STRING, Deleter<ASN1_STRING_free>>;
using ExtensionsPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), Deleter<free_extensions>>;
using OpensslStringPtr = std::unique_ptr<char, Deleter<free_openssl_string>>;

// RFC 5280's upper bound for a CommonName; longer names stay SAN-only.
constexpr size_t kMaxCommonName = 64;

[[noreturn]] void fail(const std::string& what) {
    std::string details = openssl_errors();
    throw Error(details.empty() ? what : what + ": " + details);
}

// Without a callback OpenSSL would prompt on the terminal for the passphrase
// of an encrypted key, which would hang a daemon; refusing makes it an error.
int no_passphrase(char*, int, int, void*) { return 0; }

BioPtr memory_bio(std::string_view data) {
    if (data.size() > INT_MAX) throw Error("input too large for OpenSSL");
    BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
    if (!bio) fail("BIO_new_mem_buf() failed");
    return bio;
}

std::string bio_contents(BIO* bio) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    return std::string(data, len > 0 ? static_cast<size_t>(len) : 0);
}

std::string bn_param(EVP_PKEY* key, const char* name, int width) {
    BIGNUM* raw = nullptr;
    if (EVP_PKEY_get_bn_param(key, name, &raw) != 1)
        fail(std::string("cannot read key parameter ") + name);
    BignumPtr bn(raw);
    // JWK wants EC coordinates at the full field width but RSA integers
    // without leading zeros (RFC 7518 sections 6.2.1.2 and 6.3.1.1).
    if (width == 0) width = BN_num_bytes(bn.get());
    std::string out(static_cast<size_t>(width), '\0');
    if (BN_bn2binpad(bn.get(), reinterpret_cast<unsigned char*>(out.data()), width) != width)
        fail(std::string("key parameter ") + name + " does not fit");
    return out;
}

int ec_coordinate_width(KeyType type) {
    return type == KeyType::ecdsa521 ? 66 : type == KeyType::ecdsa384 ? 48 : 32;
}

bool is_ec(KeyType type) {
    return type == KeyType::ecdsa256 || type == KeyType::ecdsa384 || type == KeyType::ecdsa521;
}

const EVP_MD* jws_digest(KeyType type) {
    if (type == KeyType::ecdsa521) return EVP_sha512();
    return type == KeyType::ecdsa384 ? EVP_sha384() : EVP_sha256();
}

std::optional<KeyType> classify_key(EVP_PKEY* key) {
    if (EVP_PKEY_is_a(key, "EC")) {
        char group[64];
        size_t len = 0;
        if (EVP_PKEY_get_group_name(key, group, sizeof group, &len) != 1) return std::nullopt;
        int nid = OBJ_sn2nid(group);
        if (nid == NID_undef) nid = EC_curve_nist2nid(group);
        if (nid == NID_X9_62_prime256v1) return KeyType::ecdsa256;
        if (nid == NID_secp384r1) return KeyType::ecdsa384;
        if (nid == NID_secp521r1) return KeyType::ecdsa521;
        return std::nullopt;
    }
    if (EVP_PKEY_is_a(key, "RSA")) {
        switch (EVP_PKEY_get_bits(key)) {
            case 2048:
                return KeyType::rsa2048;
            case 3072:
                return KeyType::rsa3072;
            case 4096:
                return KeyType::rsa4096;
        }
    }
    return std::nullopt;
}

X509Ptr read_leaf(std::string_view pem) {
    BioPtr bio = memory_bio(pem);
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr));
    if (!cert) fail("cannot read certificate");
    return cert;
}

// SAN extension contents for ids: DNS names as IA5Strings, IP addresses as
// their raw 4 or 16 network-order bytes (RFC 5280 section 4.2.1.6).
GeneralNamesPtr make_general_names(const std::vector<Identifier>& ids) {
    GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
    if (!names) fail("sk_GENERAL_NAME_new_null() failed");
    for (const Identifier& id : ids) {
        Asn1StringPtr value;
        int kind;
        if (id.type == Identifier::Type::dns) {
            kind = GEN_DNS;
            value.reset(ASN1_IA5STRING_new());
            if (!value || ASN1_STRING_set(value.get(), id.value.data(),
                                          static_cast<int>(id.value.size())) != 1)
                fail("cannot encode DNS name \"" + id.value + "\"");
        } else {
            kind = GEN_IPADD;
            unsigned char addr[16];
            int len;
            if (inet_pton(AF_INET, id.value.c_str(), addr) == 1)
                len = 4;
            else if (inet_pton(AF_INET6, id.value.c_str(), addr) == 1)
                len = 16;
            else
                throw Error("invalid IP address \"" + id.value + "\"");
            value.reset(ASN1_OCTET_STRING_new());
            if (!value || ASN1_OCTET_STRING_set(value.get(), addr, len) != 1)
                fail("cannot encode IP address \"" + id.value + "\"");
        }
        GeneralNamePtr name(GENERAL_NAME_new());
        if (!name) fail("GENERAL_NAME_new() failed");
        GENERAL_NAME_set0_value(name.get(), kind, value.release());
        if (sk_GENERAL_NAME_push(names.get(), name.get()) == 0)
            fail("sk_GENERAL_NAME_push() failed");
        name.release();
    }
    return names;
}

void add_common_name(X509_NAME* subject, const std::string& cn) {
    if (X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                   0) != 1)
        fail("cannot set common name \"" + cn + "\"");
}

// The first DNS name if it may serve as a CN (IP addresses never do, as CAs
// reject them there).
std::optional<std::string> common_name_for(const std::vector<Identifier>& ids) {
    for (const Identifier& id : ids) {
        if (id.type != Identifier::Type::dns) continue;
        if (id.value.size() > kMaxCommonName) return std::nullopt;
        return id.value;
    }
    return std::nullopt;
}

std::string name_entry(const X509_NAME* name, int nid) {
    int index = X509_NAME_get_index_by_NID(name, nid, -1);
    if (index < 0) return {};
    const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len < 0) {
        ERR_clear_error();
        return {};
    }
    std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
    OPENSSL_free(utf8);
    return out;
}

std::time_t to_time_t(const ASN1_TIME* t, const char* which) {
    struct tm tm = {};
    if (ASN1_TIME_to_tm(t, &tm) != 1) fail(std::string("cannot parse certificate ") + which);
    return timegm(&tm);
}

std::string serial_hex(const X509* cert) {
    BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
    if (!bn) fail("cannot read certificate serial number");
    OpensslStringPtr text(BN_bn2hex(bn.get()));
    if (!text) fail("BN_bn2hex() failed");
    std::string out(text.get());
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    // BN_bn2hex prints whole bytes, so "0a1b" can appear; the file name and
    // log forms drop the leading zero nibble.
    size_t start = out.find_first_not_of('0');
    if (start == std::string::npos) return "0";
    return out.substr(start);
}

// RFC 9773 section 4.1: base64url(AKI keyIdentifier) "." base64url(serial
// DER content octets, a leading zero included). Empty without an AKI key id.
std::string ari_cert_id(const X509* cert) {
    const ASN1_OCTET_STRING* key_id = X509_get0_authority_key_id(const_cast<X509*>(cert));
    if (key_id == nullptr || ASN1_STRING_length(key_id) <= 0) return "";
    const ASN1_INTEGER* serial = X509_get0_serialNumber(cert);
    int len = i2d_ASN1_INTEGER(serial, nullptr);
    if (len <= 2) fail("cannot encode certificate serial number");
    std::string der(static_cast<size_t>(len), '\0');
    auto* out = reinterpret_cast<unsigned char*>(der.data());
    if (i2d_ASN1_INTEGER(serial, &out) != len) fail("cannot encode certificate serial number");
    // Skip the tag and the (short or long form) length.
    size_t header = 2;
    auto first_len = static_cast<unsigned char>(der[1]);
    if (first_len & 0x80) header += first_len & 0x7f;
    std::string kid(reinterpret_cast<const char*>(ASN1_STRING_get0_data(key_id)),
                    static_cast<size_t>(ASN1_STRING_length(key_id)));
    return base64url_encode(kid) + "." + base64url_encode(der.substr(header));
}

std::vector<Identifier> subject_alt_names(const X509* cert) {
    std::vector<Identifier> out;
    GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
    if (!names) {
        ERR_clear_error();  // absent or undecodable: either way no names to report
        return out;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
        const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
        int kind;
        const ASN1_STRING* value =
            static_cast<const ASN1_STRING*>(GENERAL_NAME_get0_value(name, &kind));
        const unsigned char* data = ASN1_STRING_get0_data(value);
        int len = ASN1_STRING_length(value);
        if (kind == GEN_DNS) {
            std::string dns(reinterpret_cast<const char*>(data), static_cast<size_t>(len));
            for (char& c : dns) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            out.push_back({Identifier::Type::dns, dns});
        } else if (kind == GEN_IPADD && (len == 4 || len == 16)) {
            char text[INET6_ADDRSTRLEN];
            if (inet_ntop(len == 4 ? AF_INET : AF_INET6, data, text, sizeof text) != nullptr)
                out.push_back({Identifier::Type::ip, text});
        }
    }
    return out;
}

}  // namespace

std::optional<KeyType> parse_key_type(std::string_view spec) {
    // nginx-acme's forms: a bare algorithm means its usual size.
    if (spec == "ecdsa") return KeyType::ecdsa256;
    if (spec == "rsa") return KeyType::rsa2048;
    if (spec == "ecdsa:521") return KeyType::ecdsa521;
    if (spec == "ecdsa:256") return KeyType::ecdsa256;
    if (spec == "ecdsa:384") return KeyType::ecdsa384;
    if (spec == "rsa:2048") return KeyType::rsa2048;
    if (spec == "rsa:3072") return KeyType::rsa3072;
    if (spec == "rsa:4096") return KeyType::rsa4096;
    return std::nullopt;
}

std::string key_type_name(KeyType type) {
    switch (type) {
        case KeyType::ecdsa256:
            return "ecdsa:256";
        case KeyType::ecdsa384:
            return "ecdsa:384";
        case KeyType::rsa2048:
            return "rsa:2048";
        case KeyType::rsa3072:
            return "rsa:3072";
        case KeyType::rsa4096:
            return "rsa:4096";
        case KeyType::ecdsa521:
            return "ecdsa:521";
    }
    return "unknown";
}

PrivateKey PrivateKey::generate(KeyType type) {
    ERR_clear_error();
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, is_ec(type) ? "EC" : "RSA", nullptr));
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1) fail("cannot start key generation");
    int ok;
    switch (type) {
        case KeyType::ecdsa256:
            ok = EVP_PKEY_CTX_set_group_name(ctx.get(), "P-256");
            break;
        case KeyType::ecdsa384:
            ok = EVP_PKEY_CTX_set_group_name(ctx.get(), "P-384");
            break;
        case KeyType::ecdsa521:
            ok = EVP_PKEY_CTX_set_group_name(ctx.get(), "P-521");
            break;
        case KeyType::rsa2048:
            ok = EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), 2048);
            break;
        case KeyType::rsa3072:
            ok = EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), 3072);
            break;
        default:
            ok = EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), 4096);
            break;
    }
    if (ok != 1) fail("cannot set up " + key_type_name(type) + " key generation");
    EVP_PKEY* raw = nullptr;
    if (EVP_PKEY_generate(ctx.get(), &raw) != 1)
        fail("cannot generate " + key_type_name(type) + " key");
    return PrivateKey(std::shared_ptr<EVP_PKEY>(raw, EvpPkeyFree()), type);
}

EvpPkeyPtr decode_private_key_pem(std::string_view pem) {
    // OpenSSL 3.0 builds a decoder context, looking at every decoder of
    // every provider, for each PEM_read_bio_PrivateKey: about 0.4 ms, most
    // of what reading a key costs (seconds for nginx -t with thousands of
    // certificates). Each thread keeps one and reuses it: about 60 us.
    struct Decoder {
        EVP_PKEY* out = nullptr;
        OSSL_DECODER_CTX* ctx = OSSL_DECODER_CTX_new_for_pkey(&out, "PEM", nullptr, nullptr,
                                                              EVP_PKEY_KEYPAIR, nullptr, nullptr);
        ~Decoder() { OSSL_DECODER_CTX_free(ctx); }
    };
    thread_local Decoder decoder;
    ERR_clear_error();
    decoder.out = nullptr;
    const auto* data = reinterpret_cast<const unsigned char*>(pem.data());
    size_t len = pem.size();
    if (decoder.ctx == nullptr || OSSL_DECODER_from_data(decoder.ctx, &data, &len) != 1) {
        EVP_PKEY_free(decoder.out);
        decoder.out = nullptr;
    }
    EvpPkeyPtr key(decoder.out);
    decoder.out = nullptr;
    return key;
}

PrivateKey PrivateKey::from_pem(std::string_view pem) {
    EvpPkeyPtr key = decode_private_key_pem(pem);
    if (!key) fail("cannot read private key");
    std::optional<KeyType> type = classify_key(key.get());
    if (!type) {
        throw Error(std::string("unsupported private key type ") +
                    EVP_PKEY_get0_type_name(key.get()) + " (" +
                    std::to_string(EVP_PKEY_get_bits(key.get())) +
                    " bits); use ecdsa:256, ecdsa:384, ecdsa:521, rsa:2048, rsa:3072 or rsa:4096");
    }
    return PrivateKey(std::shared_ptr<EVP_PKEY>(key.release(), EvpPkeyFree()), *type);
}

std::string PrivateKey::to_pem() const {
    ERR_clear_error();
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PKCS8PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr,
                                              nullptr) != 1)
        fail("cannot write private key");
    return bio_contents(bio.get());
}

std::string PrivateKey::jwk() const {
    ERR_clear_error();
    if (is_ec(type_)) {
        int width = ec_coordinate_width(type_);
        const char* crv = type_ == KeyType::ecdsa521   ? "P-521"
                          : type_ == KeyType::ecdsa384 ? "P-384"
                                                       : "P-256";
        return std::string("{\"crv\":\"") + crv + "\",\"kty\":\"EC\",\"x\":\"" +
               base64url_encode(bn_param(key_.get(), OSSL_PKEY_PARAM_EC_PUB_X, width)) +
               "\",\"y\":\"" +
               base64url_encode(bn_param(key_.get(), OSSL_PKEY_PARAM_EC_PUB_Y, width)) + "\"}";
    }
    return "{\"e\":\"" + base64url_encode(bn_param(key_.get(), OSSL_PKEY_PARAM_RSA_E, 0)) +
           "\",\"kty\":\"RSA\",\"n\":\"" +
           base64url_encode(bn_param(key_.get(), OSSL_PKEY_PARAM_RSA_N, 0)) + "\"}";
}

std::string PrivateKey::thumbprint() const { return jwk_thumbprint(jwk()); }

std::string PrivateKey::jws_alg() const {
    switch (type_) {
        case KeyType::ecdsa256:
            return "ES256";
        case KeyType::ecdsa384:
            return "ES384";
        case KeyType::ecdsa521:
            return "ES512";
        default:
            return "RS256";
    }
}

std::string PrivateKey::sign(std::string_view data) const {
    ERR_clear_error();
    // A fresh context per call: the EVP_PKEY is shared read-only between
    // threads, the context is not.
    MdCtxPtr ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, jws_digest(type_), nullptr, key_.get()) != 1)
        fail("cannot start signing");
    size_t len = 0;
    const auto* in = reinterpret_cast<const unsigned char*>(data.data());
    if (EVP_DigestSign(ctx.get(), nullptr, &len, in, data.size()) != 1) fail("cannot sign");
    std::string sig(len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in,
                       data.size()) != 1)
        fail("cannot sign");
    sig.resize(len);
    if (!is_ec(type_)) return sig;

    // OpenSSL produces a DER SEQUENCE { r, s }; JWS wants r || s, each
    // left-padded to the coordinate size (RFC 7518 section 3.4).
    const auto* der = reinterpret_cast<const unsigned char*>(sig.data());
    EcdsaSigPtr ecdsa(d2i_ECDSA_SIG(nullptr, &der, static_cast<long>(sig.size())));
    if (!ecdsa) fail("cannot decode ECDSA signature");
    const BIGNUM* r = nullptr;
    const BIGNUM* s = nullptr;
    ECDSA_SIG_get0(ecdsa.get(), &r, &s);
    int width = ec_coordinate_width(type_);
    std::string raw(2 * static_cast<size_t>(width), '\0');
    auto* out = reinterpret_cast<unsigned char*>(raw.data());
    if (BN_bn2binpad(r, out, width) != width || BN_bn2binpad(s, out + width, width) != width)
        fail("ECDSA signature does not fit");
    return raw;
}

std::string jwk_thumbprint(std::string_view canonical_jwk) {
    return base64url_encode(sha256(canonical_jwk));
}

std::string sha256(std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
        fail("SHA-256 failed");
    return std::string(reinterpret_cast<char*>(md), len);
}

std::string hmac(std::string_view alg, std::string_view key, std::string_view data) {
    const EVP_MD* md = alg == "HS256"   ? EVP_sha256()
                       : alg == "HS384" ? EVP_sha384()
                       : alg == "HS512" ? EVP_sha512()
                                        : nullptr;
    if (md == nullptr) throw Error("unsupported MAC algorithm \"" + std::string(alg) + "\"");
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (HMAC(md, key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
             &len) == nullptr)
        fail("HMAC failed");
    return std::string(reinterpret_cast<char*>(out), len);
}

std::string hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

std::string make_csr_der(const PrivateKey& key, const std::vector<Identifier>& ids,
                         bool common_name) {
    ERR_clear_error();
    if (ids.empty()) throw Error("cannot make a CSR without identifiers");
    X509ReqPtr req(X509_REQ_new());
    if (!req || X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1)
        fail("X509_REQ_new() failed");
    if (common_name) {
        if (std::optional<std::string> cn = common_name_for(ids))
            add_common_name(X509_REQ_get_subject_name(req.get()), *cn);
    }
    if (X509_REQ_set_pubkey(req.get(), key.get()) != 1) fail("cannot set CSR public key");

    GeneralNamesPtr names = make_general_names(ids);
    STACK_OF(X509_EXTENSION)* raw_exts = nullptr;
    if (X509V3_add1_i2d(&raw_exts, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1)
        fail("cannot encode subjectAltName");
    ExtensionsPtr exts(raw_exts);
    if (X509_REQ_add_extensions(req.get(), exts.get()) != 1) fail("cannot add CSR extensions");

    if (X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) fail("cannot sign CSR");
    int len = i2d_X509_REQ(req.get(), nullptr);
    if (len <= 0) fail("cannot encode CSR");
    std::string der(static_cast<size_t>(len), '\0');
    auto* out = reinterpret_cast<unsigned char*>(der.data());
    if (i2d_X509_REQ(req.get(), &out) != len) fail("cannot encode CSR");
    return der;
}

namespace {

// A certificate after the leaf, checked without X509: a CERTIFICATE block
// whose base64 decodes to one well-formed DER structure. d2i_X509 would
// also decode its public key, which OpenSSL 3.0 does with a new decoder
// context every time (a third of what reading a stored chain costs); nginx
// parses the chain itself when it loads it.
void check_certificate_der(std::string_view block) {
    BioPtr bio = memory_bio(block);
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long len = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) {
        fail("cannot read certificate");
    }
    bool certificate = std::string_view(name) == "CERTIFICATE";
    const unsigned char* p = data;
    ASN1_SEQUENCE_ANY* der = certificate ? d2i_ASN1_SEQUENCE_ANY(nullptr, &p, len) : nullptr;
    bool whole = der != nullptr && p == data + len;
    sk_ASN1_TYPE_pop_free(der, ASN1_TYPE_free);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    if (!whole) fail("cannot read certificate");
}

// Every certificate block of a chain, parsed, in order: text between blocks
// is ignored, as OpenSSL does when loading a chain; each block must parse,
// so a truncated download is caught. With leaf_only the certificates after
// the first are only checked (check_certificate_der) and given as nullptr.
template <class Each>
void parse_pem_chain(std::string_view pem, Each&& each, bool leaf_only = false) {
    ERR_clear_error();
    static constexpr std::string_view begin = "-----BEGIN CERTIFICATE-----";
    static constexpr std::string_view end = "-----END CERTIFICATE-----";
    size_t pos = 0;
    size_t n = 0;
    while ((pos = pem.find(begin, pos)) != std::string_view::npos) {
        size_t stop = pem.find(end, pos + begin.size());
        if (stop == std::string_view::npos)
            throw Error("malformed PEM certificate chain: certificate " + std::to_string(n + 1) +
                        " has no END line");
        stop += end.size();
        std::string block(pem.substr(pos, stop - pos));
        block += '\n';
        X509Ptr cert;
        try {
            if (leaf_only && n > 0) {
                check_certificate_der(block);
            } else {
                cert = read_leaf(block);
            }
        } catch (const Error& e) {
            throw Error("malformed PEM certificate chain: certificate " + std::to_string(n + 1) +
                        ": " + e.what());
        }
        each(std::move(cert), std::move(block));
        n++;
        pos = stop;
    }
    if (n == 0) throw Error("no certificate in PEM data");
}

CertificateInfo info_of(X509* cert) {
    CertificateInfo info;
    info.names = subject_alt_names(cert);
    info.not_before = to_time_t(X509_get0_notBefore(cert), "notBefore");
    info.not_after = to_time_t(X509_get0_notAfter(cert), "notAfter");
    info.serial_hex = serial_hex(cert);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (X509_digest(cert, EVP_sha256(), md, &md_len) != 1) fail("X509_digest() failed");
    info.sha256_hex = hex(std::string_view(reinterpret_cast<const char*>(md), md_len));
    info.ari_cert_id = ari_cert_id(cert);
    info.issuer_cn = name_entry(X509_get_issuer_name(cert), NID_commonName);
    info.subject_cn = name_entry(X509_get_subject_name(cert), NID_commonName);
    return info;
}

}  // namespace

std::vector<std::string> split_pem_chain(std::string_view pem) {
    std::vector<std::string> out;
    parse_pem_chain(pem, [&](X509Ptr, std::string block) { out.push_back(std::move(block)); });
    return out;
}

CertificateInfo inspect_certificate(std::string_view pem_chain) {
    ERR_clear_error();
    return info_of(read_leaf(pem_chain).get());
}

CertificateInfo inspect_chain(std::string_view pem_chain, X509Ptr* leaf) {
    X509Ptr first;
    parse_pem_chain(
        pem_chain,
        [&](X509Ptr cert, std::string) {
            if (!first) first = std::move(cert);
        },
        true);
    CertificateInfo info = info_of(first.get());
    if (leaf != nullptr) *leaf = std::move(first);
    return info;
}

bool certificate_matches_key(X509* leaf, const PrivateKey& key) {
    bool match = X509_check_private_key(leaf, key.get()) == 1;
    // A mismatch is an answer, not an error; keep the queue clean for the next caller.
    ERR_clear_error();
    return match;
}

bool certificate_matches_key(std::string_view pem_chain, const PrivateKey& key) {
    ERR_clear_error();
    return certificate_matches_key(read_leaf(pem_chain).get(), key);
}

std::string make_self_signed(const PrivateKey& key, const std::vector<Identifier>& names,
                             int days) {
    ERR_clear_error();
    X509Ptr cert(X509_new());
    if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) fail("X509_new() failed");

    // Random positive serial: browsers refuse a second self-signed
    // certificate with the same issuer and serial.
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof serial) != 1) fail("RAND_bytes() failed");
    serial[0] = static_cast<unsigned char>((serial[0] & 0x7f) | 0x40);
    BignumPtr bn(BN_bin2bn(serial, sizeof serial, nullptr));
    if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())))
        fail("cannot set serial");

    if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) ||
        !X509_time_adj_ex(X509_getm_notAfter(cert.get()), days, 0, nullptr))
        fail("cannot set validity");

    X509_NAME* subject = X509_get_subject_name(cert.get());
    add_common_name(subject, common_name_for(names).value_or("acme fallback"));
    if (X509_set_issuer_name(cert.get(), subject) != 1) fail("cannot set issuer");
    if (X509_set_pubkey(cert.get(), key.get()) != 1) fail("cannot set public key");

    if (!names.empty()) {
        GeneralNamesPtr sans = make_general_names(names);
        if (X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, sans.get(), 0,
                              X509V3_ADD_DEFAULT) != 1)
            fail("cannot add subjectAltName");
    }
    if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0)
        fail("cannot sign self-signed certificate");

    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_X509(bio.get(), cert.get()) != 1) fail("cannot write certificate");
    return bio_contents(bio.get());
}

std::string openssl_errors() {
    std::string out;
    const char* data = nullptr;
    int flags = 0;
    // The queue is thread-local, so this reports only this thread's errors.
    while (unsigned long code = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
        char buf[256];
        ERR_error_string_n(code, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
        if ((flags & ERR_TXT_STRING) && data != nullptr && *data != '\0') {
            out += " (";
            out += data;
            out += ')';
        }
    }
    return out;
}

}  // namespace acme
