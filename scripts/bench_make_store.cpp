// Fills a file store with N certificates in a few seconds, for
// scripts/bench-scale.pl: one CA, and per name an ECDSA P-256 key and a
// leaf signed by that CA, written as the engine writes them
// (<basename>.crt: leaf and CA; <basename>.key), so the same files serve as
// the static ssl_certificate comparison.
//
//   bench-make-store DIR N [DAYS] [SUFFIX]
//
// Names are site1.SUFFIX ... siteN.SUFFIX (SUFFIX: scale.test). Writes
// DIR/ca.pem and prints "name basename serial" per certificate.
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "acme/storage.h"

namespace {

struct Die {
    [[noreturn]] explicit Die(const std::string &what) {
        std::fprintf(stderr, "bench-make-store: %s\n", what.c_str());
        std::exit(1);
    }
};

EVP_PKEY *new_key() {
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (key == nullptr) Die("EVP_EC_gen failed");
    return key;
}

void add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (ext == nullptr || X509_add_ext(cert, ext, -1) != 1) Die("extension " + std::string(value));
    X509_EXTENSION_free(ext);
}

X509 *make_cert(EVP_PKEY *key, const std::string &cn, long serial, int days, X509 *issuer,
                EVP_PKEY *issuer_key, const std::string &san) {
    X509 *cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), static_cast<long>(days) * 86400);
    X509_set_pubkey(cert, key);
    X509_NAME *name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char *>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name);
    X509 *signer = issuer ? issuer : cert;
    add_ext(cert, signer, NID_subject_key_identifier, "hash");
    if (issuer == nullptr) {
        add_ext(cert, signer, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(cert, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(cert, signer, NID_authority_key_identifier, "keyid:always");
        add_ext(cert, signer, NID_basic_constraints, "CA:FALSE");
        add_ext(cert, signer, NID_key_usage, "critical,digitalSignature");
        add_ext(cert, signer, NID_ext_key_usage, "serverAuth");
        add_ext(cert, signer, NID_subject_alt_name, san.c_str());
    }
    if (X509_sign(cert, issuer_key ? issuer_key : key, EVP_sha256()) == 0) Die("X509_sign");
    return cert;
}

std::string pem(X509 *cert) {
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    char *data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(len));
    BIO_free(bio);
    return out;
}

std::string pem(EVP_PKEY *key) {
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    char *data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(len));
    BIO_free(bio);
    return out;
}

void write(const std::string &path, const std::string &text, mode_t mode = 0644) {
    FILE *f = std::fopen(path.c_str(), "w");
    if (f == nullptr || std::fwrite(text.data(), 1, text.size(), f) != text.size() ||
        std::fclose(f) != 0) {
        Die("cannot write " + path);
    }
    if (chmod(path.c_str(), mode) != 0) Die("cannot chmod " + path);
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 3) Die("usage: bench-make-store DIR N [DAYS] [SUFFIX]");
    std::string dir = argv[1];
    long n = std::atol(argv[2]);
    int days = argc > 3 ? std::atoi(argv[3]) : 90;
    std::string suffix = argc > 4 ? argv[4] : "scale.test";

    EVP_PKEY *ca_key = new_key();
    X509 *ca = make_cert(ca_key, "bench-scale CA", 1, days + 1, nullptr, nullptr, "");
    std::string ca_pem = pem(ca);
    write(dir + "/ca.pem", ca_pem);

    for (long i = 1; i <= n; i++) {
        std::string name = "site" + std::to_string(i) + "." + suffix;
        EVP_PKEY *key = new_key();
        X509 *leaf = make_cert(key, name, 1000 + i, days, ca, ca_key, "DNS:" + name);
        std::string base =
            acme::certificate_basename({acme::Identifier{acme::Identifier::Type::dns, name}},
                                       acme::KeyType::ecdsa256);
        write(dir + "/" + base + acme::storage_keys::key_suffix, pem(key), 0600);
        write(dir + "/" + base + acme::storage_keys::cert_suffix, pem(leaf) + ca_pem);
        std::printf("%s %s %lX\n", name.c_str(), base.c_str(), 1000 + i);
        X509_free(leaf);
        EVP_PKEY_free(key);
    }
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return 0;
}
