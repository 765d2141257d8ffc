// The dns_* directives of acme_issuer (dns-01): how TXT records are published
// (dns_update or dns_hook) and when they count as visible. They validate and
// record; a TSIG key file is read here, in the master, so the helper needs
// no access to it and nginx -t reports a bad one.
#include <unistd.h>

#include <exception>

#include "acme/dns.h"
#include "acme/file_io.h"
#include "ngx/ngx_http_acme.h"

struct ngx_http_acme_dns_t {
    ngx_str_t update;  // dns_update SERVER[:PORT]; empty: none
    ngx_str_t zone;    // zone=
    ngx_str_t key_file;
    ngx_str_t key_name, key_algorithm, key_secret;  // from key=; the secret is never logged
    ngx_array_t *hook;                              // ngx_str_t path and arguments, or null
    ngx_msec_t hook_timeout;
    ngx_array_t *resolvers;  // ngx_str_t "host:port", or null
    ngx_flag_t propagation_check;
    time_t propagation_timeout;
    u_char *update_file;  // where dns_update / dns_hook were given, for the checks
    ngx_uint_t update_line;
};

namespace {

char *dns_update(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *dns_hook(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *dns_hook_timeout(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *dns_resolver(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *dns_propagation_check(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *dns_propagation_timeout(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

ngx_str_t *arguments(ngx_conf_t *cf) { return static_cast<ngx_str_t *>(cf->args->elts); }

bool starts_with(const ngx_str_t &s, const char *prefix) {
    size_t n = ngx_strlen(prefix);
    return s.len >= n && ngx_strncmp(s.data, prefix, n) == 0;
}

// The issuer's dns settings, made with the first dns_* directive.
ngx_http_acme_dns_t *dns_of(ngx_conf_t *cf, void *conf) {
    auto *issuer = static_cast<ngx_http_acme_issuer_t *>(conf);
    if (issuer->dns == nullptr) {
        auto *dns =
            static_cast<ngx_http_acme_dns_t *>(ngx_pcalloc(cf->pool, sizeof(ngx_http_acme_dns_t)));
        if (dns == nullptr) {
            return nullptr;
        }
        dns->hook_timeout = NGX_CONF_UNSET_MSEC;
        dns->propagation_check = NGX_CONF_UNSET;
        dns->propagation_timeout = NGX_CONF_UNSET;
        issuer->dns = dns;
    }
    return issuer->dns;
}

char *duplicate(ngx_conf_t *cf, ngx_command_t *cmd) {
    return ngx_http_acme_conf_error(cf, 0, "\"%V\" is duplicate", &cmd->name);
}

// dns_update SERVER[:PORT] [key=FILE] [zone=ZONE]
char *dns_update(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    ngx_http_acme_dns_t *dns = dns_of(cf, conf);
    if (dns == nullptr) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    ngx_str_t *value = arguments(cf);
    if (dns->update.len != 0) {
        return duplicate(cf, cmd);
    }
    if (dns->hook != nullptr) {
        return ngx_http_acme_conf_error(cf, 0,
                                        "\"dns_update\" and \"dns_hook\" exclude each other");
    }
    if (!acme::parse_dns_server(ngx_http_acme_string(value[1]))) {
        return ngx_http_acme_conf_error(cf, 0,
                                        "invalid server \"%V\" in \"dns_update\": "
                                        "ADDRESS, NAME, ADDRESS:PORT or [IPv6]:PORT is expected",
                                        &value[1]);
    }
    for (ngx_uint_t i = 2; i < cf->args->nelts; i++) {
        if (starts_with(value[i], "zone=") && value[i].len > 5 && dns->zone.len == 0) {
            dns->zone = {value[i].len - 5, value[i].data + 5};
            continue;
        }
        if (!starts_with(value[i], "key=") || value[i].len == 4 || dns->key_file.len != 0) {
            return ngx_http_acme_conf_error(
                cf, 0, "invalid parameter \"%V\" in \"dns_update\": key=FILE or zone=ZONE expected",
                &value[i]);
        }
        ngx_str_t file{value[i].len - 4, value[i].data + 4};
        if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
        dns->key_file = ngx_http_acme_pstrdup(cf->pool, ngx_http_acme_string(file));
        if (dns->key_file.data == nullptr) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
        std::string text;
        int err = acme::read_whole_file(ngx_http_acme_string(dns->key_file), &text);
        if (err != 0) {
            return ngx_http_acme_conf_error(cf, err, "cannot read dns_update key \"%s\"",
                                            dns->key_file.data);
        }
        acme::TsigKey key;
        try {
            key = acme::parse_tsig_key(text);
        } catch (const std::exception &e) {
            return ngx_http_acme_conf_error(cf, 0, "invalid dns_update key \"%s\": %s",
                                            dns->key_file.data, e.what());
        }
        dns->key_name = ngx_http_acme_pstrdup(cf->pool, key.name);
        dns->key_algorithm = ngx_http_acme_pstrdup(cf->pool, key.algorithm);
        dns->key_secret = ngx_http_acme_pstrdup(cf->pool, key.secret);
        if (!dns->key_name.data || !dns->key_algorithm.data || !dns->key_secret.data) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
    }
    dns->update = value[1];
    dns->update_file = cf->conf_file->file.name.data;
    dns->update_line = cf->conf_file->line;
    return NGX_CONF_OK;
}

// dns_hook PATH [ARG ...]
char *dns_hook(ngx_conf_t *cf, ngx_command_t *, void *conf) {
    ngx_http_acme_dns_t *dns = dns_of(cf, conf);
    if (dns == nullptr) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    if (dns->update.len != 0) {
        return ngx_http_acme_conf_error(cf, 0,
                                        "\"dns_update\" and \"dns_hook\" exclude each other");
    }
    dns->update_file = cf->conf_file->file.name.data;
    dns->update_line = cf->conf_file->line;
    return ngx_http_acme_parse_command(cf, &dns->hook);
}

char *dns_hook_timeout(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    ngx_http_acme_dns_t *dns = dns_of(cf, conf);
    if (dns == nullptr) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    if (dns->hook_timeout != NGX_CONF_UNSET_MSEC) {
        return duplicate(cf, cmd);
    }
    ngx_msec_int_t t = ngx_parse_time(&arguments(cf)[1], 0);
    if (t == NGX_ERROR || t == 0) {
        return ngx_http_acme_conf_error(cf, 0, "invalid dns_hook_timeout \"%V\"",
                                        &arguments(cf)[1]);
    }
    dns->hook_timeout = t;
    return NGX_CONF_OK;
}

// dns_resolver ADDRESS[:PORT] ...
char *dns_resolver(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    ngx_http_acme_dns_t *dns = dns_of(cf, conf);
    if (dns == nullptr) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    if (dns->resolvers != nullptr) {
        return duplicate(cf, cmd);
    }
    dns->resolvers = ngx_array_create(cf->pool, cf->args->nelts - 1, sizeof(ngx_str_t));
    if (dns->resolvers == nullptr) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    ngx_str_t *value = arguments(cf);
    for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
        if (!acme::parse_dns_server(ngx_http_acme_string(value[i]))) {
            return ngx_http_acme_conf_error(
                cf, 0,
                "invalid server \"%V\" in \"dns_resolver\": "
                "ADDRESS, NAME, ADDRESS:PORT or [IPv6]:PORT is expected",
                &value[i]);
        }
        auto *s = static_cast<ngx_str_t *>(ngx_array_push(dns->resolvers));
        if (s == nullptr) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
        *s = value[i];
    }
    return NGX_CONF_OK;
}

char *dns_propagation_check(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    ngx_http_acme_dns_t *dns = dns_of(cf, conf);
    if (dns == nullptr) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    if (dns->propagation_check != NGX_CONF_UNSET) {
        return duplicate(cf, cmd);
    }
    ngx_str_t v = arguments(cf)[1];
    if (v.len == 2 && ngx_strncmp(v.data, "on", 2) == 0) {
        dns->propagation_check = 1;
    } else if (v.len == 3 && ngx_strncmp(v.data, "off", 3) == 0) {
        dns->propagation_check = 0;
    } else {
        return ngx_http_acme_conf_error(
            cf, 0,
            "invalid value \"%V\" in \"dns_propagation_check\", it must be \"on\" or \"off\"", &v);
    }
    return NGX_CONF_OK;
}

char *dns_propagation_timeout(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    ngx_http_acme_dns_t *dns = dns_of(cf, conf);
    if (dns == nullptr) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    if (dns->propagation_timeout != NGX_CONF_UNSET) {
        return duplicate(cf, cmd);
    }
    time_t t = ngx_parse_time(&arguments(cf)[1], 1);
    if (t == static_cast<time_t>(NGX_ERROR) || t <= 0) {
        return ngx_http_acme_conf_error(cf, 0, "invalid dns_propagation_timeout \"%V\"",
                                        &arguments(cf)[1]);
    }
    dns->propagation_timeout = t;
    return NGX_CONF_OK;
}

bool has_type(const ngx_http_acme_issuer_t *issuer, const char *type) {
    auto *types = static_cast<ngx_str_t *>(issuer->challenges.elts);
    for (ngx_uint_t i = 0; i < issuer->challenges.nelts; i++) {
        if (ngx_http_acme_string(types[i]) == type) {
            return true;
        }
    }
    return false;
}

}  // namespace

// Parsed by the acme_issuer block's handler (ngx_http_acme_issuer.cpp),
// which counts the arguments.
ngx_command_t ngx_http_acme_dns_commands[] = {
    {ngx_string("dns_update"), NGX_CONF_TAKE123, dns_update, 0, 0, nullptr},
    {ngx_string("dns_hook"), NGX_CONF_1MORE, dns_hook, 0, 0, nullptr},
    {ngx_string("dns_hook_timeout"), NGX_CONF_TAKE1, dns_hook_timeout, 0, 0, nullptr},
    {ngx_string("dns_resolver"), NGX_CONF_1MORE, dns_resolver, 0, 0, nullptr},
    {ngx_string("dns_propagation_check"), NGX_CONF_TAKE1, dns_propagation_check, 0, 0, nullptr},
    {ngx_string("dns_propagation_timeout"), NGX_CONF_TAKE1, dns_propagation_timeout, 0, 0, nullptr},
    ngx_null_command};

bool ngx_http_acme_issuer_has_dns(const ngx_http_acme_issuer_t *issuer) {
    return has_type(issuer, "dns-01") || has_type(issuer, "dns-persist-01");
}

// At the end of the block: dns-01 needs a way to publish.
char *ngx_http_acme_dns_check(ngx_conf_t *cf, ngx_http_acme_issuer_t *issuer) {
    const ngx_http_acme_dns_t *dns = issuer->dns;
    bool publishes = dns != nullptr && (dns->update.len != 0 || dns->hook != nullptr);
    if (has_type(issuer, "dns-01") && !publishes) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "acme_issuer \"%V\" in %s:%ui uses the dns-01 challenge but has neither "
                      "\"dns_update\" nor \"dns_hook\"",
                      &issuer->name, issuer->file, issuer->line);
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

acme::DnsConfig ngx_http_acme_dns_config(const ngx_http_acme_issuer_t *issuer) {
    acme::DnsConfig c;
    const ngx_http_acme_dns_t *dns = issuer->dns;
    if (dns == nullptr) {
        return c;
    }
    c.update_server = ngx_http_acme_string(dns->update);
    c.zone = ngx_http_acme_string(dns->zone);
    c.key.name = ngx_http_acme_string(dns->key_name);
    c.key.algorithm = ngx_http_acme_string(dns->key_algorithm);
    c.key.secret = ngx_http_acme_string(dns->key_secret);
    c.hook = ngx_http_acme_strings(dns->hook);
    if (dns->hook_timeout != NGX_CONF_UNSET_MSEC) {
        c.hook_timeout = std::chrono::milliseconds(dns->hook_timeout);
    }
    c.resolvers = ngx_http_acme_strings(dns->resolvers);
    if (dns->propagation_check != NGX_CONF_UNSET) {
        c.propagation_check = dns->propagation_check;
    }
    if (dns->propagation_timeout != NGX_CONF_UNSET) {
        c.propagation_timeout = std::chrono::seconds(dns->propagation_timeout);
    }
    return c;
}
