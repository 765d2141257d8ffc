// The table ngx_stream_acme_module.so calls (ngx_http_acme_api.h), and the
// configuration a stream block makes when no http block came before it:
// the http module's processes (workers, helper) find it through
// ngx_http_acme_cycle_main_conf, so that one engine, zone and hot swap
// serve both blocks.
#include "ngx/ngx_http_acme_api.h"

#include <exception>

#include "ngx/ngx_http_acme.h"

namespace {

// Configurations made for stream blocks, one per cycle at most (nginx
// allows one stream block), in the cycle's pool. The master holds two
// cycles during a reload; each entry leaves with its cycle's pool.
struct owned_conf_t {
    ngx_cycle_t *cycle;
    ngx_http_acme_main_conf_t *amcf;
    owned_conf_t *next;
};

owned_conf_t *owned_confs;

void forget_owned(void *data) {
    for (owned_conf_t **p = &owned_confs; *p != nullptr; p = &(*p)->next) {
        if (*p == data) {
            *p = (*p)->next;
            return;
        }
    }
}

ngx_http_acme_main_conf_t *http_main_conf(ngx_cycle_t *cycle) {
    return static_cast<ngx_http_acme_main_conf_t *>(
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_acme_module));
}

ngx_http_acme_main_conf_t *stream_main_conf(ngx_conf_t *cf, bool *owned) {
    if (ngx_http_acme_main_conf_t *amcf = http_main_conf(cf->cycle)) {
        *owned = false;
        return amcf;
    }
    *owned = true;
    if (ngx_http_acme_main_conf_t *amcf = ngx_http_acme_stream_owned_conf(cf->cycle)) {
        return amcf;
    }
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(ngx_http_acme_new_main_conf(cf));
    auto *entry = static_cast<owned_conf_t *>(ngx_palloc(cf->pool, sizeof(owned_conf_t)));
    ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (amcf == nullptr || entry == nullptr || cln == nullptr) {
        return nullptr;
    }
    // No http block, so no $acme_certificate: no process keeps PEM copies.
    amcf->keep_pem_cert = 0;
    amcf->keep_pem_key = 0;
    *entry = {cf->cycle, amcf, owned_confs};
    owned_confs = entry;
    cln->handler = forget_owned;
    cln->data = entry;
    return amcf;
}

char *stream_init_main_conf(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf) {
    return ngx_http_acme_finish_main_conf(cf, amcf);
}

ngx_int_t stream_serve_certificates(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf,
                                    ngx_array_t *certs, SSL_CTX *ctx) {
    try {
        return ngx_http_acme_serve_certificates(cf, amcf, certs, ctx);
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "acme: %s", e.what());
        return NGX_ERROR;
    }
}

ngx_int_t stream_take_over(ngx_conf_t *cf, ngx_ssl_t *ssl, ngx_array_t *certificates,
                           ngx_array_t *keys, ngx_array_t **values, ngx_array_t **key_values,
                           ngx_array_t *passwords) {
    try {
        return ngx_http_acme_take_over(cf, ssl, certificates, keys, values, key_values, passwords);
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "acme: %s", e.what());
        return NGX_ERROR;
    }
}

ngx_int_t stream_session_id(ngx_conf_t *cf, const char *protocol, ngx_array_t *certs,
                            ngx_str_t *id) {
    try {
        return ngx_http_acme_session_id(cf, protocol, certs, id);
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "acme: %s", e.what());
        return NGX_ERROR;
    }
}

ngx_int_t stream_activate(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf) {
    try {
        // The http block warned about its own certificates when it had any.
        if (amcf->zone == nullptr) {
            ngx_http_acme_warn_shared_certificates(cf, amcf);
        }
        return ngx_http_acme_activate(cf, amcf);
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "acme: %s", e.what());
        return NGX_ERROR;
    }
}

}  // namespace

extern "C" {
const ngx_http_acme_api_t ngx_http_acme_api = {
    NGX_HTTP_ACME_VERSION,
    sizeof(ngx_http_acme_api_t),
    stream_main_conf,
    stream_init_main_conf,
    ngx_http_acme_issuer_block,
    ngx_http_acme_shared_zone,
    ngx_http_acme_event_command,
    ngx_http_acme_warn_window,
    ngx_http_acme_add_certificate,
    stream_take_over,
    ngx_http_acme_identifiers_from_names,
    stream_serve_certificates,
    stream_session_id,
    ngx_http_acme_tls_alpn_add,
    stream_activate,
};
}

ngx_http_acme_main_conf_t *ngx_http_acme_stream_owned_conf(ngx_cycle_t *cycle) {
    for (owned_conf_t *p = owned_confs; p != nullptr; p = p->next) {
        if (p->cycle == cycle) {
            return p->amcf;
        }
    }
    return nullptr;
}

ngx_http_acme_main_conf_t *ngx_http_acme_cycle_main_conf(ngx_cycle_t *cycle) {
    // Every stream block gets one when the module is loaded and no http
    // block came before it; one without certificates leaves the http
    // block's (after the stream block) in charge.
    ngx_http_acme_main_conf_t *owned = ngx_http_acme_stream_owned_conf(cycle);
    if (owned != nullptr && owned->certs.nelts > 0) {
        return owned;
    }
    return http_main_conf(cycle);
}

ngx_int_t ngx_http_acme_activate(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf) {
    // Done for the http block's certificates already: the status board is
    // sized again for the new ones, and only the state paths of issuers
    // that just became used are added (ngx_add_path keeps one entry per
    // path).
    if (amcf->zone != nullptr) {
        ngx_http_acme_resize_status_zone(amcf);
        return ngx_http_acme_add_helper(cf, amcf);
    }
    if (ngx_http_acme_add_zone(cf, amcf) != NGX_OK ||
        ngx_http_acme_add_status_zone(cf, amcf) != NGX_OK ||
        ngx_http_acme_add_helper(cf, amcf) != NGX_OK) {
        return NGX_ERROR;
    }
    return NGX_OK;
}
