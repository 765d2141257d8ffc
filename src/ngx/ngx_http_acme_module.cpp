// The module definition and its directives: acme_issuer, acme_certificate,
// acme_shared_zone. Directive handlers only validate and record; nothing here
// touches the network or the state directory (nginx -t runs all of it).
#include <unistd.h>

#include <algorithm>
#include <exception>

#include "acme/base64url.h"
#include "acme/challenge.h"
#include "acme/file_io.h"
#include "acme/identifier.h"
#include "acme/storage.h"
#include "ngx/ngx_http_acme.h"

namespace {

void *ngx_http_acme_create_main_conf(ngx_conf_t *cf);
char *ngx_http_acme_init_main_conf(ngx_conf_t *cf, void *conf);
void *ngx_http_acme_create_srv_conf(ngx_conf_t *cf);
char *ngx_http_acme_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child);
ngx_int_t ngx_http_acme_postconfiguration(ngx_conf_t *cf);
ngx_int_t ngx_http_acme_init_process(ngx_cycle_t *cycle);

char *ngx_http_acme_issuer_block(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_acme_issuer_directive(ngx_conf_t *cf, ngx_command_t *dummy, void *conf);
char *ngx_http_acme_certificate(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_acme_shared_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

ngx_command_t ngx_http_acme_commands[] = {
    {ngx_string("acme_issuer"), NGX_HTTP_MAIN_CONF | NGX_CONF_BLOCK | NGX_CONF_TAKE1,
     ngx_http_acme_issuer_block, NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("acme_certificate"), NGX_HTTP_SRV_CONF | NGX_CONF_1MORE, ngx_http_acme_certificate,
     NGX_HTTP_SRV_CONF_OFFSET, 0, nullptr},
    {ngx_string("acme_shared_zone"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, ngx_http_acme_shared_zone,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
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
    &ngx_http_acme_module_ctx,   // module context
    ngx_http_acme_commands,      // module directives
    NGX_HTTP_MODULE,             // module type
    nullptr,                     // init master
    nullptr,                     // init module
    ngx_http_acme_init_process,  // init process
    nullptr,                     // init thread
    nullptr,                     // exit thread
    nullptr,                     // exit process
    nullptr,                     // exit master
    NGX_MODULE_V1_PADDING};
// clang-format on
}

namespace {

const ngx_str_t default_zone_name = ngx_string("acme_shared");

char *conf_error(ngx_conf_t *cf, const char *message) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", message);
    return static_cast<char *>(NGX_CONF_ERROR);
}

bool equals(const ngx_str_t &s, const char *literal) {
    size_t n = ngx_strlen(literal);
    return s.len == n && ngx_strncmp(s.data, literal, n) == 0;
}

// A file name made absolute against the prefix, NUL-terminated.
ngx_int_t full_name(ngx_conf_t *cf, ngx_str_t *name) {
    if (ngx_conf_full_name(cf->cycle, name, 1) != NGX_OK) {
        return NGX_ERROR;
    }
    *name = ngx_http_acme_pstrdup(cf->pool, ngx_http_acme_string(*name));
    return name->data ? NGX_OK : NGX_ERROR;
}

const char *key_types_expected = "ecdsa:256, ecdsa:384, rsa:2048, rsa:3072 or rsa:4096";
const char *renew_before_expected =
    "a time (such as 30d) or a percentage of the lifetime (1% to 99%) is expected";

// renew_before_expiry and renew=: an nginx time ("30d", "12h") or "33%".
bool parse_renew_before(ngx_str_t value, acme::RenewBefore *out) {
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
    return amcf;
}

char *ngx_http_acme_init_main_conf(ngx_conf_t *cf, void *conf) {
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(conf);
    if (amcf->zone_size == NGX_CONF_UNSET_SIZE) {
        amcf->zone_name = default_zone_name;
        amcf->zone_size = acme::SharedState::default_size;
    }
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

// ---------------------------------------------------------------- acme_issuer

ngx_http_acme_issuer_t *find_issuer(ngx_http_acme_main_conf_t *amcf, const ngx_str_t &name) {
    auto **issuers = static_cast<ngx_http_acme_issuer_t **>(amcf->issuers.elts);
    for (ngx_uint_t i = 0; i < amcf->issuers.nelts; i++) {
        if (issuers[i]->name.len == name.len &&
            ngx_strncmp(issuers[i]->name.data, name.data, name.len) == 0) {
            return issuers[i];
        }
    }
    return nullptr;
}

char *ngx_http_acme_issuer_block(ngx_conf_t *cf, ngx_command_t *, void *conf) {
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(conf);
    auto *value = static_cast<ngx_str_t *>(cf->args->elts);
    ngx_str_t name = value[1];

    if (find_issuer(amcf, name) != nullptr) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "duplicate acme_issuer \"%V\"", &name);
        return static_cast<char *>(NGX_CONF_ERROR);
    }
    for (size_t i = 0; i < name.len; i++) {
        u_char c = name.data[i];
        if (!(isalnum(c) || c == '-' || c == '_' || c == '.')) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid acme_issuer name \"%V\": use letters, digits, "
                               "\"-\", \"_\" and \".\"",
                               &name);
            return static_cast<char *>(NGX_CONF_ERROR);
        }
    }

    auto *issuer = static_cast<ngx_http_acme_issuer_t *>(
        ngx_pcalloc(cf->pool, sizeof(ngx_http_acme_issuer_t)));
    if (issuer == nullptr ||
        ngx_array_init(&issuer->contacts, cf->pool, 1, sizeof(ngx_str_t)) != NGX_OK ||
        ngx_array_init(&issuer->challenges, cf->pool, 1, sizeof(ngx_str_t)) != NGX_OK) {
        return static_cast<char *>(NGX_CONF_ERROR);
    }
    issuer->name = name;
    issuer->accept_tos = NGX_CONF_UNSET;
    issuer->ssl_verify = NGX_CONF_UNSET;
    issuer->common_name_in_csr = NGX_CONF_UNSET;
    issuer->file = cf->conf_file->file.name.data;
    issuer->line = cf->conf_file->line;

    auto **slot = static_cast<ngx_http_acme_issuer_t **>(ngx_array_push(&amcf->issuers));
    if (slot == nullptr) {
        return static_cast<char *>(NGX_CONF_ERROR);
    }
    *slot = issuer;

    ngx_conf_t save = *cf;
    cf->handler = ngx_http_acme_issuer_directive;
    cf->handler_conf = reinterpret_cast<char *>(issuer);
    char *rv = ngx_conf_parse(cf, nullptr);
    *cf = save;
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (issuer->uri.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "acme_issuer \"%V\" has no \"uri\" in %s:%ui",
                      &name, issuer->file, issuer->line);
        return static_cast<char *>(NGX_CONF_ERROR);
    }
    ngx_conf_init_value(issuer->accept_tos, 0);
    ngx_conf_init_value(issuer->ssl_verify, 1);
    ngx_conf_init_value(issuer->common_name_in_csr, 0);
    if (issuer->account_key.len == 0) {
        ngx_str_set(&issuer->account_key, "ecdsa:256");
    }
    if (issuer->challenges.nelts == 0) {
        auto *c = static_cast<ngx_str_t *>(ngx_array_push(&issuer->challenges));
        if (c == nullptr) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        ngx_str_set(c, "http-01");
    }
    if (issuer->state_path.len == 0) {
        std::string path =
            std::string(NGX_HTTP_ACME_STATE_PREFIX "/") + ngx_http_acme_string(issuer->name);
        issuer->state_path = ngx_http_acme_pstrdup(cf->pool, path);
        if (issuer->state_path.data == nullptr) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
    }
    return NGX_CONF_OK;
}

char *issuer_set_once(ngx_conf_t *cf, ngx_str_t *field, const ngx_str_t &value) {
    if (field->len != 0) {
        auto *args = static_cast<ngx_str_t *>(cf->args->elts);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" is duplicate", &args[0]);
        return static_cast<char *>(NGX_CONF_ERROR);
    }
    *field = value;
    return NGX_CONF_OK;
}

// external_account_key KID FILE|data:KEY [alg=HS256|HS384|HS512]. The MAC
// key is read here, in the master, so the helper needs no access to the
// file; no message quotes it.
char *issuer_external_account_key(ngx_conf_t *cf, ngx_http_acme_issuer_t *issuer, ngx_str_t *value,
                                  ngx_uint_t n) {
    if (issuer->eab_kid.len != 0) {
        return conf_error(cf, "\"external_account_key\" is duplicate");
    }
    if (value[1].len == 0) {
        return conf_error(cf, "empty key identifier in \"external_account_key\"");
    }
    ngx_str_set(&issuer->eab_alg, "HS256");
    if (n == 4) {
        if (equals(value[3], "alg=HS256") || equals(value[3], "alg=HS384") ||
            equals(value[3], "alg=HS512")) {
            issuer->eab_alg = {value[3].len - 4, value[3].data + 4};
        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in \"external_account_key\": "
                               "alg=HS256, alg=HS384 or alg=HS512 is expected",
                               &value[3]);
            return static_cast<char *>(NGX_CONF_ERROR);
        }
    }

    std::string text;
    if (value[2].len >= 5 && ngx_strncmp(value[2].data, "data:", 5) == 0) {
        text.assign(reinterpret_cast<char *>(value[2].data) + 5, value[2].len - 5);
    } else {
        ngx_str_t file = value[2];
        if (full_name(cf, &file) != NGX_OK) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        int err = acme::read_whole_file(ngx_http_acme_string(file), &text);
        if (err != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, err, "cannot read external_account_key \"%s\"",
                               file.data);
            return static_cast<char *>(NGX_CONF_ERROR);
        }
    }
    // Files usually end with a newline; CAs show the key with '=' padding
    // at times, which base64url_decode accepts.
    while (!text.empty() && isspace(static_cast<u_char>(text.back()))) {
        text.pop_back();
    }
    while (!text.empty() && isspace(static_cast<u_char>(text.front()))) {
        text.erase(0, 1);
    }
    std::string key;
    try {
        key = acme::base64url_decode(text);
    } catch (const std::exception &) {
        key.clear();
    }
    if (key.empty()) {
        return conf_error(cf,
                          "invalid MAC key in \"external_account_key\": a base64url-encoded "
                          "key is expected");
    }
    // RFC 7518 section 3.2: the key is at least as long as the hash. Not
    // enforced for the default HS256, whose keys come from the CA as they are.
    size_t min_len = equals(issuer->eab_alg, "HS512")   ? 64
                     : equals(issuer->eab_alg, "HS384") ? 48
                                                        : 0;
    if (key.size() < min_len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "MAC key in \"external_account_key\" is too short for %V: %uz bytes, "
                           "at least %uz are needed",
                           &issuer->eab_alg, key.size(), min_len);
        return static_cast<char *>(NGX_CONF_ERROR);
    }
    issuer->eab_kid = value[1];
    issuer->eab_mac_key = ngx_http_acme_pstrdup(cf->pool, key);
    return issuer->eab_mac_key.data ? NGX_CONF_OK : static_cast<char *>(NGX_CONF_ERROR);
}

// Directives inside acme_issuer { }: a hand-written dispatcher, as nginx's
// `types { }` and `map { }` blocks do, so each keeps its exact error message.
char *ngx_http_acme_issuer_directive(ngx_conf_t *cf, ngx_command_t *, void *conf) {
    auto *issuer = static_cast<ngx_http_acme_issuer_t *>(conf);
    auto *value = static_cast<ngx_str_t *>(cf->args->elts);
    ngx_uint_t n = cf->args->nelts;
    const ngx_str_t &cmd = value[0];

    auto want_args = [&](ngx_uint_t min, ngx_uint_t max) {
        if (n - 1 < min || n - 1 > max) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid number of arguments in \"%V\" directive", &cmd);
            return false;
        }
        return true;
    };

    if (equals(cmd, "uri")) {
        if (!want_args(1, 1)) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        if (ngx_strncasecmp(value[1].data, (u_char *)"https://", 8) != 0 &&
            ngx_strncasecmp(value[1].data, (u_char *)"http://", 7) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid uri \"%V\": an http:// or https:// URL is expected",
                               &value[1]);
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        return issuer_set_once(cf, &issuer->uri, value[1]);
    }

    if (equals(cmd, "contact")) {
        if (!want_args(1, 1)) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        auto *c = static_cast<ngx_str_t *>(ngx_array_push(&issuer->contacts));
        if (c == nullptr) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        std::string contact = ngx_http_acme_string(value[1]);
        if (contact.find(':') == std::string::npos) {
            contact = "mailto:" + contact;
        }
        *c = ngx_http_acme_pstrdup(cf->pool, contact);
        return c->data ? NGX_CONF_OK : static_cast<char *>(NGX_CONF_ERROR);
    }

    if (equals(cmd, "accept_terms_of_service")) {
        if (!want_args(0, 0)) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        issuer->accept_tos = 1;
        return NGX_CONF_OK;
    }

    if (equals(cmd, "account_key")) {
        if (!want_args(1, 1)) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        std::string spec = ngx_http_acme_string(value[1]);
        if (acme::parse_key_type(spec)) {
            return issuer_set_once(cf, &issuer->account_key, value[1]);
        }
        if (spec.rfind("ecdsa:", 0) == 0 || spec.rfind("rsa:", 0) == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid account_key \"%V\": expected %s or a key file", &value[1],
                               key_types_expected);
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        ngx_str_t file = value[1];
        if (full_name(cf, &file) != NGX_OK) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        // Checked here so that nginx -t reports it; the engine reads it again.
        std::string pem;
        int err = acme::read_whole_file(ngx_http_acme_string(file), &pem);
        if (err != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, err, "cannot read account_key \"%s\"", file.data);
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        try {
            acme::PrivateKey::from_pem(pem);
        } catch (const std::exception &e) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid account_key \"%s\": %s", file.data,
                               e.what());
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        return issuer_set_once(cf, &issuer->account_key, file);
    }

    // Several types in order of preference: the engine falls back to the
    // next one when a validation fails.
    if (equals(cmd, "challenge")) {
        if (!want_args(1, NGX_CONF_MAX_ARGS)) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        if (issuer->challenges.nelts != 0) {
            return conf_error(cf, "\"challenge\" is duplicate");
        }
        for (ngx_uint_t i = 1; i < n; i++) {
            auto type = acme::canonical_challenge_type(ngx_http_acme_string(value[i]));
            if (!type) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "unsupported challenge type \"%V\" (supported: %s)", &value[i],
                                   std::string(acme::supported_challenge_types).c_str());
                return static_cast<char *>(NGX_CONF_ERROR);
            }
            auto *types = static_cast<ngx_str_t *>(issuer->challenges.elts);
            for (ngx_uint_t k = 0; k < issuer->challenges.nelts; k++) {
                if (ngx_http_acme_string(types[k]) == *type) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "challenge type \"%V\" is listed twice", &value[i]);
                    return static_cast<char *>(NGX_CONF_ERROR);
                }
            }
            auto *c = static_cast<ngx_str_t *>(ngx_array_push(&issuer->challenges));
            if (c == nullptr) {
                return static_cast<char *>(NGX_CONF_ERROR);
            }
            *c = ngx_http_acme_pstrdup(cf->pool, *type);
            if (c->data == nullptr) {
                return static_cast<char *>(NGX_CONF_ERROR);
            }
        }
        return NGX_CONF_OK;
    }

    if (equals(cmd, "state_path")) {
        if (!want_args(1, 1)) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        if (issuer->state_path.len != 0) {
            return conf_error(cf, "\"state_path\" is duplicate");
        }
        if (equals(value[1], "off")) {
            // nginx-acme keeps no state then. The engine and the workers
            // share files, so they go to a runtime directory (tmpfs), one
            // per configuration file: nothing persists across reboots.
            std::string conf_id =
                acme::hex(acme::sha256(ngx_http_acme_string(cf->cycle->conf_file))).substr(0, 8);
            std::string path = std::string(NGX_HTTP_ACME_RUN_PREFIX "/") + conf_id + "/" +
                               ngx_http_acme_string(issuer->name);
            issuer->state_path = ngx_http_acme_pstrdup(cf->pool, path);
            return issuer->state_path.data ? NGX_CONF_OK : static_cast<char *>(NGX_CONF_ERROR);
        }
        ngx_str_t path = value[1];
        while (path.len > 1 && path.data[path.len - 1] == '/') {
            path.len--;
        }
        if (full_name(cf, &path) != NGX_OK) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        issuer->state_path = path;
        return NGX_CONF_OK;
    }

    if (equals(cmd, "ssl_trusted_certificate")) {
        if (!want_args(1, 1)) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        if (issuer->ssl_trusted_certificate.len != 0) {
            return conf_error(cf, "\"ssl_trusted_certificate\" is duplicate");
        }
        ngx_str_t file = value[1];
        if (full_name(cf, &file) != NGX_OK) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        if (access(reinterpret_cast<const char *>(file.data), R_OK) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               "cannot read ssl_trusted_certificate \"%s\"", file.data);
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        issuer->ssl_trusted_certificate = file;
        return NGX_CONF_OK;
    }

    if (equals(cmd, "ssl_verify")) {
        if (!want_args(1, 1)) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        if (issuer->ssl_verify != NGX_CONF_UNSET) {
            return conf_error(cf, "\"ssl_verify\" is duplicate");
        }
        if (equals(value[1], "on")) {
            issuer->ssl_verify = 1;
        } else if (equals(value[1], "off")) {
            issuer->ssl_verify = 0;
        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"ssl_verify\", it must be \"on\" or "
                               "\"off\"",
                               &value[1]);
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        return NGX_CONF_OK;
    }

    if (equals(cmd, "external_account_key")) {
        if (!want_args(2, 3)) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        return issuer_external_account_key(cf, issuer, value, n);
    }

    if (equals(cmd, "profile")) {
        if (!want_args(1, 2)) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        if (issuer->profile.len != 0) {
            return conf_error(cf, "\"profile\" is duplicate");
        }
        if (value[1].len == 0) {
            return conf_error(cf, "empty profile name in \"profile\"");
        }
        if (n == 3) {
            if (!equals(value[2], "require")) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\" in \"profile\": \"require\" is "
                                   "expected",
                                   &value[2]);
                return static_cast<char *>(NGX_CONF_ERROR);
            }
            issuer->profile_required = 1;
        }
        issuer->profile = value[1];
        return NGX_CONF_OK;
    }

    if (equals(cmd, "preferred_chain")) {
        if (!want_args(1, 1)) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        if (value[1].len == 0) {
            return conf_error(cf, "empty name in \"preferred_chain\"");
        }
        return issuer_set_once(cf, &issuer->preferred_chain, value[1]);
    }

    if (equals(cmd, "common_name_in_csr")) {
        if (!want_args(1, 1)) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        if (issuer->common_name_in_csr != NGX_CONF_UNSET) {
            return conf_error(cf, "\"common_name_in_csr\" is duplicate");
        }
        if (!equals(value[1], "on") && !equals(value[1], "off")) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"common_name_in_csr\", it must be "
                               "\"on\" or \"off\"",
                               &value[1]);
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        issuer->common_name_in_csr = equals(value[1], "on");
        return NGX_CONF_OK;
    }

    if (equals(cmd, "renew_before_expiry")) {
        if (!want_args(1, 1)) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        if (issuer->renew_before.set()) {
            return conf_error(cf, "\"renew_before_expiry\" is duplicate");
        }
        if (!parse_renew_before(value[1], &issuer->renew_before)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid renew_before_expiry \"%V\": %s",
                               &value[1], renew_before_expected);
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "unknown directive \"%V\" in acme_issuer", &cmd);
    return static_cast<char *>(NGX_CONF_ERROR);
}

// ----------------------------------------------------------- acme_certificate

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

char *ngx_http_acme_certificate(ngx_conf_t *cf, ngx_command_t *, void *conf) {
    auto *ascf = static_cast<ngx_http_acme_srv_conf_t *>(conf);
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_acme_module));
    auto *value = static_cast<ngx_str_t *>(cf->args->elts);

    ngx_array_t identifiers;
    if (ngx_array_init(&identifiers, cf->pool, 2, sizeof(ngx_str_t)) != NGX_OK) {
        return static_cast<char *>(NGX_CONF_ERROR);
    }
    std::vector<acme::KeyType> types;
    ngx_str_t profile{0, nullptr};
    acme::RenewBefore renew_before;

    for (ngx_uint_t i = 2; i < cf->args->nelts; i++) {
        if (value[i].len > 4 && ngx_strncmp(value[i].data, "key=", 4) == 0) {
            std::string spec(reinterpret_cast<char *>(value[i].data) + 4, value[i].len - 4);
            auto type = acme::parse_key_type(spec);
            if (!type) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid key type \"%s\" in \"acme_certificate\": expected %s",
                                   spec.c_str(), key_types_expected);
                return static_cast<char *>(NGX_CONF_ERROR);
            }
            if (std::find(types.begin(), types.end(), *type) != types.end()) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "duplicate key type \"%s\" in \"acme_certificate\"",
                                   spec.c_str());
                return static_cast<char *>(NGX_CONF_ERROR);
            }
            types.push_back(*type);
            continue;
        }
        if (value[i].len >= 8 && ngx_strncmp(value[i].data, "profile=", 8) == 0) {
            if (profile.len != 0) {
                return conf_error(cf, "\"profile=\" is duplicate in \"acme_certificate\"");
            }
            if (value[i].len == 8) {
                return conf_error(cf, "empty profile name in \"acme_certificate\"");
            }
            profile = {value[i].len - 8, value[i].data + 8};
            continue;
        }
        if (value[i].len >= 6 && ngx_strncmp(value[i].data, "renew=", 6) == 0) {
            if (renew_before.set()) {
                return conf_error(cf, "\"renew=\" is duplicate in \"acme_certificate\"");
            }
            ngx_str_t spec{value[i].len - 6, value[i].data + 6};
            if (!parse_renew_before(spec, &renew_before)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\" in \"acme_certificate\": %s", &value[i],
                                   renew_before_expected);
                return static_cast<char *>(NGX_CONF_ERROR);
            }
            continue;
        }
        std::string error;
        ngx_int_t rc = push_identifier(cf, &identifiers, ngx_http_acme_string(value[i]), &error);
        if (rc == NGX_ERROR) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        if (rc == NGX_DECLINED) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s in \"acme_certificate\"", error.c_str());
            return static_cast<char *>(NGX_CONF_ERROR);
        }
    }
    if (types.empty()) {
        types.push_back(acme::KeyType::ecdsa256);
    }

    if (ascf->certs == NGX_CONF_UNSET_PTR) {
        ascf->certs = ngx_array_create(cf->pool, 1, sizeof(ngx_http_acme_cert_t *));
        if (ascf->certs == nullptr) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
    }

    // Several key= order one certificate per key type, for the same names.
    for (acme::KeyType type : types) {
        auto *certs = static_cast<ngx_http_acme_cert_t **>(ascf->certs->elts);
        for (ngx_uint_t i = 0; i < ascf->certs->nelts; i++) {
            if (certs[i]->key_type == type) {
                return conf_error(cf, "duplicate \"acme_certificate\" with the same key type");
            }
        }
        ngx_http_acme_cert_t *cert = make_certificate(cf, value[1], identifiers, type, profile);
        if (cert == nullptr) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        cert->renew_before = renew_before;
        auto **slot = static_cast<ngx_http_acme_cert_t **>(ngx_array_push(ascf->certs));
        auto **all = static_cast<ngx_http_acme_cert_t **>(ngx_array_push(&amcf->certs));
        if (slot == nullptr || all == nullptr) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        *slot = cert;
        *all = cert;

        // nginx's ssl module creates the server's SSL context, and passes
        // its "no ssl_certificate" check, only for servers with
        // certificates: give it an in-memory fallback now; merge puts the
        // stored one in its place.
        if (ngx_http_acme_add_fallback(cf, amcf, type) != NGX_CONF_OK) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
    }
    return NGX_CONF_OK;
}

// Identifiers from server_name, as nginx-acme derives them.
ngx_int_t identifiers_from_server_names(ngx_conf_t *cf, ngx_http_acme_cert_t *cert) {
    auto *cscf = static_cast<ngx_http_core_srv_conf_t *>(
        ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module));
    auto *names = static_cast<ngx_http_server_name_t *>(cscf->server_names.elts);

    for (ngx_uint_t i = 0; i < cscf->server_names.nelts; i++) {
        std::string name = ngx_http_acme_string(names[i].name);
        if (name.empty()) {
            continue;
        }
#if (NGX_PCRE)
        if (names[i].regex != nullptr) {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                          "acme_certificate in %s:%ui: regular expression server_name \"%s\" "
                          "is skipped",
                          cert->file, cert->line, name.c_str());
            continue;
        }
#endif
        std::vector<std::string> texts;
        if (name[0] == '.') {
            texts.push_back(name.substr(1));
            texts.push_back("www" + name);
        } else {
            texts.push_back(name);
        }
        for (const auto &text : texts) {
            std::string error;
            ngx_int_t rc = push_identifier(cf, &cert->identifiers, text, &error);
            if (rc == NGX_ERROR) {
                return NGX_ERROR;
            }
            if (rc == NGX_DECLINED) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "server_name \"%s\" cannot be used by acme_certificate in "
                              "%s:%ui: %s",
                              name.c_str(), cert->file, cert->line, error.c_str());
                return NGX_ERROR;
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

char *merge_certificates(ngx_conf_t *cf, void *child) {
    auto *conf = static_cast<ngx_http_acme_srv_conf_t *>(child);
    if (conf->certs == NGX_CONF_UNSET_PTR || conf->certs == nullptr) {
        conf->certs = nullptr;
        return NGX_CONF_OK;
    }
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_acme_module));
    auto *sscf = static_cast<ngx_http_ssl_srv_conf_t *>(
        ngx_http_conf_get_module_srv_conf(cf, ngx_http_ssl_module));

    // `ssl_certificate $acme_certificate` (nginx-acme's way): serve from
    // the SSL context like any other acme server, not per handshake.
    if (sscf->ssl.ctx != nullptr && sscf->certificate_values != nullptr &&
        ngx_http_acme_take_over_certificates(cf, amcf, sscf) != NGX_OK) {
        return static_cast<char *>(NGX_CONF_ERROR);
    }

    auto **certs = static_cast<ngx_http_acme_cert_t **>(conf->certs->elts);
    for (ngx_uint_t i = 0; i < conf->certs->nelts; i++) {
        ngx_http_acme_cert_t *cert = certs[i];
        if (!cert->explicit_identifiers && identifiers_from_server_names(cf, cert) != NGX_OK) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }

        // Issuers may be defined after the servers that use them, so the
        // issuer is looked up here, once the whole http block is parsed.
        cert->issuer = find_issuer(amcf, cert->issuer_name);
        if (cert->issuer == nullptr) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "unknown acme issuer \"%V\" in %s:%ui",
                          &cert->issuer_name, cert->file, cert->line);
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        cert->issuer->used = 1;

        std::vector<acme::Identifier> ids;
        auto *values = static_cast<ngx_str_t *>(cert->identifiers.elts);
        for (ngx_uint_t k = 0; k < cert->identifiers.nelts; k++) {
            ids.push_back(acme::parse_identifier(ngx_http_acme_string(values[k])));
            if (ids.back().value.rfind("*.", 0) == 0) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "wildcard identifier \"%V\" in %s:%ui needs the dns-01 challenge, "
                              "which issuer \"%V\" does not use",
                              &values[k], cert->file, cert->line, &cert->issuer->name);
                return static_cast<char *>(NGX_CONF_ERROR);
            }
        }
        cert->basename =
            ngx_http_acme_pstrdup(cf->pool, acme::certificate_basename(ids, cert->key_type));
        if (cert->basename.data == nullptr) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }

        if (sscf->ssl.ctx == nullptr) {
            continue;
        }
        if (ngx_http_acme_serve(cf, amcf, cert, &cert->issuer->state_path, sscf->ssl.ctx) !=
            NGX_OK) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
    }
    if (sscf->ssl.ctx != nullptr && ngx_http_acme_session_context(cf, conf, sscf) != NGX_OK) {
        return static_cast<char *>(NGX_CONF_ERROR);
    }
    return NGX_CONF_OK;
}

char *ngx_http_acme_merge_srv_conf(ngx_conf_t *cf, void *, void *child) {
    try {
        char *rv = merge_certificates(cf, child);
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
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        return NGX_CONF_OK;
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "acme: %s", e.what());
        return static_cast<char *>(NGX_CONF_ERROR);
    }
}

// ----------------------------------------------------------- acme_shared_zone

char *ngx_http_acme_shared_zone(ngx_conf_t *cf, ngx_command_t *, void *conf) {
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(conf);
    auto *value = static_cast<ngx_str_t *>(cf->args->elts);

    if (amcf->zone_size != NGX_CONF_UNSET_SIZE) {
        return const_cast<char *>("is duplicate");
    }
    if (value[1].len <= 5 || ngx_strncmp(value[1].data, "zone=", 5) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\": zone=NAME:SIZE is expected", &value[1]);
        return static_cast<char *>(NGX_CONF_ERROR);
    }
    ngx_str_t spec{value[1].len - 5, value[1].data + 5};
    u_char *colon = static_cast<u_char *>(ngx_strlchr(spec.data, spec.data + spec.len, ':'));
    if (colon == nullptr || colon == spec.data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid zone \"%V\": zone=NAME:SIZE is expected",
                           &value[1]);
        return static_cast<char *>(NGX_CONF_ERROR);
    }
    ngx_str_t size_text{static_cast<size_t>(spec.data + spec.len - colon - 1), colon + 1};
    ssize_t size = ngx_parse_size(&size_text);
    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid zone size \"%V\"", &value[1]);
        return static_cast<char *>(NGX_CONF_ERROR);
    }
    if (static_cast<size_t>(size) < acme::SharedState::min_size() + 16 * ngx_pagesize) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "zone \"%V\" is too small: at least %uzk",
                           &value[1],
                           (acme::SharedState::min_size() + 16 * ngx_pagesize) / 1024 + 1);
        return static_cast<char *>(NGX_CONF_ERROR);
    }
    amcf->zone_name.len = colon - spec.data;
    amcf->zone_name.data = spec.data;
    amcf->zone_size = size;
    return NGX_CONF_OK;
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

// Servers with the same names, key type and issuer share one certificate,
// ordered with the settings of the first of them: say so when others differ.
void warn_shared_certificates(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf) {
    auto **certs = static_cast<ngx_http_acme_cert_t **>(amcf->certs.elts);
    for (ngx_uint_t i = 1; i < amcf->certs.nelts; i++) {
        for (ngx_uint_t k = 0; k < i; k++) {
            const ngx_http_acme_cert_t &a = *certs[k], &b = *certs[i];
            if (a.issuer != b.issuer ||
                ngx_http_acme_string(a.basename) != ngx_http_acme_string(b.basename)) {
                continue;
            }
            if (ngx_http_acme_string(a.profile) != ngx_http_acme_string(b.profile) ||
                a.renew_before.seconds != b.renew_before.seconds ||
                a.renew_before.percent != b.renew_before.percent) {
                ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                              "acme_certificate in %s:%ui shares its certificate with the one in "
                              "%s:%ui, whose profile= and renew= are used",
                              b.file, b.line, a.file, a.line);
            }
            break;
        }
    }
}

ngx_int_t ngx_http_acme_postconfiguration(ngx_conf_t *cf) {
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_acme_module));

    // Two issuers writing one state directory would fight over its lock.
    auto **issuers = static_cast<ngx_http_acme_issuer_t **>(amcf->issuers.elts);
    for (ngx_uint_t i = 0; i < amcf->issuers.nelts; i++) {
        for (ngx_uint_t k = 0; k < i; k++) {
            if (ngx_http_acme_string(issuers[i]->state_path) ==
                ngx_http_acme_string(issuers[k]->state_path)) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "acme_issuer \"%V\" in %s:%ui uses the state_path \"%V\" of "
                              "acme_issuer \"%V\"",
                              &issuers[i]->name, issuers[i]->file, issuers[i]->line,
                              &issuers[i]->state_path, &issuers[k]->name);
                return NGX_ERROR;
            }
        }
    }

    if (amcf->certs.nelts == 0) {
        return NGX_OK;
    }
    warn_shared_certificates(cf, amcf);
    if (collect_resolvers(cf, amcf) != NGX_OK || ngx_http_acme_add_zone(cf, amcf) != NGX_OK ||
        ngx_http_acme_http01_init(cf) != NGX_OK || ngx_http_acme_add_helper(cf, amcf) != NGX_OK) {
        return NGX_ERROR;
    }
    return NGX_OK;
}

ngx_int_t ngx_http_acme_init_process(ngx_cycle_t *cycle) {
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
