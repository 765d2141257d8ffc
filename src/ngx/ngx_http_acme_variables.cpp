// nginx-acme's $acme_certificate and $acme_certificate_key, and the take-over
// of servers that use them: such a server is served from its SSL context,
// hot-swapped like any other, instead of re-parsing PEM on every handshake.
#include <openssl/ssl.h>

#include <vector>

#include "ngx/ngx_http_acme.h"

namespace {

enum : uintptr_t { variable_certificate, variable_key };

ngx_int_t ngx_http_acme_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
                                 uintptr_t data);

ngx_http_variable_t ngx_http_acme_variables[] = {
    {ngx_string("acme_certificate"), nullptr, ngx_http_acme_variable, variable_certificate,
     NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("acme_certificate_key"), nullptr, ngx_http_acme_variable, variable_key,
     NGX_HTTP_VAR_NOCACHEABLE, 0},
    ngx_http_null_variable};

// "data:" + the PEM this server's (first) acme_certificate serves now: the
// stored certificate once installed, the in-memory fallback before.
ngx_int_t ngx_http_acme_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
                                 uintptr_t data) {
    auto *ascf = static_cast<ngx_http_acme_srv_conf_t *>(
        ngx_http_get_module_srv_conf(r, ngx_http_acme_module));
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(
        ngx_http_get_module_main_conf(r, ngx_http_acme_module));
    if (ascf == nullptr || ascf->certs == nullptr || ascf->certs->nelts == 0) {
        v->not_found = 1;
        return NGX_OK;
    }
    auto *cert = static_cast<ngx_http_acme_cert_t **>(ascf->certs->elts)[0];
    const ngx_str_t *pem = nullptr;
    if (cert->served != 0) {
        auto *served = static_cast<ngx_http_acme_served_t *>(amcf->served.elts) + cert->served - 1;
        pem = data == variable_key ? &served->pem_key : &served->pem_cert;
    }
    if (pem == nullptr || pem->len == 0) {
        auto index = static_cast<size_t>(cert->key_type);
        pem = data == variable_key ? &amcf->fallback_key[index] : &amcf->fallback_cert[index];
    }

    // A copy: the next renewal frees the worker's current one.
    v->data = static_cast<u_char *>(ngx_pnalloc(r->pool, pem->len));
    if (v->data == nullptr) {
        return NGX_ERROR;
    }
    ngx_memcpy(v->data, pem->data, pem->len);
    v->len = pem->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
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

bool is_fallback(const ngx_http_acme_main_conf_t *amcf, const ngx_str_t &value) {
    for (const ngx_str_t &fallback : amcf->fallback_cert) {
        if (fallback.data != nullptr && value.data == fallback.data) {
            return true;
        }
    }
    return false;
}

// Drops the entries flagged in `drop` from an array of compiled values.
void compact(ngx_array_t *values, const std::vector<bool> &drop) {
    auto *elts = static_cast<ngx_http_complex_value_t *>(values->elts);
    ngx_uint_t kept = 0;
    for (ngx_uint_t i = 0; i < values->nelts; i++) {
        if (!drop[i]) {
            elts[kept++] = elts[i];
        }
    }
    values->nelts = kept;
}

// Every use nginx compiled (ssl_certificate, return, add_header, log
// formats, ...) has looked the variable up by index by now.
bool variable_indexed(ngx_conf_t *cf, const ngx_str_t &name) {
    auto *cmcf = static_cast<ngx_http_core_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module));
    auto *v = static_cast<ngx_http_variable_t *>(cmcf->variables.elts);
    for (ngx_uint_t i = 0; i < cmcf->variables.nelts; i++) {
        if (v[i].name.len == name.len && ngx_strncmp(v[i].name.data, name.data, name.len) == 0) {
            return true;
        }
    }
    return false;
}

}  // namespace

ngx_int_t ngx_http_acme_add_variables(ngx_conf_t *cf) {
    for (ngx_http_variable_t *v = ngx_http_acme_variables; v->name.len; v++) {
        ngx_http_variable_t *var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == nullptr) {
            return NGX_ERROR;
        }
        var->get_handler = v->get_handler;
        var->data = v->data;
    }
    return NGX_OK;
}

void ngx_http_acme_drop_unused_pem(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf) {
    amcf->keep_pem_cert = variable_indexed(cf, ngx_http_acme_variables[variable_certificate].name);
    amcf->keep_pem_key = variable_indexed(cf, ngx_http_acme_variables[variable_key].name);
    auto *served = static_cast<ngx_http_acme_served_t *>(amcf->served.elts);
    for (ngx_uint_t i = 0; i < amcf->served.nelts; i++) {
        if (!amcf->keep_pem_cert) {
            ngx_http_acme_forget_pem(&served[i].pem_cert);
        }
        if (!amcf->keep_pem_key) {
            ngx_http_acme_forget_pem(&served[i].pem_key);
        }
    }
}

// Called in this module's merge, which runs after nginx's ssl module made the
// server's context with a certificate callback because some ssl_certificate
// has variables. The module's own entries (the fallbacks pushed by
// acme_certificate and `$acme_certificate`/`$acme_certificate_key` pairs)
// leave the per-handshake list: the fallbacks are loaded into the context
// the way nginx loads static certificates, and ngx_http_acme_serve then
// installs the stored certificate over them. When no other variables
// remain, the callback goes too.
ngx_int_t ngx_http_acme_take_over_certificates(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf,
                                               ngx_http_ssl_srv_conf_t *sscf) {
    auto *certs = static_cast<ngx_str_t *>(sscf->certificates->elts);
    auto *keys = static_cast<ngx_str_t *>(sscf->certificate_keys->elts);
    ngx_uint_t n = sscf->certificates->nelts;

    std::vector<bool> ours(n), fallback(n);
    bool other_variables = false;
    for (ngx_uint_t i = 0; i < n; i++) {
        fallback[i] = is_fallback(amcf, certs[i]);
        ours[i] = fallback[i] || (is_variable(certs[i], "acme_certificate") &&
                                  is_variable(keys[i], "acme_certificate_key"));
        if (!ours[i] && (ngx_http_script_variables_count(&certs[i]) != 0 ||
                         ngx_http_script_variables_count(&keys[i]) != 0)) {
            other_variables = true;
        }
    }

    ngx_array_t *load_certs = ngx_array_create(cf->pool, n, sizeof(ngx_str_t));
    ngx_array_t *load_keys = ngx_array_create(cf->pool, n, sizeof(ngx_str_t));
    if (load_certs == nullptr || load_keys == nullptr) {
        return NGX_ERROR;
    }
    for (ngx_uint_t i = 0; i < n; i++) {
        if (!fallback[i] && (ours[i] || other_variables)) {
            continue;
        }
        auto *c = static_cast<ngx_str_t *>(ngx_array_push(load_certs));
        auto *k = static_cast<ngx_str_t *>(ngx_array_push(load_keys));
        if (c == nullptr || k == nullptr) {
            return NGX_ERROR;
        }
        *c = certs[i];
        *k = keys[i];
    }

    if (other_variables) {
        compact(sscf->certificate_values, ours);
        compact(sscf->certificate_key_values, ours);
    } else {
        SSL_CTX_set_cert_cb(sscf->ssl.ctx, nullptr, nullptr);
        sscf->certificate_values = nullptr;
        sscf->certificate_key_values = nullptr;
    }

    // nginx derived the session id context from the ssl_certificate
    // strings, the same "$acme_certificate" in every such server: merge
    // sets it again (ngx_http_acme_session_context). Stapling cannot
    // apply: acme certificates are swapped in later.
    return ngx_ssl_certificates(cf, &sscf->ssl, load_certs, load_keys, sscf->passwords);
}
