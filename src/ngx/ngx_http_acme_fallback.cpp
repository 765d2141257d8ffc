// The certificate an acme server has before one is stored, and how nginx is
// kept from parsing a certificate of its own for every acme server.
//
// nginx's ssl module makes a server's SSL context, and passes its "no
// ssl_certificate" check, only for a server with ssl_certificate entries,
// so acme_certificate pushes one: "$acme_fallback_certificate". Because it
// has a variable, nginx compiles it instead of loading a PEM pair (OpenSSL
// 3.0's key decoder takes about 0.5 ms per key: seconds for every nginx -t,
// start and reload with thousands of servers, on top of the stored pairs)
// and installs its per-handshake certificate callback. This module's merge,
// which runs after nginx's, takes such entries back out, drops the callback
// when nothing else needs it, and installs the stored pair, or else the
// fallback: one self-signed pair per key type and configuration, parsed
// once and shared by reference by every context that serves it.
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <exception>
#include <string>
#include <vector>

#include "ngx/ngx_http_acme.h"
#include "ngx/ngx_http_acme_api.h"

namespace {

ngx_str_t fallback_certificate = ngx_string("$" NGX_HTTP_ACME_FALLBACK_CERTIFICATE);
ngx_str_t fallback_key = ngx_string("$" NGX_HTTP_ACME_FALLBACK_KEY);

// Never evaluated: the entries are taken out before the first handshake.
// Used anywhere else, they are empty.
ngx_int_t fallback_variable(ngx_http_request_t *, ngx_http_variable_value_t *v, uintptr_t) {
    v->not_found = 1;
    return NGX_OK;
}

bool is_variable(const ngx_str_t &value, const char *name) {
    size_t n = ngx_strlen(name);
    if (value.len == n + 1 && value.data[0] == '$') {
        return ngx_strncmp(value.data + 1, name, n) == 0;
    }
    return value.len == n + 3 && ngx_strncmp(value.data, "${", 2) == 0 &&
           ngx_strncmp(value.data + 2, name, n) == 0 && value.data[n + 2] == '}';
}

bool same(const ngx_str_t &a, const ngx_str_t &b) {
    return a.len == b.len && ngx_strncmp(a.data, b.data, a.len) == 0;
}

// Drops the entries flagged in `drop` from an array of compiled values
// (http's or stream's complex values: the array knows their size).
void compact(ngx_array_t *values, const std::vector<bool> &drop) {
    auto *elts = static_cast<u_char *>(values->elts);
    ngx_uint_t kept = 0;
    for (ngx_uint_t i = 0; i < values->nelts; i++) {
        if (!drop[i]) {
            if (kept != i) {
                ngx_memcpy(elts + kept * values->size, elts + i * values->size, values->size);
            }
            kept++;
        }
    }
    values->nelts = kept;
}

void free_fallbacks(void *data) {
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(data);
    for (size_t i = 0; i < NGX_HTTP_ACME_KEY_TYPES; i++) {
        X509_free(amcf->fallback_x509[i]);
        EVP_PKEY_free(amcf->fallback_pkey[i]);
        amcf->fallback_x509[i] = nullptr;
        amcf->fallback_pkey[i] = nullptr;
    }
}

// Made once per configuration and key type: the "data:" PEM that
// $acme_certificate shows until something is stored, and the same pair
// parsed.
char *make_fallback(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf, acme::KeyType type) {
    auto index = static_cast<size_t>(type);
    if (amcf->fallback_x509[index] != nullptr) {
        return NGX_CONF_OK;
    }
    std::string crt, pem;
    try {
        auto key = acme::PrivateKey::generate(type);
        crt = acme::make_self_signed(key, {}, 30);
        pem = key.to_pem();
    } catch (const std::exception &e) {
        return ngx_http_acme_conf_error(cf, 0, "cannot make a fallback certificate: %s", e.what());
    }
    bool first = true;
    for (X509 *x : amcf->fallback_x509) {
        first &= x == nullptr;
    }
    if (first) {
        ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == nullptr) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
        cln->handler = free_fallbacks;
        cln->data = amcf;
    }
    BIO *cbio = BIO_new_mem_buf(crt.data(), static_cast<int>(crt.size()));
    if (cbio != nullptr) {
        amcf->fallback_x509[index] = PEM_read_bio_X509(cbio, nullptr, nullptr, nullptr);
        BIO_free(cbio);
    }
    amcf->fallback_pkey[index] = acme::decode_private_key_pem(pem).release();
    if (amcf->fallback_x509[index] == nullptr || amcf->fallback_pkey[index] == nullptr) {
        return ngx_http_acme_conf_error(cf, 0, "cannot make a fallback certificate: %s",
                                        acme::openssl_errors().c_str());
    }
    amcf->fallback_cert[index] = ngx_http_acme_pstrdup(cf->pool, "data:" + crt);
    amcf->fallback_key[index] = ngx_http_acme_pstrdup(cf->pool, "data:" + pem);
    OPENSSL_cleanse(pem.data(), pem.size());
    if (amcf->fallback_cert[index].data == nullptr || amcf->fallback_key[index].data == nullptr) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

}  // namespace

ngx_int_t ngx_http_acme_add_fallback_variables(ngx_conf_t *cf) {
    for (const ngx_str_t *value : {&fallback_certificate, &fallback_key}) {
        ngx_str_t name = {value->len - 1, value->data + 1};
        ngx_http_variable_t *var = ngx_http_add_variable(cf, &name, NGX_HTTP_VAR_NOCACHEABLE);
        if (var == nullptr) {
            return NGX_ERROR;
        }
        var->get_handler = fallback_variable;
    }
    return NGX_OK;
}

char *ngx_http_acme_add_fallback(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf,
                                 acme::KeyType type, ngx_array_t **certificates,
                                 ngx_array_t **keys) {
    if (make_fallback(cf, amcf, type) != NGX_CONF_OK) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    for (ngx_array_t **arr : {certificates, keys}) {
        if (*arr == NGX_CONF_UNSET_PTR || *arr == nullptr) {
            *arr = ngx_array_create(cf->pool, 1, sizeof(ngx_str_t));
            if (*arr == nullptr) {
                return NGX_HTTP_ACME_CONF_ERROR;
            }
        }
    }
    auto *c = static_cast<ngx_str_t *>(ngx_array_push(*certificates));
    auto *k = static_cast<ngx_str_t *>(ngx_array_push(*keys));
    if (c == nullptr || k == nullptr) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    *c = fallback_certificate;
    *k = fallback_key;
    return NGX_CONF_OK;
}

bool ngx_http_acme_install_fallback(const ngx_http_acme_main_conf_t *amcf, acme::KeyType type,
                                    SSL_CTX *ctx) {
    auto index = static_cast<size_t>(type);
    return SSL_CTX_use_cert_and_key(ctx, amcf->fallback_x509[index], amcf->fallback_pkey[index],
                                    nullptr, 1) == 1;
}

// The module's own entries (the fallbacks, and `$acme_certificate` /
// `$acme_certificate_key` pairs, nginx-acme's way of writing it) leave the
// per-handshake list: the server is served from its SSL context like a
// static one, and hot-swapped. When no other variables remain, the callback
// goes too, and the static entries are loaded the way nginx loads them.
ngx_int_t ngx_http_acme_take_over(ngx_conf_t *cf, ngx_ssl_t *ssl, ngx_array_t *certificates,
                                  ngx_array_t *keys, ngx_array_t **values, ngx_array_t **key_values,
                                  ngx_array_t *passwords) {
    auto *certs = static_cast<ngx_str_t *>(certificates->elts);
    auto *key = static_cast<ngx_str_t *>(keys->elts);
    ngx_uint_t n = certificates->nelts;

    std::vector<bool> ours(n);
    bool other_variables = false;
    for (ngx_uint_t i = 0; i < n; i++) {
        ours[i] = (same(certs[i], fallback_certificate) && same(key[i], fallback_key)) ||
                  (is_variable(certs[i], "acme_certificate") &&
                   is_variable(key[i], "acme_certificate_key"));
        if (!ours[i] && (ngx_http_script_variables_count(&certs[i]) != 0 ||
                         ngx_http_script_variables_count(&key[i]) != 0)) {
            other_variables = true;
        }
    }
    if (other_variables) {
        compact(*values, ours);
        compact(*key_values, ours);
        return NGX_OK;
    }

    SSL_CTX_set_cert_cb(ssl->ctx, nullptr, nullptr);
    *values = nullptr;
    *key_values = nullptr;
    ngx_array_t *load_certs = ngx_array_create(cf->pool, n, sizeof(ngx_str_t));
    ngx_array_t *load_keys = ngx_array_create(cf->pool, n, sizeof(ngx_str_t));
    if (load_certs == nullptr || load_keys == nullptr) {
        return NGX_ERROR;
    }
    for (ngx_uint_t i = 0; i < n; i++) {
        if (ours[i]) {
            continue;
        }
        auto *c = static_cast<ngx_str_t *>(ngx_array_push(load_certs));
        auto *k = static_cast<ngx_str_t *>(ngx_array_push(load_keys));
        if (c == nullptr || k == nullptr) {
            return NGX_ERROR;
        }
        *c = certs[i];
        *k = key[i];
    }
    // nginx derived the session id context from the ssl_certificate strings,
    // the same in every acme server: the merge sets it again
    // (ngx_http_acme_session_context). nginx's stapling has no certificate
    // of these to staple: ours does (ngx_http_acme_ocsp.cpp).
    return load_certs->nelts == 0 ? NGX_OK
                                  : ngx_ssl_certificates(cf, ssl, load_certs, load_keys, passwords);
}
