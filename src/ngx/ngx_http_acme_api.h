// What ngx_http_acme_module.so offers ngx_stream_acme_module.so: one table
// of functions, the only symbol the http module exports besides nginx's.
// The stream module finds it through a weak reference, so that a wrong
// load order is a message of ours rather than dlopen's "undefined symbol",
// and both modules work on one ACME configuration, engine, store and zone.
#pragma once

#include "ngx/ngx_http_acme.h"

// The variables acme_certificate puts in a server's ssl_certificate and
// ssl_certificate_key (ngx_http_acme_fallback.cpp); the stream module
// defines them in stream too.
#define NGX_HTTP_ACME_FALLBACK_CERTIFICATE "acme_fallback_certificate"
#define NGX_HTTP_ACME_FALLBACK_KEY "acme_fallback_certificate_key"

struct ngx_http_acme_api_t {
    // Both modules come from one build: the stream module refuses a table
    // from another version or of another size.
    const char *version;
    size_t size;

    // The ACME configuration a stream block joins: the http block's when
    // one was parsed before it, else one made now for the stream block,
    // which then also holds acme_issuer and the other main-level
    // directives (*owned set).
    ngx_http_acme_main_conf_t *(*main_conf)(ngx_conf_t *cf, bool *owned);
    // init_main_conf of an owned configuration: defaults, shared state paths.
    char *(*init_main_conf)(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf);

    // Main-level directives, with the configuration as conf.
    char *(*issuer_block)(ngx_conf_t *cf, ngx_command_t *cmd, void *amcf);
    char *(*shared_zone)(ngx_conf_t *cf, ngx_command_t *cmd, void *amcf);
    char *(*event_command)(ngx_conf_t *cf, ngx_command_t *cmd, void *amcf);
    char *(*warn_window)(ngx_conf_t *cf, ngx_command_t *cmd, void *amcf);

    // acme_certificate: adds to *certs (ngx_http_acme_cert_t *, made when
    // NGX_CONF_UNSET_PTR) and pushes the fallback into the server's
    // ssl_certificate / ssl_certificate_key arrays.
    char *(*certificate)(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf, ngx_array_t **certs,
                         ngx_array_t **certificates, ngx_array_t **certificate_keys);
    // At merge, right after nginx's stream ssl module: the certificate
    // callback nginx set for the fallback's variable goes, the static
    // certificates are loaded (ngx_http_acme_take_over).
    ngx_int_t (*take_over)(ngx_conf_t *cf, ngx_ssl_t *ssl, ngx_array_t *certificates,
                           ngx_array_t *keys, ngx_array_t **values, ngx_array_t **key_values,
                           ngx_array_t *passwords);
    // At merge, for acme_certificate without identifiers (nginx 1.25.5+).
    ngx_int_t (*identifiers_from_names)(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf,
                                        ngx_http_acme_cert_t *cert,
                                        const ngx_http_acme_server_name_t *names, ngx_uint_t n);
    // At merge, once the server's SSL context exists: issuer, store names,
    // sharing with other servers, and the stored certificate installed.
    ngx_int_t (*serve_certificates)(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf,
                                    ngx_array_t *certs, SSL_CTX *ctx);
    // The session id context for a server's certificates ("STREAM acme ...").
    ngx_int_t (*session_id)(ngx_conf_t *cf, const char *protocol, ngx_array_t *certs,
                            ngx_str_t *id);
    // tls-alpn-01 on a server's SSL context.
    ngx_int_t (*tls_alpn_add)(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf, SSL_CTX *ctx);
    // Once per configuration: the shared zones and the helper (idempotent).
    ngx_int_t (*activate)(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf);
};

extern "C" const ngx_http_acme_api_t ngx_http_acme_api;

// ngx_http_acme_api.cpp, for the http module's own files.
// The configuration the process serves: the http block's, or the one a
// stream block made when there was no http block before it (if it has
// certificates).
ngx_http_acme_main_conf_t *ngx_http_acme_cycle_main_conf(ngx_cycle_t *cycle);
// A configuration made for a stream block of this cycle, if any.
ngx_http_acme_main_conf_t *ngx_http_acme_stream_owned_conf(ngx_cycle_t *cycle);
// The shared zones and the helper, once per configuration.
ngx_int_t ngx_http_acme_activate(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf);

// ngx_http_acme_module.cpp: the http module's create and init_main_conf.
void *ngx_http_acme_new_main_conf(ngx_conf_t *cf);
char *ngx_http_acme_finish_main_conf(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf);
