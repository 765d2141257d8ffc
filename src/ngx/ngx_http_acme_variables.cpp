// nginx-acme's $acme_certificate and $acme_certificate_key. A server that
// uses them in ssl_certificate is served from its SSL context, hot-swapped
// like any other, instead of re-parsing PEM on every handshake
// (ngx_http_acme_take_over); elsewhere they give the PEM served now.
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
    return ngx_http_acme_add_fallback_variables(cf);
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
