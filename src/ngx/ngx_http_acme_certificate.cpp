// acme_certificate: the directive, the identifiers taken from server_name,
// and the merge that resolves issuers, names the store files and serves them.
#include <algorithm>
#include <exception>
#include <stdexcept>
#include <vector>

#include "acme/identifier.h"
#include "acme/storage.h"
#include "ngx/ngx_http_acme.h"

namespace {

ngx_int_t push_identifier(ngx_conf_t *cf, ngx_array_t *ids, const std::string &text,
                          std::string *error) {
    acme::Identifier id;
    try {
        id = acme::parse_identifier(text);
    } catch (const std::exception &e) {
        *error = e.what();
        return NGX_DECLINED;
    }
    auto *elts = static_cast<ngx_str_t *>(ids->elts);
    for (ngx_uint_t i = 0; i < ids->nelts; i++) {
        if (ngx_http_acme_string(elts[i]) == id.value) {
            return NGX_OK;  // duplicates are harmless; order them once
        }
    }
    auto *slot = static_cast<ngx_str_t *>(ngx_array_push(ids));
    if (slot == nullptr) {
        return NGX_ERROR;
    }
    *slot = ngx_http_acme_pstrdup(cf->pool, id.value);
    return slot->data ? NGX_OK : NGX_ERROR;
}

// ".example.com" means example.com and www.example.com, as in server_name
// (and in nginx-acme's identifier arguments); with an issuer that has a DNS
// challenge it means example.com and *.example.com, as it does for nginx.
std::vector<std::string> dot_name_expanded(const std::string &name, bool dns) {
    if (name.size() > 1 && name[0] == '.') {
        return {name.substr(1), (dns ? "*" : "www") + name};
    }
    return {name};
}

// Arguments of acme_certificate are read before the issuer is known: a
// ".example.com" stays as it is (checked) until the merge expands it.
ngx_int_t push_argument(ngx_conf_t *cf, ngx_array_t *ids, const std::string &text,
                        std::string *error) {
    if (text.size() < 2 || text[0] != '.') {
        return push_identifier(cf, ids, text, error);
    }
    try {
        std::string name = acme::parse_identifier(text.substr(1)).value;
        if (name.rfind("*.", 0) == 0) {
            throw std::runtime_error("invalid identifier \"" + text + "\": \".*.\"");
        }
        auto *slot = static_cast<ngx_str_t *>(ngx_array_push(ids));
        if (slot == nullptr) {
            return NGX_ERROR;
        }
        *slot = ngx_http_acme_pstrdup(cf->pool, "." + name);
        return slot->data ? NGX_OK : NGX_ERROR;
    } catch (const std::exception &e) {
        *error = e.what();
        return NGX_DECLINED;
    }
}

// The merge's half of push_argument: ".name" expanded for the issuer.
ngx_int_t expand_arguments(ngx_conf_t *cf, ngx_http_acme_cert_t *cert, bool dns) {
    ngx_array_t given = cert->identifiers;
    if (ngx_array_init(&cert->identifiers, cf->pool, ngx_max(given.nelts, 2), sizeof(ngx_str_t)) !=
        NGX_OK) {
        return NGX_ERROR;
    }
    auto *values = static_cast<ngx_str_t *>(given.elts);
    for (ngx_uint_t i = 0; i < given.nelts; i++) {
        for (const std::string &text : dot_name_expanded(ngx_http_acme_string(values[i]), dns)) {
            std::string error;
            if (push_identifier(cf, &cert->identifiers, text, &error) != NGX_OK) {
                return NGX_ERROR;  // checked when the directive was read
            }
        }
    }
    return NGX_OK;
}

// One acme_certificate for one key type, with the directive's identifiers.
ngx_http_acme_cert_t *make_certificate(ngx_conf_t *cf, const ngx_str_t &issuer,
                                       const ngx_array_t &identifiers, acme::KeyType type,
                                       const ngx_str_t &profile) {
    auto *cert =
        static_cast<ngx_http_acme_cert_t *>(ngx_pcalloc(cf->pool, sizeof(ngx_http_acme_cert_t)));
    if (cert == nullptr ||
        ngx_array_init(&cert->identifiers, cf->pool, ngx_max(identifiers.nelts, 2),
                       sizeof(ngx_str_t)) != NGX_OK) {
        return nullptr;
    }
    auto *ids = static_cast<ngx_str_t *>(identifiers.elts);
    for (ngx_uint_t i = 0; i < identifiers.nelts; i++) {
        auto *slot = static_cast<ngx_str_t *>(ngx_array_push(&cert->identifiers));
        if (slot == nullptr) {
            return nullptr;
        }
        *slot = ids[i];
    }
    cert->explicit_identifiers = identifiers.nelts > 0;
    cert->issuer_name = issuer;
    cert->key_type = type;
    cert->profile = profile;
    cert->file = cf->conf_file->file.name.data;
    cert->line = cf->conf_file->line;
    return cert;
}

// certs: the server's acme_certificate list; certificates and keys: its
// ssl_certificate and ssl_certificate_key, in http or stream.
char *certificate(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf, ngx_array_t **certs,
                  ngx_array_t **certificates, ngx_array_t **keys) {
    auto *value = static_cast<ngx_str_t *>(cf->args->elts);

    ngx_array_t identifiers;
    if (ngx_array_init(&identifiers, cf->pool, 2, sizeof(ngx_str_t)) != NGX_OK) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    std::vector<acme::KeyType> types;
    ngx_str_t profile{0, nullptr};
    acme::RenewBefore renew_before;

    for (ngx_uint_t i = 2; i < cf->args->nelts; i++) {
        if (value[i].len > 4 && ngx_strncmp(value[i].data, "key=", 4) == 0) {
            std::string spec(reinterpret_cast<char *>(value[i].data) + 4, value[i].len - 4);
            auto type = acme::parse_key_type(spec);
            if (!type) {
                return ngx_http_acme_conf_error(
                    cf, 0, "invalid key type \"%s\" in \"acme_certificate\": expected %s",
                    spec.c_str(), ngx_http_acme_key_types_expected);
            }
            if (std::find(types.begin(), types.end(), *type) != types.end()) {
                return ngx_http_acme_conf_error(
                    cf, 0, "duplicate key type \"%s\" in \"acme_certificate\"", spec.c_str());
            }
            types.push_back(*type);
            continue;
        }
        if (value[i].len >= 8 && ngx_strncmp(value[i].data, "profile=", 8) == 0) {
            if (profile.len != 0) {
                return ngx_http_acme_conf_error(
                    cf, 0, "\"profile=\" is duplicate in \"acme_certificate\"");
            }
            if (value[i].len == 8) {
                return ngx_http_acme_conf_error(cf, 0,
                                                "empty profile name in \"acme_certificate\"");
            }
            profile = {value[i].len - 8, value[i].data + 8};
            continue;
        }
        if (value[i].len >= 6 && ngx_strncmp(value[i].data, "renew=", 6) == 0) {
            if (renew_before.set()) {
                return ngx_http_acme_conf_error(cf, 0,
                                                "\"renew=\" is duplicate in \"acme_certificate\"");
            }
            ngx_str_t spec{value[i].len - 6, value[i].data + 6};
            if (!ngx_http_acme_parse_renew_before(spec, &renew_before)) {
                return ngx_http_acme_conf_error(cf, 0, "invalid \"%V\" in \"acme_certificate\": %s",
                                                &value[i], ngx_http_acme_renew_before_expected);
            }
            continue;
        }
        std::string error;
        ngx_int_t rc = push_argument(cf, &identifiers, ngx_http_acme_string(value[i]), &error);
        if (rc == NGX_ERROR) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
        if (rc == NGX_DECLINED) {
            return ngx_http_acme_conf_error(cf, 0, "%s in \"acme_certificate\"", error.c_str());
        }
    }
    if (types.empty()) {
        types.push_back(acme::KeyType::ecdsa256);
    }

    if (*certs == NGX_CONF_UNSET_PTR) {
        *certs = ngx_array_create(cf->pool, 1, sizeof(ngx_http_acme_cert_t *));
        if (*certs == nullptr) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
    }

    // Several key= order one certificate per key type, for the same names.
    for (acme::KeyType type : types) {
        auto *have = static_cast<ngx_http_acme_cert_t **>((*certs)->elts);
        for (ngx_uint_t i = 0; i < (*certs)->nelts; i++) {
            if (have[i]->key_type == type) {
                return ngx_http_acme_conf_error(
                    cf, 0, "duplicate \"acme_certificate\" with the same key type");
            }
        }
        ngx_http_acme_cert_t *cert = make_certificate(cf, value[1], identifiers, type, profile);
        if (cert == nullptr) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
        cert->renew_before = renew_before;
        auto **slot = static_cast<ngx_http_acme_cert_t **>(ngx_array_push(*certs));
        auto **all = static_cast<ngx_http_acme_cert_t **>(ngx_array_push(&amcf->certs));
        if (slot == nullptr || all == nullptr) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
        *slot = cert;
        *all = cert;

        // nginx's ssl module creates the server's SSL context, and passes
        // its "no ssl_certificate" check, only for servers with
        // certificates: give it one that it does not parse; merge installs
        // the stored one, or the fallback (ngx_http_acme_fallback.cpp).
        if (ngx_http_acme_add_fallback(cf, amcf, type, certificates, keys) != NGX_CONF_OK) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
    }
    return NGX_CONF_OK;
}

// Identifiers from server_name, as nginx-acme derives them; "*.name" too
// when the issuer has a DNS challenge.
// names: an http server's (or, from nginx 1.25.5, a stream server's).
ngx_int_t identifiers_from_server_names(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf,
                                        ngx_http_acme_cert_t *cert,
                                        const ngx_http_acme_server_name_t *names, ngx_uint_t n) {
    // An unknown issuer is reported by the merge that resolves it.
    const ngx_http_acme_issuer_t *issuer = ngx_http_acme_find_issuer(amcf, cert->issuer_name);
    bool dns = issuer != nullptr && ngx_http_acme_issuer_has_dns(issuer);
    for (ngx_uint_t i = 0; i < n; i++) {
        std::string name = ngx_http_acme_string(names[i].name);
        if (name.empty()) {
            continue;
        }
#if (NGX_PCRE)
        if (names[i].regex) {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                          "acme_certificate in %s:%ui: regular expression server_name \"%s\" "
                          "is skipped",
                          cert->file, cert->line, name.c_str());
            continue;
        }
#endif
        // "*.example.com" and "www.example.*" are nginx wildcards: a
        // certificate for the first needs a DNS challenge; the second has
        // no certificate form.
        bool leading = name.rfind("*.", 0) == 0;
        if ((leading && !dns) || (name.size() > 2 && name.compare(name.size() - 2, 2, ".*") == 0)) {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                          "acme_certificate in %s:%ui: wildcard server_name \"%s\" is skipped",
                          cert->file, cert->line, name.c_str());
            continue;
        }
        for (const auto &text : dot_name_expanded(name, dns)) {
            std::string error;
            ngx_int_t rc = push_identifier(cf, &cert->identifiers, text, &error);
            if (rc == NGX_ERROR) {
                return NGX_ERROR;
            }
            // "_", "localhost_1" and the like name servers, not hosts: like
            // regular expressions, they are left out of the certificate.
            if (rc == NGX_DECLINED) {
                ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                              "acme_certificate in %s:%ui: server_name \"%s\" is skipped: %s",
                              cert->file, cert->line, name.c_str(), error.c_str());
            }
        }
    }
    if (cert->identifiers.nelts == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "acme_certificate in %s:%ui has no identifiers: give them as arguments or "
                      "set server_name",
                      cert->file, cert->line);
        return NGX_ERROR;
    }
    return NGX_OK;
}

ngx_int_t identifiers_from_http_server_names(ngx_conf_t *cf, ngx_http_acme_cert_t *cert) {
    auto *cscf = static_cast<ngx_http_core_srv_conf_t *>(
        ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module));
    auto *names = static_cast<ngx_http_server_name_t *>(cscf->server_names.elts);
    std::vector<ngx_http_acme_server_name_t> list;
    for (ngx_uint_t i = 0; i < cscf->server_names.nelts; i++) {
#if (NGX_PCRE)
        list.push_back({names[i].name, names[i].regex != nullptr});
#else
        list.push_back({names[i].name, false});
#endif
    }
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_acme_module));
    return identifiers_from_server_names(cf, amcf, cert, list.data(), list.size());
}

void free_cert_index(void *data) { delete static_cast<ngx_http_acme_cert_index_t *>(data); }

// Finds the first acme_certificate with the same issuer and basename, the
// one whose certificate this one shares (engine, served entry, warning).
// Servers are merged in configuration order, so the first one met is the
// first one configured.
ngx_int_t find_first(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf, ngx_http_acme_cert_t *cert) {
    if (amcf->cert_index == nullptr) {
        ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == nullptr) {
            return NGX_ERROR;
        }
        amcf->cert_index = new ngx_http_acme_cert_index_t();
        cln->handler = free_cert_index;
        cln->data = amcf->cert_index;
    }
    // Issuer names have no '/': the key is unambiguous.
    std::string key =
        ngx_http_acme_string(cert->issuer->name) + "/" + ngx_http_acme_string(cert->basename);
    cert->first = amcf->cert_index->emplace(std::move(key), cert).first->second;
    return NGX_OK;
}

}  // namespace

char *ngx_http_acme_certificate(ngx_conf_t *cf, ngx_command_t *, void *conf) {
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_acme_module));
    auto *sscf = static_cast<ngx_http_ssl_srv_conf_t *>(
        ngx_http_conf_get_module_srv_conf(cf, ngx_http_ssl_module));
    return ngx_http_acme_add_certificate(cf, amcf,
                                         &static_cast<ngx_http_acme_srv_conf_t *>(conf)->certs,
                                         &sscf->certificates, &sscf->certificate_keys);
}

char *ngx_http_acme_add_certificate(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf,
                                    ngx_array_t **certs, ngx_array_t **certificates,
                                    ngx_array_t **keys) {
    try {
        return certificate(cf, amcf, certs, certificates, keys);
    } catch (const std::exception &e) {
        return ngx_http_acme_conf_error(cf, 0, "acme: %s", e.what());
    }
}

char *ngx_http_acme_merge_certificates(ngx_conf_t *cf, ngx_http_acme_srv_conf_t *conf) {
    if (conf->certs == NGX_CONF_UNSET_PTR || conf->certs == nullptr) {
        conf->certs = nullptr;
        return NGX_CONF_OK;
    }
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_acme_module));
    auto *sscf = static_cast<ngx_http_ssl_srv_conf_t *>(
        ngx_http_conf_get_module_srv_conf(cf, ngx_http_ssl_module));

    // nginx compiled "$acme_fallback_certificate" (and any
    // `ssl_certificate $acme_certificate`) for every handshake: serve from
    // the SSL context instead (ngx_http_acme_fallback.cpp).
    if (sscf->ssl.ctx != nullptr && sscf->certificate_values != nullptr &&
        ngx_http_acme_take_over(cf, &sscf->ssl, sscf->certificates, sscf->certificate_keys,
                                &sscf->certificate_values, &sscf->certificate_key_values,
                                sscf->passwords) != NGX_OK) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }

    auto **certs = static_cast<ngx_http_acme_cert_t **>(conf->certs->elts);
    for (ngx_uint_t i = 0; i < conf->certs->nelts; i++) {
        if (!certs[i]->explicit_identifiers &&
            identifiers_from_http_server_names(cf, certs[i]) != NGX_OK) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
    }
    if (ngx_http_acme_serve_certificates(cf, amcf, conf->certs, sscf->ssl.ctx) != NGX_OK) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    // ssl_stapling: the engine keeps the response, our callback staples it
    // (the certificates' first server is known once they are served).
    bool stapling = sscf->stapling == 1 && sscf->ssl.ctx != nullptr;
    for (ngx_uint_t i = 0; stapling && i < conf->certs->nelts; i++) {
        certs[i]->first->stapling = 1;
        certs[i]->first->stapling_verify |= sscf->stapling_verify == 1;
        if (ngx_http_acme_ocsp_serve(cf, sscf->ssl.ctx) != NGX_OK) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
    }
    if (sscf->ssl.ctx != nullptr && ngx_http_acme_session_context(cf, conf, sscf) != NGX_OK) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

ngx_int_t ngx_http_acme_identifiers_from_names(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf,
                                               ngx_http_acme_cert_t *cert,
                                               const ngx_http_acme_server_name_t *names,
                                               ngx_uint_t n) {
    try {
        return identifiers_from_server_names(cf, amcf, cert, names, n);
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "acme: %s", e.what());
        return NGX_ERROR;
    }
}

ngx_int_t ngx_http_acme_serve_certificates(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf,
                                           ngx_array_t *list, SSL_CTX *ctx) {
    auto **certs = static_cast<ngx_http_acme_cert_t **>(list->elts);
    for (ngx_uint_t i = 0; i < list->nelts; i++) {
        ngx_http_acme_cert_t *cert = certs[i];

        // Issuers may be defined after the servers that use them, so the
        // issuer is looked up here, once the whole http (or stream) block
        // is parsed.
        cert->issuer = ngx_http_acme_find_issuer(amcf, cert->issuer_name);
        if (cert->issuer == nullptr) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "unknown acme issuer \"%V\" in %s:%ui",
                          &cert->issuer_name, cert->file, cert->line);
            return NGX_ERROR;
        }
        cert->issuer->used = 1;
        bool dns = ngx_http_acme_issuer_has_dns(cert->issuer);
        // ".name" arguments wait for the issuer to know what they mean.
        if (cert->explicit_identifiers && expand_arguments(cf, cert, dns) != NGX_OK) {
            return NGX_ERROR;
        }

        std::vector<acme::Identifier> ids;
        auto *values = static_cast<ngx_str_t *>(cert->identifiers.elts);
        for (ngx_uint_t k = 0; k < cert->identifiers.nelts; k++) {
            ids.push_back(acme::parse_identifier(ngx_http_acme_string(values[k])));
            if (ids.back().value.rfind("*.", 0) == 0 && !dns) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "wildcard identifier \"%V\" in %s:%ui needs the dns-01 challenge, "
                              "which issuer \"%V\" does not use",
                              &values[k], cert->file, cert->line, &cert->issuer->name);
                return NGX_ERROR;
            }
        }
        cert->basename =
            ngx_http_acme_pstrdup(cf->pool, acme::certificate_basename(ids, cert->key_type));
        if (cert->basename.data == nullptr || find_first(cf, amcf, cert) != NGX_OK) {
            return NGX_ERROR;
        }

        if (ctx == nullptr) {
            continue;
        }
        if (ngx_http_acme_serve(cf, amcf, cert, &cert->issuer->state_path, ctx) != NGX_OK) {
            return NGX_ERROR;
        }
    }
    return NGX_OK;
}

// The shared certificate is ordered with the settings of the first server:
// say so when the others' differ.
void ngx_http_acme_warn_shared_certificates(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf) {
    auto **certs = static_cast<ngx_http_acme_cert_t **>(amcf->certs.elts);
    for (ngx_uint_t i = 0; i < amcf->certs.nelts; i++) {
        const ngx_http_acme_cert_t &b = *certs[i], &a = *b.first;
        if (&a == &b) {
            continue;
        }
        if (!ngx_http_acme_str_eq(a.profile, b.profile) ||
            a.renew_before.seconds != b.renew_before.seconds ||
            a.renew_before.percent != b.renew_before.percent) {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                          "acme_certificate in %s:%ui shares its certificate with the one in "
                          "%s:%ui, whose profile= and renew= are used",
                          b.file, b.line, a.file, a.line);
        }
    }
}
