// ngx_stream_acme_module: acme_certificate in stream { server { ... } }.
// A module of its own (ngx_stream_acme_module.so), so that http-only users
// need not load nginx's stream module; it is thin glue over the http
// module's table (ngx_http_acme_api.h): the certificates join the http
// block's ACME configuration (or, without an http block before it, one the
// stream block holds), and so one engine, store, shared zone and hot swap
// serve both. tls-alpn-01 is answered on the stream TLS listeners.
extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
// Included whether nginx's configure enabled stream or not: the build
// against nginx-dev has no stream of its own.
#include <ngx_stream_ssl_module.h>
#include <nginx.h>
}

#include <exception>
#include <vector>

#include "ngx/ngx_http_acme_api.h"

#if nginx_version >= 1025005
using ngx_stream_acme_ssl_conf_t = ngx_stream_ssl_srv_conf_t;
#else
using ngx_stream_acme_ssl_conf_t = ngx_stream_ssl_conf_t;
#endif

// Weak: with the modules loaded in the wrong order these are null, and
// create_main_conf says what to change instead of dlopen() failing on an
// undefined symbol.
extern "C" {
extern ngx_module_t ngx_stream_core_module __attribute__((weak));
extern ngx_module_t ngx_stream_ssl_module __attribute__((weak));
extern const ngx_http_acme_api_t ngx_http_acme_api __attribute__((weak));
extern ngx_module_t ngx_stream_acme_module;
ngx_stream_variable_t *ngx_stream_add_variable(ngx_conf_t *cf, ngx_str_t *name, ngx_uint_t flags)
    __attribute__((weak));
}

namespace {

struct ngx_stream_acme_main_conf_t {
    const ngx_http_acme_api_t *api;
    ngx_http_acme_main_conf_t *amcf;  // the http block's, or owned
    bool owned;                       // no http block before: main-level directives here
    ngx_uint_t certs;                 // acme_certificate directives in this block
};

struct ngx_stream_acme_srv_conf_t {
    ngx_array_t *certs;  // ngx_http_acme_cert_t *
};

ngx_int_t ngx_stream_acme_preconfiguration(ngx_conf_t *cf);
void *ngx_stream_acme_create_main_conf(ngx_conf_t *cf);
char *ngx_stream_acme_init_main_conf(ngx_conf_t *cf, void *conf);
void *ngx_stream_acme_create_srv_conf(ngx_conf_t *cf);
char *ngx_stream_acme_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child);
ngx_int_t ngx_stream_acme_postconfiguration(ngx_conf_t *cf);
char *ngx_stream_acme_certificate(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_stream_acme_main_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

using main_handler_t = char *(*)(ngx_conf_t *, ngx_command_t *, void *);

// The main-level directives are the http module's handlers, run on the
// ACME configuration; which one is in post (an offset into the table).
#define NGX_STREAM_ACME_API(field) \
    reinterpret_cast<void *>(offsetof(ngx_http_acme_api_t, field))

ngx_command_t ngx_stream_acme_commands[] = {
    {ngx_string("acme_certificate"), NGX_STREAM_SRV_CONF | NGX_CONF_1MORE,
     ngx_stream_acme_certificate, NGX_STREAM_SRV_CONF_OFFSET, 0, nullptr},
    {ngx_string("acme_issuer"), NGX_STREAM_MAIN_CONF | NGX_CONF_BLOCK | NGX_CONF_TAKE1,
     ngx_stream_acme_main_directive, NGX_STREAM_MAIN_CONF_OFFSET, 0,
     NGX_STREAM_ACME_API(issuer_block)},
    {ngx_string("acme_shared_zone"), NGX_STREAM_MAIN_CONF | NGX_CONF_TAKE1,
     ngx_stream_acme_main_directive, NGX_STREAM_MAIN_CONF_OFFSET, 0,
     NGX_STREAM_ACME_API(shared_zone)},
    {ngx_string("acme_event_command"), NGX_STREAM_MAIN_CONF | NGX_CONF_1MORE,
     ngx_stream_acme_main_directive, NGX_STREAM_MAIN_CONF_OFFSET, 0,
     NGX_STREAM_ACME_API(event_command)},
    {ngx_string("acme_event_timeout"), NGX_STREAM_MAIN_CONF | NGX_CONF_TAKE1,
     ngx_stream_acme_main_directive, NGX_STREAM_MAIN_CONF_OFFSET,
     offsetof(ngx_http_acme_main_conf_t, event_timeout), nullptr},
    {ngx_string("acme_warn_window"), NGX_STREAM_MAIN_CONF | NGX_CONF_TAKE1,
     ngx_stream_acme_main_directive, NGX_STREAM_MAIN_CONF_OFFSET, 0,
     NGX_STREAM_ACME_API(warn_window)},
    ngx_null_command};

ngx_stream_module_t ngx_stream_acme_module_ctx = {
    ngx_stream_acme_preconfiguration,   // preconfiguration
    ngx_stream_acme_postconfiguration,  // postconfiguration
    ngx_stream_acme_create_main_conf,   // create main configuration
    ngx_stream_acme_init_main_conf,     // init main configuration
    ngx_stream_acme_create_srv_conf,    // create server configuration
    ngx_stream_acme_merge_srv_conf,     // merge server configuration
};

}  // namespace

extern "C" {
// clang-format off
ngx_module_t ngx_stream_acme_module = {
    NGX_MODULE_V1,
    &ngx_stream_acme_module_ctx,  // module context
    ngx_stream_acme_commands,     // module directives
    NGX_STREAM_MODULE,            // module type
    nullptr,                      // init master
    nullptr,                      // init module
    nullptr,                      // init process: the http module swaps for both
    nullptr,                      // init thread
    nullptr,                      // exit thread
    nullptr,                      // exit process
    nullptr,                      // exit master
    NGX_MODULE_V1_PADDING};
// clang-format on
}

namespace {

ngx_stream_acme_main_conf_t *main_conf(ngx_conf_t *cf) {
    return static_cast<ngx_stream_acme_main_conf_t *>(
        ngx_stream_conf_get_module_main_conf(cf, ngx_stream_acme_module));
}

// The table of the http module loaded before this one, from the same build.
const ngx_http_acme_api_t *find_api(ngx_conf_t *cf) {
    if (&ngx_stream_core_module == nullptr || &ngx_stream_ssl_module == nullptr) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ngx_stream_acme_module is loaded before nginx's stream module: "
                           "\"load_module modules/ngx_stream_module.so;\" must come before "
                           "\"load_module modules/ngx_stream_acme_module.so;\"");
        return nullptr;
    }
    if (&ngx_http_acme_api == nullptr) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ngx_stream_acme_module needs ngx_http_acme_module, which is not "
                           "loaded before it: \"load_module modules/ngx_http_acme_module.so;\" "
                           "must come before \"load_module modules/ngx_stream_acme_module.so;\"");
        return nullptr;
    }
    const ngx_http_acme_api_t *api = &ngx_http_acme_api;
    if (api->size != sizeof(ngx_http_acme_api_t) ||
        ngx_strcmp(api->version, NGX_HTTP_ACME_VERSION) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ngx_stream_acme_module " NGX_HTTP_ACME_VERSION
                           " does not match the loaded ngx_http_acme_module %s: install both "
                           "from the same build",
                           api->version);
        return nullptr;
    }
    return api;
}

void *ngx_stream_acme_create_main_conf(ngx_conf_t *cf) {
    const ngx_http_acme_api_t *api = find_api(cf);
    if (api == nullptr) {
        return nullptr;
    }
    auto *smcf = static_cast<ngx_stream_acme_main_conf_t *>(
        ngx_pcalloc(cf->pool, sizeof(ngx_stream_acme_main_conf_t)));
    if (smcf == nullptr) {
        return nullptr;
    }
    smcf->api = api;
    smcf->amcf = api->main_conf(cf, &smcf->owned);
    return smcf->amcf != nullptr ? smcf : nullptr;
}

char *ngx_stream_acme_init_main_conf(ngx_conf_t *cf, void *conf) {
    auto *smcf = static_cast<ngx_stream_acme_main_conf_t *>(conf);
    // The http block's configuration was completed with that block.
    return smcf->owned ? smcf->api->init_main_conf(cf, smcf->amcf) : NGX_CONF_OK;
}

char *ngx_stream_acme_main_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    auto *smcf = static_cast<ngx_stream_acme_main_conf_t *>(conf);
    if (!smcf->owned) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" belongs in the http block: the stream block uses the ACME "
                           "settings of the http block before it",
                           &cmd->name);
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    if (cmd->post == nullptr) {  // acme_event_timeout
        return ngx_conf_set_msec_slot(cf, cmd, smcf->amcf);
    }
    auto offset = reinterpret_cast<size_t>(cmd->post);
    auto handler = *reinterpret_cast<const main_handler_t *>(
        reinterpret_cast<const char *>(smcf->api) + offset);
    return handler(cf, cmd, smcf->amcf);
}

void *ngx_stream_acme_create_srv_conf(ngx_conf_t *cf) {
    auto *ascf = static_cast<ngx_stream_acme_srv_conf_t *>(
        ngx_pcalloc(cf->pool, sizeof(ngx_stream_acme_srv_conf_t)));
    if (ascf == nullptr) {
        return nullptr;
    }
    ascf->certs = static_cast<ngx_array_t *>(NGX_CONF_UNSET_PTR);
    return ascf;
}

// The fallback's variables, which acme_certificate puts in ssl_certificate
// as in http (ngx_http_acme_fallback.cpp): never evaluated, the merge takes
// them out again.
ngx_int_t fallback_variable(ngx_stream_session_t *, ngx_stream_variable_value_t *v, uintptr_t) {
    v->not_found = 1;
    return NGX_OK;
}

ngx_int_t ngx_stream_acme_preconfiguration(ngx_conf_t *cf) {
    if (ngx_stream_add_variable == nullptr) {
        return NGX_OK;  // nginx's stream module is not loaded: create_main_conf says so
    }
    static ngx_str_t names[] = {ngx_string(NGX_HTTP_ACME_FALLBACK_CERTIFICATE),
                                ngx_string(NGX_HTTP_ACME_FALLBACK_KEY)};
    for (ngx_str_t &name : names) {
        ngx_stream_variable_t *var =
            ngx_stream_add_variable(cf, &name, NGX_STREAM_VAR_NOCACHEABLE);
        if (var == nullptr) {
            return NGX_ERROR;
        }
        var->get_handler = fallback_variable;
    }
    return NGX_OK;
}

char *ngx_stream_acme_certificate(ngx_conf_t *cf, ngx_command_t *, void *conf) {
    ngx_stream_acme_main_conf_t *smcf = main_conf(cf);
    auto *ascf = static_cast<ngx_stream_acme_srv_conf_t *>(conf);
    auto *sscf = static_cast<ngx_stream_acme_ssl_conf_t *>(
        ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_ssl_module));
    smcf->certs++;
    // nginx's stream ssl module makes the server's SSL context only with
    // certificates: the fallback's variable goes in now, the stored
    // certificate (or the fallback) at merge.
    return smcf->api->certificate(cf, smcf->amcf, &ascf->certs, &sscf->certificates,
                                  &sscf->certificate_keys);
}

// Identifiers not given: from the stream server's server_name, which
// nginx has from 1.25.5; before, there is none to take them from.
ngx_int_t identifiers_from_server_names(ngx_conf_t *cf, ngx_stream_acme_main_conf_t *smcf,
                                        ngx_array_t *certs) {
    auto **list = static_cast<ngx_http_acme_cert_t **>(certs->elts);
    for (ngx_uint_t i = 0; i < certs->nelts; i++) {
        if (list[i]->identifiers.nelts != 0) {
            continue;
        }
#if nginx_version >= 1025005
        auto *cscf = static_cast<ngx_stream_core_srv_conf_t *>(
            ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_core_module));
        auto *names = static_cast<ngx_stream_server_name_t *>(cscf->server_names.elts);
        std::vector<ngx_http_acme_server_name_t> found;
        for (ngx_uint_t k = 0; k < cscf->server_names.nelts; k++) {
#if (NGX_PCRE)
            found.push_back({names[k].name, names[k].regex != nullptr});
#else
            found.push_back({names[k].name, false});
#endif
        }
        if (smcf->api->identifiers_from_names(cf, smcf->amcf, list[i], found.data(), found.size()) !=
            NGX_OK) {
            return NGX_ERROR;
        }
#else
        (void)smcf;
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "acme_certificate in %s:%ui has no identifiers: in a stream server "
                      "they are given as arguments (acme_certificate ISSUER NAME ...), "
                      "nginx " NGINX_VERSION " has no server_name in stream",
                      list[i]->file, list[i]->line);
        return NGX_ERROR;
#endif
    }
    return NGX_OK;
}

char *merge_srv_conf(ngx_conf_t *cf, ngx_stream_acme_srv_conf_t *ascf) {
    ngx_stream_acme_main_conf_t *smcf = main_conf(cf);
    auto *sscf = static_cast<ngx_stream_acme_ssl_conf_t *>(
        ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_ssl_module));
    SSL_CTX *ctx = sscf->ssl.ctx;

    if (ascf->certs == NGX_CONF_UNSET_PTR) {
        ascf->certs = nullptr;
    }
    if (ascf->certs != nullptr) {
        if (ctx != nullptr && sscf->certificate_values != nullptr &&
            smcf->api->take_over(cf, &sscf->ssl, sscf->certificates, sscf->certificate_keys,
                                 &sscf->certificate_values, &sscf->certificate_key_values,
                                 sscf->passwords) != NGX_OK) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
        if (identifiers_from_server_names(cf, smcf, ascf->certs) != NGX_OK ||
            smcf->api->serve_certificates(cf, smcf->amcf, ascf->certs, ctx) != NGX_OK) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
        // As in http: the session id context nginx set is made of the
        // fallback's variable names, the same in every acme server.
        ngx_str_t id;
        if (ctx != nullptr &&
            (smcf->api->session_id(cf, "STREAM", ascf->certs, &id) != NGX_OK ||
             ngx_ssl_session_cache(&sscf->ssl, &id, sscf->certificates,
                                   sscf->builtin_session_cache, sscf->shm_zone,
                                   sscf->session_timeout) != NGX_OK)) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
    }
    // Every TLS listener answers tls-alpn-01, whichever server is its
    // default, with or without acme_certificate.
    if (smcf->amcf->certs.nelts > 0 && ctx != nullptr &&
        smcf->api->tls_alpn_add(cf, smcf->amcf, ctx) != NGX_OK) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

char *ngx_stream_acme_merge_srv_conf(ngx_conf_t *cf, void *, void *child) {
    try {
        return merge_srv_conf(cf, static_cast<ngx_stream_acme_srv_conf_t *>(child));
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "acme: %s", e.what());
        return NGX_HTTP_ACME_CONF_ERROR;
    }
}

// A tls-alpn-01 handshake is the whole conversation (RFC 8737): the
// session ends after it instead of going on to proxy_pass.
ngx_int_t ngx_stream_acme_preread(ngx_stream_session_t *s) {
    ngx_connection_t *c = s->connection;
    if (c->ssl == nullptr) {
        return NGX_DECLINED;
    }
    const unsigned char *selected;
    unsigned int len;
    SSL_get0_alpn_selected(c->ssl->connection, &selected, &len);
    static const char protocol[] = "acme-tls/1";
    if (len != sizeof(protocol) - 1 || ngx_memcmp(selected, protocol, len) != 0) {
        return NGX_DECLINED;
    }
    ngx_log_error(NGX_LOG_INFO, c->log, 0, "acme: tls-alpn-01 handshake done, closing");
    return NGX_STREAM_OK;
}

ngx_int_t ngx_stream_acme_postconfiguration(ngx_conf_t *cf) {
    ngx_stream_acme_main_conf_t *smcf = main_conf(cf);
    if (smcf->certs == 0) {
        return NGX_OK;
    }
    auto *cmcf = static_cast<ngx_stream_core_main_conf_t *>(
        ngx_stream_conf_get_module_main_conf(cf, ngx_stream_core_module));
    auto *h = static_cast<ngx_stream_handler_pt *>(
        ngx_array_push(&cmcf->phases[NGX_STREAM_PREREAD_PHASE].handlers));
    if (h == nullptr) {
        return NGX_ERROR;
    }
    *h = ngx_stream_acme_preread;
    return smcf->api->activate(cf, smcf->amcf);
}

}  // namespace
