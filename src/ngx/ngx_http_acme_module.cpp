// The module definition: its directives (handled in the issuer, certificate
// and zone files), main and server configuration, postconfiguration and
// init_process, and the helpers the directive handlers share.
#include <exception>
#include <string>
#include <unordered_map>
#include <vector>

#include "ngx/ngx_http_acme.h"
#include "ngx/ngx_http_acme_api.h"

namespace {

void *ngx_http_acme_create_main_conf(ngx_conf_t *cf);
char *ngx_http_acme_init_main_conf(ngx_conf_t *cf, void *conf);
void *ngx_http_acme_create_srv_conf(ngx_conf_t *cf);
char *ngx_http_acme_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child);
ngx_int_t ngx_http_acme_postconfiguration(ngx_conf_t *cf);
ngx_int_t ngx_http_acme_init_process(ngx_cycle_t *cycle);

ngx_conf_post_t ngx_http_acme_reload_delay_post = {ngx_http_acme_reload_delay_check};

ngx_command_t ngx_http_acme_commands[] = {
    {ngx_string("acme_issuer"), NGX_HTTP_MAIN_CONF | NGX_CONF_BLOCK | NGX_CONF_TAKE1,
     ngx_http_acme_issuer_block, NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("acme_certificate"), NGX_HTTP_SRV_CONF | NGX_CONF_1MORE, ngx_http_acme_certificate,
     NGX_HTTP_SRV_CONF_OFFSET, 0, nullptr},
    {ngx_string("acme_shared_zone"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, ngx_http_acme_shared_zone,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("acme_event_command"), NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE,
     ngx_http_acme_event_command, NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("acme_event_timeout"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, ngx_conf_set_msec_slot,
     NGX_HTTP_MAIN_CONF_OFFSET, offsetof(ngx_http_acme_main_conf_t, event_timeout), nullptr},
    {ngx_string("acme_warn_window"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, ngx_http_acme_warn_window,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("acme_storage"), NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE, ngx_http_acme_storage,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("acme_status"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE1,
     ngx_http_acme_status, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("acme_reload"), NGX_HTTP_MAIN_CONF | NGX_CONF_FLAG, ngx_conf_set_flag_slot,
     NGX_HTTP_MAIN_CONF_OFFSET, offsetof(ngx_http_acme_main_conf_t, reload), nullptr},
    {ngx_string("acme_reload_delay"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, ngx_conf_set_msec_slot,
     NGX_HTTP_MAIN_CONF_OFFSET, offsetof(ngx_http_acme_main_conf_t, reload_delay),
     &ngx_http_acme_reload_delay_post},
    ngx_null_command};

ngx_http_module_t ngx_http_acme_module_ctx = {
    ngx_http_acme_add_variables,      // preconfiguration
    ngx_http_acme_postconfiguration,  // postconfiguration
    ngx_http_acme_create_main_conf,   // create main configuration
    ngx_http_acme_init_main_conf,     // init main configuration
    ngx_http_acme_create_srv_conf,    // create server configuration
    ngx_http_acme_merge_srv_conf,     // merge server configuration
    nullptr,                          // create location configuration
    nullptr                           // merge location configuration
};

}  // namespace

extern "C" {
// One hook per line, as in nginx's own modules.
// clang-format off
ngx_module_t ngx_http_acme_module = {
    NGX_MODULE_V1,
    &ngx_http_acme_module_ctx,         // module context
    ngx_http_acme_commands,            // module directives
    NGX_HTTP_MODULE,                   // module type
    nullptr,                           // init master
    ngx_http_acme_reload_init_module,  // init module
    ngx_http_acme_init_process,        // init process
    nullptr,                           // init thread
    nullptr,                           // exit thread
    nullptr,                           // exit process
    nullptr,                           // exit master
    NGX_MODULE_V1_PADDING};
// clang-format on
}

namespace {

const ngx_str_t default_zone_name = ngx_string("acme_shared");

void *ngx_http_acme_create_main_conf(ngx_conf_t *cf) {
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(
        ngx_pcalloc(cf->pool, sizeof(ngx_http_acme_main_conf_t)));
    if (amcf == nullptr) {
        return nullptr;
    }
    if (ngx_array_init(&amcf->issuers, cf->pool, 2, sizeof(ngx_http_acme_issuer_t *)) != NGX_OK ||
        ngx_array_init(&amcf->certs, cf->pool, 8, sizeof(ngx_http_acme_cert_t *)) != NGX_OK ||
        ngx_array_init(&amcf->served, cf->pool, 8, sizeof(ngx_http_acme_served_t)) != NGX_OK ||
        ngx_array_init(&amcf->resolvers, cf->pool, 1, sizeof(ngx_str_t)) != NGX_OK) {
        return nullptr;
    }
    amcf->zone_size = NGX_CONF_UNSET_SIZE;
    amcf->event_timeout = NGX_CONF_UNSET_MSEC;
    amcf->keep_pem_cert = 1;  // until postconfiguration knows better
    amcf->keep_pem_key = 1;
    amcf->reload = NGX_CONF_UNSET;
    amcf->reload_delay = NGX_CONF_UNSET_MSEC;
    return amcf;
}

// Issuers that name the same state_path (nginx-acme allows it) keep their
// accounts and certificates apart in a directory per issuer inside it. This
// runs once every acme_issuer is known and before servers are merged, which
// is when their stored certificates are read.
char *separate_shared_state_paths(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf) {
    auto **issuers = static_cast<ngx_http_acme_issuer_t **>(amcf->issuers.elts);
    std::unordered_map<std::string, std::vector<ngx_http_acme_issuer_t *>> by_path;
    for (ngx_uint_t i = 0; i < amcf->issuers.nelts; i++) {
        by_path[ngx_http_acme_string(issuers[i]->state_path)].push_back(issuers[i]);
    }
    for (auto &[path, sharing] : by_path) {
        if (sharing.size() < 2) {
            continue;
        }
        for (ngx_http_acme_issuer_t *is : sharing) {
            is->state_path =
                ngx_http_acme_pstrdup(cf->pool, path + "/" + ngx_http_acme_string(is->name));
            if (is->state_path.data == nullptr) {
                return NGX_HTTP_ACME_CONF_ERROR;
            }
        }
    }
    return NGX_CONF_OK;
}

char *ngx_http_acme_init_main_conf(ngx_conf_t *cf, void *conf) {
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(conf);
    try {
        if (separate_shared_state_paths(cf, amcf) != NGX_CONF_OK) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
    } catch (const std::exception &e) {
        return ngx_http_acme_conf_error(cf, 0, "acme: %s", e.what());
    }
    if (amcf->zone_size == NGX_CONF_UNSET_SIZE) {
        amcf->zone_name = default_zone_name;
        amcf->zone_size = ngx_http_acme_default_zone_size(amcf->certs.nelts);
    }
    ngx_conf_init_msec_value(amcf->event_timeout, 30000);
    if (!amcf->warn_window.set()) {
        amcf->warn_window.percent = 10;
    }
    ngx_conf_init_value(amcf->reload, 0);
    ngx_conf_init_msec_value(amcf->reload_delay, 10000);
    return NGX_CONF_OK;
}

void *ngx_http_acme_create_srv_conf(ngx_conf_t *cf) {
    auto *ascf = static_cast<ngx_http_acme_srv_conf_t *>(
        ngx_pcalloc(cf->pool, sizeof(ngx_http_acme_srv_conf_t)));
    if (ascf == nullptr) {
        return nullptr;
    }
    ascf->certs = static_cast<ngx_array_t *>(NGX_CONF_UNSET_PTR);
    return ascf;
}

char *ngx_http_acme_merge_srv_conf(ngx_conf_t *cf, void *, void *child) {
    try {
        char *rv =
            ngx_http_acme_merge_certificates(cf, static_cast<ngx_http_acme_srv_conf_t *>(child));
        if (rv != NGX_CONF_OK) {
            return rv;
        }
        // The ClientHello reaches the context of the listener's default
        // server, whichever server the name belongs to: tls-alpn-01 is
        // answered from all of them, with or without acme_certificate.
        auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(
            ngx_http_conf_get_module_main_conf(cf, ngx_http_acme_module));
        auto *sscf = static_cast<ngx_http_ssl_srv_conf_t *>(
            ngx_http_conf_get_module_srv_conf(cf, ngx_http_ssl_module));
        if (amcf->certs.nelts > 0 && sscf->ssl.ctx != nullptr &&
            ngx_http_acme_tls_alpn_add(cf, amcf, sscf->ssl.ctx) != NGX_OK) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
        return NGX_CONF_OK;
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "acme: %s", e.what());
        return NGX_HTTP_ACME_CONF_ERROR;
    }
}

// ----------------------------------------------------------- postconfiguration

ngx_int_t collect_resolvers(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf) {
    auto *clcf = static_cast<ngx_http_core_loc_conf_t *>(
        ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    if (clcf->resolver == nullptr) {
        return NGX_OK;
    }
    auto *rcs = static_cast<ngx_resolver_connection_t *>(clcf->resolver->connections.elts);
    for (ngx_uint_t i = 0; i < clcf->resolver->connections.nelts; i++) {
        if (rcs[i].sockaddr->sa_family != AF_INET) {
            continue;  // the engine's resolver speaks IPv4 to the server
        }
        u_char text[NGX_SOCKADDR_STRLEN];
        size_t len = ngx_sock_ntop(rcs[i].sockaddr, rcs[i].socklen, text, sizeof(text), 1);
        auto *slot = static_cast<ngx_str_t *>(ngx_array_push(&amcf->resolvers));
        if (slot == nullptr) {
            return NGX_ERROR;
        }
        *slot = ngx_http_acme_pstrdup(cf->pool, std::string(reinterpret_cast<char *>(text), len));
    }
    return NGX_OK;
}

ngx_int_t postconfiguration(ngx_conf_t *cf) {
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_acme_module));

    // stream{}: a stream block before this one made a configuration of
    // its own, with its own engine and zone; certificates here would need
    // a second of each.
    ngx_http_acme_main_conf_t *stream_owned = ngx_http_acme_stream_owned_conf(cf->cycle);
    if (amcf->certs.nelts > 0 && stream_owned != nullptr && stream_owned->certs.nelts > 0) {
        auto *first = *static_cast<ngx_http_acme_cert_t **>(amcf->certs.elts);
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "acme_certificate in %s:%ui: a stream block with acme_certificate comes "
                      "before this http block: move the stream block after the http block, "
                      "which then holds acme_issuer for both",
                      first->file, first->line);
        return NGX_ERROR;
    }
    if (amcf->certs.nelts == 0 && amcf->issuers.nelts == 0) {
        return NGX_OK;
    }
    // Issuers without certificates here may serve a stream block that
    // follows: its http-01 challenges are answered by these servers.
    ngx_http_acme_drop_unused_pem(cf, amcf);
    if (collect_resolvers(cf, amcf) != NGX_OK || ngx_http_acme_http01_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }
    if (amcf->certs.nelts == 0) {
        return NGX_OK;
    }
    ngx_http_acme_warn_shared_certificates(cf, amcf);
    return ngx_http_acme_activate(cf, amcf);
}

ngx_int_t ngx_http_acme_postconfiguration(ngx_conf_t *cf) {
    try {
        return postconfiguration(cf);
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "acme: %s", e.what());
        return NGX_ERROR;
    }
}

ngx_int_t ngx_http_acme_init_process(ngx_cycle_t *cycle) {
    ngx_http_acme_reload_init_process();
    try {
        if (ngx_process == NGX_PROCESS_SINGLE && ngx_http_acme_init_single(cycle) != NGX_OK) {
            return NGX_ERROR;
        }
        if (ngx_process == NGX_PROCESS_WORKER || ngx_process == NGX_PROCESS_SINGLE) {
            return ngx_http_acme_init_swap(cycle);
        }
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0, "acme: %s", e.what());
        return NGX_ERROR;
    }
    return NGX_OK;
}

}  // namespace

// For a stream block without an http block before it (ngx_http_acme_api.cpp).
void *ngx_http_acme_new_main_conf(ngx_conf_t *cf) { return ngx_http_acme_create_main_conf(cf); }

char *ngx_http_acme_finish_main_conf(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf) {
    return ngx_http_acme_init_main_conf(cf, amcf);
}

char *ngx_http_acme_conf_error(ngx_conf_t *cf, ngx_err_t err, const char *fmt, ...) {
    // ngx_conf_log_error has no va_list form: format first, as it does.
    u_char text[NGX_MAX_CONF_ERRSTR];
    va_list args;
    va_start(args, fmt);
    u_char *last = ngx_vslprintf(text, text + sizeof(text), fmt, args);
    va_end(args);
    ngx_conf_log_error(NGX_LOG_EMERG, cf, err, "%*s", static_cast<size_t>(last - text), text);
    return NGX_HTTP_ACME_CONF_ERROR;
}

bool ngx_http_acme_parse_renew_before(ngx_str_t value, acme::RenewBefore *out) {
    if (value.len > 1 && value.data[value.len - 1] == '%') {
        ngx_int_t n = ngx_atoi(value.data, value.len - 1);
        if (n < 1 || n > 99) {
            return false;
        }
        out->percent = static_cast<int>(n);
        return true;
    }
    ngx_int_t t = ngx_parse_time(&value, 1);
    if (t == NGX_ERROR || t <= 0) {
        return false;
    }
    out->seconds = static_cast<std::time_t>(t);
    return true;
}
