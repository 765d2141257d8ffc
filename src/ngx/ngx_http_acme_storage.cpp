// acme_storage: a Redis store shared by several nginx nodes (docs/cluster.md).
// The URL and parameters are checked here, so that nginx -t names what is
// wrong; the helper's engine gets them as an acme::RedisTarget.
#include <new>

#include "acme/file_io.h"
#include "acme/redis_url.h"
#include "acme/sealed_value.h"
#include "ngx/ngx_http_acme.h"

namespace {

void destroy_target(void *data) { static_cast<acme::RedisTarget *>(data)->~RedisTarget(); }

bool starts_with(const ngx_str_t &s, const char *prefix, std::string *rest) {
    size_t n = ngx_strlen(prefix);
    if (s.len < n || ngx_strncmp(s.data, prefix, n) != 0) {
        return false;
    }
    rest->assign(reinterpret_cast<const char *>(s.data) + n, s.len - n);
    return true;
}

}  // namespace

char *ngx_http_acme_storage(ngx_conf_t *cf, ngx_command_t *, void *conf) {
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(conf);
    auto *value = static_cast<ngx_str_t *>(cf->args->elts);
    if (amcf->storage != nullptr) {
        return const_cast<char *>("is duplicate");
    }
    acme::RedisTarget target;
    try {
        target = acme::parse_redis_url(ngx_http_acme_string(value[1]));
    } catch (const std::exception &e) {
        return ngx_http_acme_conf_error(cf, 0, "invalid acme_storage URL: %s", e.what());
    }
    bool have_password_file = false;
    for (ngx_uint_t i = 2; i < cf->args->nelts; i++) {
        std::string arg;
        if (starts_with(value[i], "prefix=", &arg)) {
            if (!acme::valid_redis_prefix(arg)) {
                return ngx_http_acme_conf_error(
                    cf, 0,
                    "invalid acme_storage prefix \"%s\": 1 to 128 printable characters without "
                    "spaces, \"*?[]{}\" or \"\\\"",
                    arg.c_str());
            }
            target.prefix = arg;
        } else if (starts_with(value[i], "password_file=", &arg)) {
            if (!target.password.empty() || have_password_file) {
                return ngx_http_acme_conf_error(
                    cf, 0, "acme_storage has a password in the URL and a password_file");
            }
            ngx_str_t name = value[i];
            name.data += sizeof("password_file=") - 1;
            name.len -= sizeof("password_file=") - 1;
            if (name.len == 0 || ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
                return ngx_http_acme_conf_error(cf, 0, "invalid acme_storage password_file");
            }
            std::string path = ngx_http_acme_string(name);
            try {
                target.password = acme::read_file(path);
            } catch (const std::exception &e) {
                return ngx_http_acme_conf_error(cf, 0, "acme_storage password_file: %s", e.what());
            }
            // One line, as editors and `echo` write it.
            while (!target.password.empty() &&
                   (target.password.back() == '\n' || target.password.back() == '\r')) {
                target.password.pop_back();
            }
            if (target.password.empty()) {
                return ngx_http_acme_conf_error(cf, 0, "acme_storage password_file \"%s\" is empty",
                                                path.c_str());
            }
            have_password_file = true;
        } else if (starts_with(value[i], "encrypt_key_file=", &arg)) {
            // The key that seals private keys in Redis (sealed_value.h).
            if (!target.sealing_key.empty()) {
                return ngx_http_acme_conf_error(cf, 0, "duplicate acme_storage encrypt_key_file");
            }
            ngx_str_t name = value[i];
            name.data += sizeof("encrypt_key_file=") - 1;
            name.len -= sizeof("encrypt_key_file=") - 1;
            if (name.len == 0 || ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
                return ngx_http_acme_conf_error(cf, 0, "invalid acme_storage encrypt_key_file");
            }
            std::string path = ngx_http_acme_string(name);
            std::string text;
            try {
                text = acme::read_file(path);
            } catch (const std::exception &e) {
                return ngx_http_acme_conf_error(cf, 0, "acme_storage encrypt_key_file: %s",
                                                e.what());
            }
            try {
                target.sealing_key = acme::parse_sealing_key(text);
            } catch (const std::exception &e) {
                return ngx_http_acme_conf_error(cf, 0, "acme_storage encrypt_key_file \"%s\": %s",
                                                path.c_str(), e.what());
            }
        } else {
            return ngx_http_acme_conf_error(cf, 0, "invalid acme_storage parameter \"%V\"",
                                            &value[i]);
        }
    }

    ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(cf->pool, sizeof(acme::RedisTarget));
    if (cln == nullptr) {
        return NGX_HTTP_ACME_CONF_ERROR;
    }
    amcf->storage = new (cln->data) acme::RedisTarget(std::move(target));
    cln->handler = destroy_target;
    return NGX_CONF_OK;
}
