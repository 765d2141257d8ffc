// Shared declarations of the nginx glue: the nginx headers (C linkage), the
// module's configuration structures and the functions the glue files share.
#pragma once

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include <string>
#include <unordered_map>
#include <vector>

#include "acme/crypto.h"
#include "acme/engine_config.h"
#include "acme/log.h"
#include "acme/redis_url.h"
#include "acme/schedule.h"
#include "acme/shared_state.h"
#include "acme/status_board.h"

#define NGX_HTTP_ACME_VERSION "0.1.0"

#ifndef NGX_HTTP_ACME_STATE_PREFIX
#define NGX_HTTP_ACME_STATE_PREFIX "/var/lib/nginx/acme"
#endif

#ifndef NGX_HTTP_ACME_RUN_PREFIX
#define NGX_HTTP_ACME_RUN_PREFIX "/run/nginx-acme"  // for `state_path off`
#endif

#define NGX_HTTP_ACME_KEY_TYPES 6  // acme::KeyType values

// NGX_CONF_ERROR is (void *) -1, which C++ turns into a char * only by a cast.
#define NGX_HTTP_ACME_CONF_ERROR static_cast<char *>(NGX_CONF_ERROR)

extern "C" ngx_module_t ngx_http_acme_module;

struct ngx_http_acme_tls_alpn_t;  // ngx_http_acme_tls_alpn.cpp
struct ngx_http_acme_dns_t;       // ngx_http_acme_dns.cpp

// One acme_issuer block.
struct ngx_http_acme_issuer_t {
    ngx_str_t name;
    ngx_str_t uri;
    ngx_str_t uri_name;    // a named CA (letsencrypt, ...) or empty
    bool needs_eab;        // the named CA requires external_account_key
    ngx_array_t contacts;  // ngx_str_t, with a scheme
    ngx_flag_t accept_tos;
    ngx_str_t account_key;              // "ecdsa:256"-style spec or an absolute file name
    ngx_array_t challenges;             // ngx_str_t, canonical names ("http-01")
    ngx_str_t state_path;               // absolute, NUL-terminated
    ngx_str_t ssl_trusted_certificate;  // absolute or empty
    ngx_flag_t ssl_verify;
    ngx_str_t eab_kid;      // external_account_key; empty: none
    ngx_str_t eab_mac_key;  // decoded raw bytes: never logged
    ngx_str_t eab_alg;      // "HS256", "HS384" or "HS512"
    ngx_str_t profile;
    ngx_flag_t profile_required;
    ngx_str_t preferred_chain;
    ngx_flag_t common_name_in_csr;
    ngx_int_t max_concurrent_orders;  // jobs at once for this issuer
    ngx_int_t background_rate;        // ARI checks and renewals per second
    acme::RenewBefore renew_before;   // renew_before_expiry; unset: default rule
    ngx_array_t *event_command;       // ngx_str_t: path and arguments; null: the http block's
    ngx_http_acme_dns_t *dns;         // the dns_* directives (ngx_http_acme_dns.cpp)
    ngx_uint_t used;                  // referenced by some acme_certificate
    u_char *file;
    ngx_uint_t line;
};

// One acme_certificate directive.
struct ngx_http_acme_cert_t {
    ngx_str_t issuer_name;
    ngx_http_acme_issuer_t *issuer;  // resolved at merge
    ngx_array_t identifiers;  // ngx_str_t, normalised; filled from server_name when not given
    ngx_uint_t explicit_identifiers;
    acme::KeyType key_type;
    ngx_str_t profile;               // profile=; empty: the issuer's
    acme::RenewBefore renew_before;  // renew=; unset: the issuer's
    ngx_str_t basename;              // store file base name, set at merge
    // Servers with the same names, key type and issuer share one certificate,
    // ordered with the settings of the first of them: that first
    // acme_certificate (this one when none came before), set at merge.
    ngx_http_acme_cert_t *first;
    ngx_uint_t served;  // 1 + index in amcf->served once served, else 0
    // On a first one: the served of every server that shares it (the entry
    // made when the first of them was served), else 0.
    ngx_uint_t shared_served;
    // On a first one: a server that serves it has ssl_stapling (and
    // ssl_stapling_verify) on, so the engine keeps its OCSP response.
    ngx_flag_t stapling;
    ngx_flag_t stapling_verify;
    u_char *file;
    ngx_uint_t line;
};

// A stored certificate as served by this process: every SSL_CTX using it,
// and what was last installed, for the hot swap.
struct ngx_http_acme_served_t {
    ngx_str_t crt_path;  // NUL-terminated
    ngx_str_t key_path;
    ngx_str_t basename;
    ngx_array_t ctxs;     // SSL_CTX *
    uint64_t generation;  // shared-zone generation last seen
    time_t mtime;         // of crt_path when installed (0: fallback in use)
    ino_t inode;
    ngx_str_t pem_cert;  // "data:" + what is installed, for $acme_certificate;
    ngx_str_t pem_key;   // empty while the fallback is in use (malloc'd)
};

// The first acme_certificate of each issuer "/" basename, while merging.
using ngx_http_acme_cert_index_t = std::unordered_map<std::string, ngx_http_acme_cert_t *>;

struct ngx_http_acme_main_conf_t {
    ngx_array_t issuers;                     // ngx_http_acme_issuer_t *
    ngx_array_t certs;                       // ngx_http_acme_cert_t *
    ngx_http_acme_cert_index_t *cert_index;  // made by the first merge, freed with the pool
    ngx_array_t served;                      // ngx_http_acme_served_t
    ngx_shm_zone_t *zone;
    ngx_shm_zone_t *status_zone;  // <zone name>_status, sized for the configuration
    ngx_str_t zone_name;
    size_t zone_size;
    u_char *zone_file;  // where acme_shared_zone is, for the size check
    ngx_uint_t zone_line;
    ngx_array_t resolvers;  // ngx_str_t "ip:port" from the http block's resolver
    // The fallback of each key type (ngx_http_acme_fallback.cpp), made on
    // demand: "data:" PEM for $acme_certificate, and parsed for the contexts.
    ngx_str_t fallback_cert[NGX_HTTP_ACME_KEY_TYPES];
    ngx_str_t fallback_key[NGX_HTTP_ACME_KEY_TYPES];
    X509 *fallback_x509[NGX_HTTP_ACME_KEY_TYPES];
    EVP_PKEY *fallback_pkey[NGX_HTTP_ACME_KEY_TYPES];
    ngx_http_acme_tls_alpn_t *tls_alpn;  // made with the first TLS server
    // Whether $acme_certificate / $acme_certificate_key are used anywhere:
    // only then does each process keep a PEM copy of what it serves.
    ngx_flag_t keep_pem_cert;
    ngx_flag_t keep_pem_key;
    ngx_array_t *event_command;  // acme_event_command: ngx_str_t path and arguments, or null
    ngx_msec_t event_timeout;
    acme::RenewBefore warn_window;  // acme_warn_window; unset: 10 %
    ngx_flag_t reload;              // acme_reload
    ngx_msec_t reload_delay;        // acme_reload_delay
    // acme_storage (ngx_http_acme_storage.cpp): the cluster's Redis; null: none
    acme::RedisTarget *storage;
};

struct ngx_http_acme_srv_conf_t {
    ngx_array_t *certs;  // ngx_http_acme_cert_t *
};

// ngx_http_acme_module.cpp
// Logs an [emerg] at the directive being parsed (nginx adds its file:line),
// with the text of `err` when not 0, and returns NGX_CONF_ERROR.
char *ngx_http_acme_conf_error(ngx_conf_t *cf, ngx_err_t err, const char *fmt, ...);
// renew_before_expiry and renew=: an nginx time ("30d", "12h") or "33%".
bool ngx_http_acme_parse_renew_before(ngx_str_t value, acme::RenewBefore *out);
// What the messages about a bad key type or renewal time expect.
inline constexpr char ngx_http_acme_key_types_expected[] =
    "ecdsa:256 (or ecdsa), ecdsa:384, ecdsa:521, rsa:2048 (or rsa), rsa:3072 or rsa:4096";
inline constexpr char ngx_http_acme_renew_before_expected[] =
    "a time (such as 30d) or a percentage of the lifetime (1% to 99%) is expected";

// ngx_http_acme_issuer.cpp
char *ngx_http_acme_issuer_block(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_http_acme_issuer_t *ngx_http_acme_find_issuer(ngx_http_acme_main_conf_t *amcf,
                                                  const ngx_str_t &name);

// ngx_http_acme_certificate.cpp
char *ngx_http_acme_certificate(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_acme_merge_certificates(ngx_conf_t *cf, ngx_http_acme_srv_conf_t *conf);
// acme_certificate in http or stream (ngx_http_acme_api.h has the arguments).
char *ngx_http_acme_add_certificate(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf,
                                    ngx_array_t **certs, ngx_array_t **certificates,
                                    ngx_array_t **keys);
ngx_int_t ngx_http_acme_serve_certificates(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf,
                                           ngx_array_t *certs, SSL_CTX *ctx);
// A server_name entry of http or stream.
struct ngx_http_acme_server_name_t {
    ngx_str_t name;
    bool regex;
};
// The identifiers of an acme_certificate without them, from server_name;
// NGX_ERROR (logged) when none is left.
ngx_int_t ngx_http_acme_identifiers_from_names(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf,
                                               ngx_http_acme_cert_t *cert,
                                               const ngx_http_acme_server_name_t *names,
                                               ngx_uint_t n);
void ngx_http_acme_warn_shared_certificates(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf);

// ngx_http_acme_fallback.cpp
ngx_int_t ngx_http_acme_add_fallback_variables(ngx_conf_t *cf);
// Pushes "$acme_fallback_certificate" into the server's ssl_certificate
// list (and the key's), making the fallback of that key type if needed.
char *ngx_http_acme_add_fallback(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf,
                                 acme::KeyType type, ngx_array_t **certificates,
                                 ngx_array_t **keys);
bool ngx_http_acme_install_fallback(const ngx_http_acme_main_conf_t *amcf, acme::KeyType type,
                                    SSL_CTX *ctx);
// At merge, after nginx's ssl module made the context with a certificate
// callback (http or stream: values are their complex values).
ngx_int_t ngx_http_acme_take_over(ngx_conf_t *cf, ngx_ssl_t *ssl, ngx_array_t *certificates,
                                  ngx_array_t *keys, ngx_array_t **values, ngx_array_t **key_values,
                                  ngx_array_t *passwords);

// ngx_http_acme_ssl.cpp
ngx_int_t ngx_http_acme_serve(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf,
                              ngx_http_acme_cert_t *cert, ngx_str_t *state_path, SSL_CTX *ctx);
ngx_int_t ngx_http_acme_session_context(ngx_conf_t *cf, ngx_http_acme_srv_conf_t *ascf,
                                        ngx_http_ssl_srv_conf_t *sscf);
// "HTTP acme <basename>...": what ngx_http_acme_session_context sets.
ngx_int_t ngx_http_acme_session_id(ngx_conf_t *cf, const char *protocol, ngx_array_t *certs,
                                   ngx_str_t *id);
ngx_int_t ngx_http_acme_init_swap(ngx_cycle_t *cycle);
// Wipes and frees a malloc'd "data:" PEM copy.
void ngx_http_acme_forget_pem(ngx_str_t *slot);

// ngx_http_acme_ocsp.cpp: stapling the engine's OCSP responses.
// For a context of a server with ssl_stapling on: our status callback,
// which hands certificates it has no response for to nginx's.
ngx_int_t ngx_http_acme_ocsp_serve(ngx_conf_t *cf, SSL_CTX *ctx);
// Reads the stored response of a certificate again (after its generation
// changed), keeping it when it is good for the stored certificate.
void ngx_http_acme_ocsp_refresh(const ngx_http_acme_served_t *served, ngx_log_t *log);

// ngx_http_acme_variables.cpp
ngx_int_t ngx_http_acme_add_variables(ngx_conf_t *cf);
// Postconfiguration: drops the PEM copies of unused variables.
void ngx_http_acme_drop_unused_pem(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf);

// ngx_http_acme_zone.cpp
char *ngx_http_acme_shared_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_acme_add_zone(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf);
// The default zone's size: the library's default, or more for so many
// acme_certificate directives.
size_t ngx_http_acme_default_zone_size(ngx_uint_t certificates);
acme::SharedState *ngx_http_acme_shared_state(ngx_cycle_t *cycle);

// ngx_http_acme_status.cpp
char *ngx_http_acme_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_acme_add_status_zone(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf);
// Sizes it again for certificates added since (a stream block's).
void ngx_http_acme_resize_status_zone(ngx_http_acme_main_conf_t *amcf);
acme::StatusBoard *ngx_http_acme_status_board(ngx_cycle_t *cycle);

// ngx_http_acme_events.cpp
// acme_event_command in http, and (as event_command or acme_event_command)
// in acme_issuer; acme_warn_window.
char *ngx_http_acme_event_command(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_acme_issuer_event_command(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_acme_warn_window(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_acme_parse_command(ngx_conf_t *cf, ngx_array_t **out);
std::vector<std::string> ngx_http_acme_strings(const ngx_array_t *a);

// ngx_http_acme_storage.cpp
char *ngx_http_acme_storage(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
// ngx_http_acme_dns.cpp: the dns_* directives of acme_issuer, the check at
// the end of the block, and what the engine gets from them.
extern ngx_command_t ngx_http_acme_dns_commands[];
char *ngx_http_acme_dns_check(ngx_conf_t *cf, ngx_http_acme_issuer_t *issuer);
acme::DnsConfig ngx_http_acme_dns_config(const ngx_http_acme_issuer_t *issuer);
// Whether the issuer can validate wildcard names (dns-01 or dns-persist-01).
bool ngx_http_acme_issuer_has_dns(const ngx_http_acme_issuer_t *issuer);

// ngx_http_acme_http01.cpp
ngx_int_t ngx_http_acme_http01_init(ngx_conf_t *cf);

// ngx_http_acme_tls_alpn.cpp
ngx_int_t ngx_http_acme_tls_alpn_add(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf, SSL_CTX *ctx);

// ngx_http_acme_helper.cpp
ngx_int_t ngx_http_acme_add_helper(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf);
ngx_int_t ngx_http_acme_init_single(ngx_cycle_t *cycle);

// ngx_http_acme_reload.cpp
// init_module: starts (or keeps) the reload process of acme_reload.
ngx_int_t ngx_http_acme_reload_init_module(ngx_cycle_t *cycle);
// init_process: closes the reload socket but in the helper.
void ngx_http_acme_reload_init_process();
bool ngx_http_acme_reload_available();
// Asks the reload process for a reload (the engine's ReloadSink calls it).
bool ngx_http_acme_reload_request(std::string &error);
char *ngx_http_acme_reload_delay_check(ngx_conf_t *cf, void *post, void *data);

// ngx_http_acme_log.cpp
// The engine's Logger: lines queued for the main thread, which writes them
// every 100 ms with ngx_log_error; made (and its timer started) on first call.
acme::Logger *ngx_http_acme_engine_log(ngx_cycle_t *cycle);
// Writes what is queued now (before exiting).
void ngx_http_acme_drain_engine_log();

// A NUL-terminated copy in the pool; data is NULL when out of memory.
ngx_str_t ngx_http_acme_pstrdup(ngx_pool_t *pool, const std::string &s);

inline std::string ngx_http_acme_string(const ngx_str_t &s) {
    return std::string(reinterpret_cast<const char *>(s.data), s.len);
}

inline bool ngx_http_acme_str_eq(const ngx_str_t &a, const ngx_str_t &b) {
    return a.len == b.len && (a.len == 0 || ngx_memcmp(a.data, b.data, a.len) == 0);
}
