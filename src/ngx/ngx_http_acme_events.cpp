// acme_event_command (http, and inside acme_issuer to override it) and
// acme_warn_window: what acme::CommandSink runs in the helper, and when it
// warns of an expiring certificate.
#include <unistd.h>

#include "ngx/ngx_http_acme.h"

// PATH [ARG ...]: PATH absolute and executable (by the master, which
// checks; the helper runs it as the worker user). dns_hook too.
char *ngx_http_acme_parse_command(ngx_conf_t *cf, ngx_array_t **out) {
    auto *value = static_cast<ngx_str_t *>(cf->args->elts);
    if (*out != nullptr) {
        return ngx_http_acme_conf_error(cf, 0, "duplicate \"%V\"", &value[0]);
    }
    if (value[1].len == 0 || value[1].data[0] != '/') {
        return ngx_http_acme_conf_error(
            cf, 0, "invalid \"%V\" \"%V\": an absolute path is expected", &value[0], &value[1]);
    }
    std::string path = ngx_http_acme_string(value[1]);
    if (access(path.c_str(), X_OK) != 0) {
        return ngx_http_acme_conf_error(cf, ngx_errno, "\"%V\" \"%V\" cannot be executed",
                                        &value[0], &value[1]);
    }
    *out = ngx_array_create(cf->pool, cf->args->nelts - 1, sizeof(ngx_str_t));
    if (*out == nullptr) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
        auto *s = static_cast<ngx_str_t *>(ngx_array_push(*out));
        if (s == nullptr) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
        *s = value[i];
    }
    return NGX_CONF_OK;
}

char *ngx_http_acme_event_command(ngx_conf_t *cf, ngx_command_t *, void *conf) {
    return ngx_http_acme_parse_command(
        cf, &static_cast<ngx_http_acme_main_conf_t *>(conf)->event_command);
}

char *ngx_http_acme_issuer_event_command(ngx_conf_t *cf, ngx_command_t *, void *conf) {
    return ngx_http_acme_parse_command(cf,
                                       &static_cast<ngx_http_acme_issuer_t *>(conf)->event_command);
}

char *ngx_http_acme_warn_window(ngx_conf_t *cf, ngx_command_t *, void *conf) {
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(conf);
    auto *value = static_cast<ngx_str_t *>(cf->args->elts);
    if (amcf->warn_window.set()) {
        return const_cast<char *>("is duplicate");
    }
    if (!ngx_http_acme_parse_renew_before(value[1], &amcf->warn_window)) {
        return ngx_http_acme_conf_error(cf, 0, "invalid acme_warn_window \"%V\": %s", &value[1],
                                        ngx_http_acme_renew_before_expected);
    }
    return NGX_CONF_OK;
}

std::vector<std::string> ngx_http_acme_strings(const ngx_array_t *a) {
    std::vector<std::string> out;
    if (a == nullptr) {
        return out;
    }
    auto *s = static_cast<ngx_str_t *>(a->elts);
    for (ngx_uint_t i = 0; i < a->nelts; i++) {
        out.push_back(ngx_http_acme_string(s[i]));
    }
    return out;
}
