// The acme_issuer { } block: a table of its directives and one small handler
// each. They only validate and record (nginx -t runs all of them).
#include <unistd.h>

#include <cctype>
#include <exception>

#include "acme/base64url.h"
#include "acme/challenge.h"
#include "acme/file_io.h"
#include "ngx/ngx_http_acme.h"

namespace {

char *ngx_http_acme_issuer_directive(ngx_conf_t *cf, ngx_command_t *dummy, void *conf);
char *ngx_http_acme_issuer_uri(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_acme_issuer_contact(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_acme_issuer_accept_tos(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_acme_issuer_account_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_acme_issuer_challenge(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_acme_issuer_state_path(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_acme_issuer_trusted(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_acme_issuer_flag(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_acme_issuer_eab(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_acme_issuer_profile(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_acme_issuer_preferred_chain(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_acme_issuer_renew_before(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_acme_issuer_count(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

// The largest value of max_concurrent_orders and background_rate (the
// post field of their entries).
ngx_uint_t max_concurrent_orders_limit = 256;
ngx_uint_t background_rate_limit = 1000;

// The block is parsed with its own handler, as nginx parses `types { }` and
// `map { }`, not among every module's directives: so the type field holds
// only argument counts, and each directive keeps its own messages (unknown
// ones included). The offset is used by the shared on/off handler.
ngx_command_t ngx_http_acme_issuer_commands[] = {
    {ngx_string("uri"), NGX_CONF_TAKE1, ngx_http_acme_issuer_uri, 0, 0, nullptr},
    {ngx_string("contact"), NGX_CONF_TAKE1, ngx_http_acme_issuer_contact, 0, 0, nullptr},
    {ngx_string("accept_terms_of_service"), NGX_CONF_NOARGS, ngx_http_acme_issuer_accept_tos, 0, 0,
     nullptr},
    {ngx_string("account_key"), NGX_CONF_TAKE1, ngx_http_acme_issuer_account_key, 0, 0, nullptr},
    {ngx_string("challenge"), NGX_CONF_1MORE, ngx_http_acme_issuer_challenge, 0, 0, nullptr},
    {ngx_string("state_path"), NGX_CONF_TAKE1, ngx_http_acme_issuer_state_path, 0, 0, nullptr},
    {ngx_string("ssl_trusted_certificate"), NGX_CONF_TAKE1, ngx_http_acme_issuer_trusted, 0, 0,
     nullptr},
    {ngx_string("ssl_verify"), NGX_CONF_TAKE1, ngx_http_acme_issuer_flag, 0,
     offsetof(ngx_http_acme_issuer_t, ssl_verify), nullptr},
    {ngx_string("external_account_key"), NGX_CONF_TAKE23, ngx_http_acme_issuer_eab, 0, 0, nullptr},
    {ngx_string("profile"), NGX_CONF_TAKE12, ngx_http_acme_issuer_profile, 0, 0, nullptr},
    {ngx_string("preferred_chain"), NGX_CONF_TAKE1, ngx_http_acme_issuer_preferred_chain, 0, 0,
     nullptr},
    {ngx_string("common_name_in_csr"), NGX_CONF_TAKE1, ngx_http_acme_issuer_flag, 0,
     offsetof(ngx_http_acme_issuer_t, common_name_in_csr), nullptr},
    {ngx_string("event_command"), NGX_CONF_1MORE, ngx_http_acme_issuer_event_command, 0, 0,
     nullptr},
    {ngx_string("acme_event_command"), NGX_CONF_1MORE, ngx_http_acme_issuer_event_command, 0, 0,
     nullptr},
    {ngx_string("renew_before_expiry"), NGX_CONF_TAKE1, ngx_http_acme_issuer_renew_before, 0, 0,
     nullptr},
    {ngx_string("max_concurrent_orders"), NGX_CONF_TAKE1, ngx_http_acme_issuer_count, 0,
     offsetof(ngx_http_acme_issuer_t, max_concurrent_orders), &max_concurrent_orders_limit},
    {ngx_string("background_rate"), NGX_CONF_TAKE1, ngx_http_acme_issuer_count, 0,
     offsetof(ngx_http_acme_issuer_t, background_rate), &background_rate_limit},
    ngx_null_command};

// The argument counts a type allows, as ngx_conf_handler checks them.
const ngx_uint_t argument_number[] = {NGX_CONF_NOARGS, NGX_CONF_TAKE1, NGX_CONF_TAKE2,
                                      NGX_CONF_TAKE3,  NGX_CONF_TAKE4, NGX_CONF_TAKE5,
                                      NGX_CONF_TAKE6,  NGX_CONF_TAKE7};

bool arguments_fit(const ngx_command_t &cmd, ngx_uint_t argc) {
    if (cmd.type & NGX_CONF_1MORE) {
        return argc >= 1 && argc <= NGX_CONF_MAX_ARGS;
    }
    return argc < sizeof(argument_number) / sizeof(argument_number[0]) &&
           (cmd.type & argument_number[argc]) != 0;
}

ngx_str_t *arguments(ngx_conf_t *cf) { return static_cast<ngx_str_t *>(cf->args->elts); }

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

char *duplicate(ngx_conf_t *cf, ngx_command_t *cmd) {
    return ngx_http_acme_conf_error(cf, 0, "\"%V\" is duplicate", &cmd->name);
}

char *set_once(ngx_conf_t *cf, ngx_command_t *cmd, ngx_str_t *field, const ngx_str_t &value) {
    if (field->len != 0) {
        return duplicate(cf, cmd);
    }
    *field = value;
    return NGX_CONF_OK;
}

// Directives inside acme_issuer { }: found in the table, counted, handled.
char *ngx_http_acme_issuer_directive(ngx_conf_t *cf, ngx_command_t *, void *conf) {
    ngx_str_t *value = arguments(cf);
    for (ngx_command_t *table : {ngx_http_acme_issuer_commands, ngx_http_acme_dns_commands}) {
        for (ngx_command_t *cmd = table; cmd->name.len != 0; cmd++) {
            if (!ngx_http_acme_str_eq(cmd->name, value[0])) {
                continue;
            }
            if (!arguments_fit(*cmd, cf->args->nelts - 1)) {
                return ngx_http_acme_conf_error(
                    cf, 0, "invalid number of arguments in \"%V\" directive", &value[0]);
            }
            try {
                return cmd->set(cf, cmd, conf);
            } catch (const std::exception &e) {
                return ngx_http_acme_conf_error(cf, 0, "acme: %s", e.what());
            }
        }
    }
    return ngx_http_acme_conf_error(cf, 0, "unknown directive \"%V\" in acme_issuer", &value[0]);
}

// CAs by name: uri letsencrypt; those marked need external_account_key.
struct named_ca_t {
    ngx_str_t name;
    ngx_str_t directory;
    bool needs_eab;
};

const named_ca_t named_cas[] = {
    {ngx_string("letsencrypt"), ngx_string("https://acme-v02.api.letsencrypt.org/directory"),
     false},
    {ngx_string("letsencrypt-staging"),
     ngx_string("https://acme-staging-v02.api.letsencrypt.org/directory"), false},
    {ngx_string("zerossl"), ngx_string("https://acme.zerossl.com/v2/DV90"), true},
    {ngx_string("google"), ngx_string("https://dv.acme-v02.api.pki.goog/directory"), true},
    {ngx_string("google-staging"), ngx_string("https://dv.acme-v02.test-api.pki.goog/directory"),
     true},
};

char *ngx_http_acme_issuer_uri(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    auto *issuer = static_cast<ngx_http_acme_issuer_t *>(conf);
    ngx_str_t *value = arguments(cf);
    for (const named_ca_t &ca : named_cas) {
        if (ngx_http_acme_str_eq(ca.name, value[1])) {
            issuer->uri_name = ca.name;
            issuer->needs_eab = ca.needs_eab;
            return set_once(cf, cmd, &issuer->uri, ca.directory);
        }
    }
    if (ngx_strncasecmp(value[1].data, (u_char *)"https://", 8) != 0 &&
        ngx_strncasecmp(value[1].data, (u_char *)"http://", 7) != 0) {
        return ngx_http_acme_conf_error(
            cf, 0,
            "invalid uri \"%V\": an http:// or https:// URL, or letsencrypt, "
            "letsencrypt-staging, zerossl, google or google-staging is expected",
            &value[1]);
    }
    return set_once(cf, cmd, &issuer->uri, value[1]);
}

char *ngx_http_acme_issuer_contact(ngx_conf_t *cf, ngx_command_t *, void *conf) {
    auto *issuer = static_cast<ngx_http_acme_issuer_t *>(conf);
    auto *c = static_cast<ngx_str_t *>(ngx_array_push(&issuer->contacts));
    if (c == nullptr) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    std::string contact = ngx_http_acme_string(arguments(cf)[1]);
    if (contact.find(':') == std::string::npos) {
        contact = "mailto:" + contact;
    }
    *c = ngx_http_acme_pstrdup(cf->pool, contact);
    return c->data ? NGX_CONF_OK : NGX_HTTP_ACME_CONF_ERROR;
}

char *ngx_http_acme_issuer_accept_tos(ngx_conf_t *, ngx_command_t *, void *conf) {
    static_cast<ngx_http_acme_issuer_t *>(conf)->accept_tos = 1;
    return NGX_CONF_OK;
}

// A key type to generate, or a key file, which is read here so that nginx -t
// reports a bad one; the engine reads it again.
char *ngx_http_acme_issuer_account_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    auto *issuer = static_cast<ngx_http_acme_issuer_t *>(conf);
    ngx_str_t *value = arguments(cf);
    std::string spec = ngx_http_acme_string(value[1]);
    if (acme::parse_key_type(spec)) {
        return set_once(cf, cmd, &issuer->account_key, value[1]);
    }
    if (spec.rfind("ecdsa:", 0) == 0 || spec.rfind("rsa:", 0) == 0) {
        return ngx_http_acme_conf_error(cf, 0,
                                        "invalid account_key \"%V\": expected %s or a key file",
                                        &value[1], ngx_http_acme_key_types_expected);
    }
    ngx_str_t file = value[1];
    if (full_name(cf, &file) != NGX_OK) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    std::string pem;
    int err = acme::read_whole_file(ngx_http_acme_string(file), &pem);
    if (err != 0) {
        return ngx_http_acme_conf_error(cf, err, "cannot read account_key \"%s\"", file.data);
    }
    try {
        acme::PrivateKey::from_pem(pem);
    } catch (const std::exception &e) {
        return ngx_http_acme_conf_error(cf, 0, "invalid account_key \"%s\": %s", file.data,
                                        e.what());
    }
    return set_once(cf, cmd, &issuer->account_key, file);
}

// Several types in order of preference: the engine falls back to the next
// one when a validation fails.
char *ngx_http_acme_issuer_challenge(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    auto *issuer = static_cast<ngx_http_acme_issuer_t *>(conf);
    ngx_str_t *value = arguments(cf);
    if (issuer->challenges.nelts != 0) {
        return duplicate(cf, cmd);
    }
    for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
        auto type = acme::canonical_challenge_type(ngx_http_acme_string(value[i]));
        if (!type) {
            return ngx_http_acme_conf_error(
                cf, 0, "unsupported challenge type \"%V\" (supported: %s)", &value[i],
                std::string(acme::supported_challenge_types).c_str());
        }
        auto *types = static_cast<ngx_str_t *>(issuer->challenges.elts);
        for (ngx_uint_t k = 0; k < issuer->challenges.nelts; k++) {
            if (ngx_http_acme_string(types[k]) == *type) {
                return ngx_http_acme_conf_error(cf, 0, "challenge type \"%V\" is listed twice",
                                                &value[i]);
            }
        }
        auto *c = static_cast<ngx_str_t *>(ngx_array_push(&issuer->challenges));
        if (c == nullptr) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
        *c = ngx_http_acme_pstrdup(cf->pool, *type);
        if (c->data == nullptr) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
    }
    return NGX_CONF_OK;
}

char *ngx_http_acme_issuer_state_path(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    auto *issuer = static_cast<ngx_http_acme_issuer_t *>(conf);
    ngx_str_t *value = arguments(cf);
    if (issuer->state_path.len != 0) {
        return duplicate(cf, cmd);
    }
    if (equals(value[1], "off")) {
        // nginx-acme keeps no state then. The engine and the workers share
        // files, so they go to a runtime directory (tmpfs), one per
        // configuration file: nothing persists across reboots.
        std::string conf_id =
            acme::hex(acme::sha256(ngx_http_acme_string(cf->cycle->conf_file))).substr(0, 8);
        std::string path = std::string(NGX_HTTP_ACME_RUN_PREFIX "/") + conf_id + "/" +
                           ngx_http_acme_string(issuer->name);
        issuer->state_path = ngx_http_acme_pstrdup(cf->pool, path);
        return issuer->state_path.data ? NGX_CONF_OK : NGX_HTTP_ACME_CONF_ERROR;
    }
    ngx_str_t path = value[1];
    while (path.len > 1 && path.data[path.len - 1] == '/') {
        path.len--;
    }
    if (full_name(cf, &path) != NGX_OK) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    issuer->state_path = path;
    return NGX_CONF_OK;
}

char *ngx_http_acme_issuer_trusted(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    auto *issuer = static_cast<ngx_http_acme_issuer_t *>(conf);
    if (issuer->ssl_trusted_certificate.len != 0) {
        return duplicate(cf, cmd);
    }
    ngx_str_t file = arguments(cf)[1];
    if (full_name(cf, &file) != NGX_OK) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    if (access(reinterpret_cast<const char *>(file.data), R_OK) != 0) {
        return ngx_http_acme_conf_error(cf, ngx_errno, "cannot read ssl_trusted_certificate \"%s\"",
                                        file.data);
    }
    issuer->ssl_trusted_certificate = file;
    return NGX_CONF_OK;
}

// ssl_verify and common_name_in_csr: on or off, once.
char *ngx_http_acme_issuer_flag(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    auto *flag = reinterpret_cast<ngx_flag_t *>(static_cast<char *>(conf) + cmd->offset);
    ngx_str_t *value = arguments(cf);
    if (*flag != NGX_CONF_UNSET) {
        return duplicate(cf, cmd);
    }
    if (!equals(value[1], "on") && !equals(value[1], "off")) {
        return ngx_http_acme_conf_error(
            cf, 0, "invalid value \"%V\" in \"%V\", it must be \"on\" or \"off\"", &value[1],
            &cmd->name);
    }
    *flag = equals(value[1], "on");
    return NGX_CONF_OK;
}

// external_account_key KID FILE|data:KEY [alg=HS256|HS384|HS512]. The MAC
// key is read here, in the master, so the helper needs no access to the
// file; no message quotes it.
char *ngx_http_acme_issuer_eab(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    auto *issuer = static_cast<ngx_http_acme_issuer_t *>(conf);
    ngx_str_t *value = arguments(cf);
    if (issuer->eab_kid.len != 0) {
        return duplicate(cf, cmd);
    }
    if (value[1].len == 0) {
        return ngx_http_acme_conf_error(cf, 0, "empty key identifier in \"external_account_key\"");
    }
    ngx_str_set(&issuer->eab_alg, "HS256");
    if (cf->args->nelts == 4) {
        if (!equals(value[3], "alg=HS256") && !equals(value[3], "alg=HS384") &&
            !equals(value[3], "alg=HS512")) {
            return ngx_http_acme_conf_error(cf, 0,
                                            "invalid parameter \"%V\" in \"external_account_key\": "
                                            "alg=HS256, alg=HS384 or alg=HS512 is expected",
                                            &value[3]);
        }
        issuer->eab_alg = {value[3].len - 4, value[3].data + 4};
    }

    std::string text;
    if (value[2].len >= 5 && ngx_strncmp(value[2].data, "data:", 5) == 0) {
        text.assign(reinterpret_cast<char *>(value[2].data) + 5, value[2].len - 5);
    } else {
        ngx_str_t file = value[2];
        if (full_name(cf, &file) != NGX_OK) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
        int err = acme::read_whole_file(ngx_http_acme_string(file), &text);
        if (err != 0) {
            return ngx_http_acme_conf_error(cf, err, "cannot read external_account_key \"%s\"",
                                            file.data);
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
        return ngx_http_acme_conf_error(cf, 0,
                                        "invalid MAC key in \"external_account_key\": a "
                                        "base64url-encoded key is expected");
    }
    // RFC 7518 section 3.2: the key is at least as long as the hash. Not
    // enforced for the default HS256, whose keys come from the CA as they are.
    size_t min_len = equals(issuer->eab_alg, "HS512")   ? 64
                     : equals(issuer->eab_alg, "HS384") ? 48
                                                        : 0;
    if (key.size() < min_len) {
        return ngx_http_acme_conf_error(cf, 0,
                                        "MAC key in \"external_account_key\" is too short for %V: "
                                        "%uz bytes, at least %uz are needed",
                                        &issuer->eab_alg, key.size(), min_len);
    }
    issuer->eab_kid = value[1];
    issuer->eab_mac_key = ngx_http_acme_pstrdup(cf->pool, key);
    return issuer->eab_mac_key.data ? NGX_CONF_OK : NGX_HTTP_ACME_CONF_ERROR;
}

char *ngx_http_acme_issuer_profile(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    auto *issuer = static_cast<ngx_http_acme_issuer_t *>(conf);
    ngx_str_t *value = arguments(cf);
    if (issuer->profile.len != 0) {
        return duplicate(cf, cmd);
    }
    if (value[1].len == 0) {
        return ngx_http_acme_conf_error(cf, 0, "empty profile name in \"profile\"");
    }
    if (cf->args->nelts == 3) {
        if (!equals(value[2], "require")) {
            return ngx_http_acme_conf_error(
                cf, 0, "invalid parameter \"%V\" in \"profile\": \"require\" is expected",
                &value[2]);
        }
        issuer->profile_required = 1;
    }
    issuer->profile = value[1];
    return NGX_CONF_OK;
}

char *ngx_http_acme_issuer_preferred_chain(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    auto *issuer = static_cast<ngx_http_acme_issuer_t *>(conf);
    ngx_str_t *value = arguments(cf);
    if (value[1].len == 0) {
        return ngx_http_acme_conf_error(cf, 0, "empty name in \"preferred_chain\"");
    }
    return set_once(cf, cmd, &issuer->preferred_chain, value[1]);
}

char *ngx_http_acme_issuer_renew_before(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    auto *issuer = static_cast<ngx_http_acme_issuer_t *>(conf);
    ngx_str_t *value = arguments(cf);
    if (issuer->renew_before.set()) {
        return duplicate(cf, cmd);
    }
    if (!ngx_http_acme_parse_renew_before(value[1], &issuer->renew_before)) {
        return ngx_http_acme_conf_error(cf, 0, "invalid renew_before_expiry \"%V\": %s", &value[1],
                                        ngx_http_acme_renew_before_expected);
    }
    return NGX_CONF_OK;
}

// max_concurrent_orders and background_rate: a number from 1 to the
// entry's limit, once.
char *ngx_http_acme_issuer_count(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    auto *number = reinterpret_cast<ngx_int_t *>(static_cast<char *>(conf) + cmd->offset);
    ngx_uint_t limit = *static_cast<ngx_uint_t *>(cmd->post);
    ngx_str_t *value = arguments(cf);
    if (*number != NGX_CONF_UNSET) {
        return duplicate(cf, cmd);
    }
    ngx_int_t n = ngx_atoi(value[1].data, value[1].len);
    if (n < 1 || static_cast<ngx_uint_t>(n) > limit) {
        return ngx_http_acme_conf_error(
            cf, 0, "invalid value \"%V\" in \"%V\", it must be a number from 1 to %ui", &value[1],
            &cmd->name, limit);
    }
    *number = n;
    return NGX_CONF_OK;
}

// What the block leaves unset, once it is parsed.
char *issuer_defaults(ngx_conf_t *cf, ngx_http_acme_issuer_t *issuer) {
    ngx_conf_init_value(issuer->accept_tos, 0);
    ngx_conf_init_value(issuer->ssl_verify, 1);
    ngx_conf_init_value(issuer->common_name_in_csr, 0);
    ngx_conf_init_value(issuer->max_concurrent_orders, 16);  // the engine's default
    ngx_conf_init_value(issuer->background_rate, 4);
    if (issuer->account_key.len == 0) {
        ngx_str_set(&issuer->account_key, "ecdsa:256");
    }
    if (issuer->challenges.nelts == 0) {
        auto *c = static_cast<ngx_str_t *>(ngx_array_push(&issuer->challenges));
        if (c == nullptr) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
        ngx_str_set(c, "http-01");
    }
    if (issuer->state_path.len == 0) {
        std::string path =
            std::string(NGX_HTTP_ACME_STATE_PREFIX "/") + ngx_http_acme_string(issuer->name);
        issuer->state_path = ngx_http_acme_pstrdup(cf->pool, path);
        if (issuer->state_path.data == nullptr) {
            return NGX_HTTP_ACME_CONF_ERROR;
        }
    }
    return NGX_CONF_OK;
}

char *issuer_block(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf) {
    ngx_str_t name = arguments(cf)[1];
    if (ngx_http_acme_find_issuer(amcf, name) != nullptr) {
        return ngx_http_acme_conf_error(cf, 0, "duplicate acme_issuer \"%V\"", &name);
    }
    for (size_t i = 0; i < name.len; i++) {
        u_char c = name.data[i];
        if (!(isalnum(c) || c == '-' || c == '_' || c == '.')) {
            return ngx_http_acme_conf_error(cf, 0,
                                            "invalid acme_issuer name \"%V\": use letters, "
                                            "digits, \"-\", \"_\" and \".\"",
                                            &name);
        }
    }

    auto *issuer = static_cast<ngx_http_acme_issuer_t *>(
        ngx_pcalloc(cf->pool, sizeof(ngx_http_acme_issuer_t)));
    if (issuer == nullptr ||
        ngx_array_init(&issuer->contacts, cf->pool, 1, sizeof(ngx_str_t)) != NGX_OK ||
        ngx_array_init(&issuer->challenges, cf->pool, 1, sizeof(ngx_str_t)) != NGX_OK) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    issuer->name = name;
    issuer->accept_tos = NGX_CONF_UNSET;
    issuer->ssl_verify = NGX_CONF_UNSET;
    issuer->common_name_in_csr = NGX_CONF_UNSET;
    issuer->max_concurrent_orders = NGX_CONF_UNSET;
    issuer->background_rate = NGX_CONF_UNSET;
    issuer->file = cf->conf_file->file.name.data;
    issuer->line = cf->conf_file->line;

    auto **slot = static_cast<ngx_http_acme_issuer_t **>(ngx_array_push(&amcf->issuers));
    if (slot == nullptr) {
        return NGX_HTTP_ACME_CONF_ERROR;
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

    // Found at the end of the block, reported at its start.
    if (issuer->uri.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "acme_issuer \"%V\" has no \"uri\" in %s:%ui",
                      &name, issuer->file, issuer->line);
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    if (issuer->needs_eab && issuer->eab_kid.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "acme_issuer \"%V\" in %s:%ui: uri %V needs \"external_account_key\" "
                      "(the CA gives the key identifier and MAC key with the account)",
                      &name, issuer->file, issuer->line, &issuer->uri_name);
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    if (issuer_defaults(cf, issuer) != NGX_CONF_OK) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    return ngx_http_acme_dns_check(cf, issuer);
}

}  // namespace

ngx_http_acme_issuer_t *ngx_http_acme_find_issuer(ngx_http_acme_main_conf_t *amcf,
                                                  const ngx_str_t &name) {
    auto **issuers = static_cast<ngx_http_acme_issuer_t **>(amcf->issuers.elts);
    for (ngx_uint_t i = 0; i < amcf->issuers.nelts; i++) {
        if (ngx_http_acme_str_eq(issuers[i]->name, name)) {
            return issuers[i];
        }
    }
    return nullptr;
}

char *ngx_http_acme_issuer_block(ngx_conf_t *cf, ngx_command_t *, void *conf) {
    try {
        return issuer_block(cf, static_cast<ngx_http_acme_main_conf_t *>(conf));
    } catch (const std::exception &e) {
        return ngx_http_acme_conf_error(cf, 0, "acme: %s", e.what());
    }
}
