// OCSP stapling for managed certificates. The engine (helper) fetches and
// checks responses and stores them as <id>.ocsp; a process reads them when
// the certificate's generation changes and staples them from its own
// status callback, so workers never reach the network. nginx's own
// stapling (set up at configuration time) only knows the X509 objects it
// saw then, which the hot swap replaces: our callback answers for the
// managed certificates and hands every other one to nginx's callback.
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <ctime>
#include <exception>
#include <string>
#include <unordered_map>

#include "acme/crypto.h"
#include "acme/file_io.h"
#include "acme/ocsp.h"
#include "acme/storage.h"
#include "ngx/ngx_http_acme.h"

namespace {

using StatusCallback = int (*)(SSL *, void *);

// nginx's callback and argument on a context we took over.
struct Previous {
    StatusCallback callback;
    void *arg;
};

// This process's responses: by SHA-256 of the leaf's DER (what a handshake
// has at hand), and which leaf each stored certificate had, to drop the
// response of a replaced one.
struct Response {
    std::string der;
    time_t next_update;  // 0: none given; past it the response is not sent
};
std::unordered_map<std::string, Response> responses;
std::unordered_map<std::string, std::string> leaf_of;

std::string leaf_fingerprint(X509 *leaf) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (X509_digest(leaf, EVP_sha256(), md, &len) != 1) {
        return {};
    }
    return std::string(reinterpret_cast<char *>(md), len);
}

int status_callback(SSL *ssl, void *arg) {
    auto *previous = static_cast<Previous *>(arg);
    X509 *leaf = SSL_get_certificate(ssl);
    if (leaf != nullptr && !responses.empty()) {
        auto it = responses.find(leaf_fingerprint(leaf));
        if (it != responses.end() &&
            (it->second.next_update == 0 || ngx_time() < it->second.next_update)) {
            // OpenSSL frees the copy with the connection.
            auto *der = static_cast<unsigned char *>(OPENSSL_malloc(it->second.der.size()));
            if (der == nullptr) {
                return SSL_TLSEXT_ERR_NOACK;
            }
            ngx_memcpy(der, it->second.der.data(), it->second.der.size());
            if (SSL_set_tlsext_status_ocsp_resp(ssl, der,
                                                static_cast<long>(it->second.der.size())) != 1) {
                OPENSSL_free(der);
                return SSL_TLSEXT_ERR_NOACK;
            }
            return SSL_TLSEXT_ERR_OK;
        }
    }
    if (previous != nullptr && previous->callback != nullptr) {
        return previous->callback(ssl, previous->arg);
    }
    return SSL_TLSEXT_ERR_NOACK;
}

std::string ocsp_path(const ngx_http_acme_served_t *served) {
    std::string crt = ngx_http_acme_string(served->crt_path);
    std::string suffix = acme::storage_keys::cert_suffix;
    return crt.substr(0, crt.size() - suffix.size()) + acme::storage_keys::ocsp_suffix;
}

}  // namespace

ngx_int_t ngx_http_acme_ocsp_serve(ngx_conf_t *cf, SSL_CTX *ctx) {
    StatusCallback current = nullptr;
    SSL_CTX_get_tlsext_status_cb(ctx, &current);
    if (current == status_callback) {
        return NGX_OK;  // a second managed certificate in this server
    }
    auto *previous = static_cast<Previous *>(ngx_pcalloc(cf->pool, sizeof(Previous)));
    if (previous == nullptr) {
        return NGX_ERROR;
    }
    previous->callback = current;
    SSL_CTX_get_tlsext_status_arg(ctx, &previous->arg);
    SSL_CTX_set_tlsext_status_cb(ctx, status_callback);
    SSL_CTX_set_tlsext_status_arg(ctx, previous);
    return NGX_OK;
}

void ngx_http_acme_ocsp_refresh(const ngx_http_acme_served_t *served, ngx_log_t *log) {
    std::string id = ngx_http_acme_string(served->basename);
    auto old = leaf_of.find(id);
    if (old != leaf_of.end()) {
        responses.erase(old->second);
        leaf_of.erase(old);
    }
    try {
        std::string path = ocsp_path(served);
        struct stat st;
        if (lstat(path.c_str(), &st) != 0) {
            return;  // no response (yet): nothing is stapled
        }
        // Workers run as the engine's user: the files are theirs or root's.
        std::string der, crt, why;
        struct stat crt_st;
        if (acme::read_trusted_file(path, false, geteuid(), &der, &st, &why) !=
                acme::TrustedRead::ok ||
            acme::read_trusted_file(ngx_http_acme_string(served->crt_path), false, geteuid(), &crt,
                                    &crt_st, &why) != acme::TrustedRead::ok) {
            if (!why.empty()) {
                ngx_log_error(NGX_LOG_ERR, log, 0, "acme: OCSP response not stapled: %s",
                              why.c_str());
            }
            return;
        }
        // A response for the previous certificate stays on disk until the
        // engine has one for the new: it must not be stapled to the new.
        acme::OcspStatus status = acme::check_ocsp_response(der, crt, false, std::time(nullptr));
        if (!status.good) {
            ngx_log_error(NGX_LOG_INFO, log, 0, "acme: OCSP response \"%s\" not stapled: %s",
                          path.c_str(), status.error.c_str());
            return;
        }
        BIO *bio = BIO_new_mem_buf(crt.data(), static_cast<int>(crt.size()));
        acme::X509Ptr leaf(bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr);
        BIO_free(bio);
        if (!leaf) {
            return;
        }
        std::string fp = leaf_fingerprint(leaf.get());
        responses[fp] = Response{std::move(der), status.next_update};
        leaf_of[id] = fp;
        ngx_log_error(NGX_LOG_INFO, log, 0, "acme: stapling OCSP response \"%s\"", path.c_str());
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "acme: OCSP response not stapled: %s", e.what());
    }
}
