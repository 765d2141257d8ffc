// http-01 (RFC 8555 section 8.3): answers /.well-known/acme-challenge/<token>
// from the shared zone in the POST_READ phase, so that it works on every
// server and before return, rewrite and access checks.
#include <exception>

#include "ngx/ngx_http_acme.h"

namespace {

const ngx_str_t challenge_prefix = ngx_string("/.well-known/acme-challenge/");

ngx_int_t send_answer(ngx_http_request_t *r, const std::string &body) {
    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    auto *b = static_cast<ngx_buf_t *>(ngx_calloc_buf(r->pool));
    u_char *data = static_cast<u_char *>(ngx_pnalloc(r->pool, body.size()));
    if (b == nullptr || data == nullptr) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    ngx_memcpy(data, body.data(), body.size());
    b->pos = data;
    b->last = data + body.size();
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = body.size();
    ngx_str_set(&r->headers_out.content_type, "text/plain");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    ngx_int_t rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }
    ngx_chain_t out{b, nullptr};
    return ngx_http_output_filter(r, &out);
}

ngx_int_t ngx_http_acme_http01_handler(ngx_http_request_t *r) {
    if (r->uri.len <= challenge_prefix.len ||
        ngx_strncmp(r->uri.data, challenge_prefix.data, challenge_prefix.len) != 0) {
        return NGX_DECLINED;
    }
    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        return NGX_DECLINED;
    }
    const u_char *token = r->uri.data + challenge_prefix.len;
    size_t token_len = r->uri.len - challenge_prefix.len;
    if (!acme::is_http01_token(
            std::string_view(reinterpret_cast<const char *>(token), token_len))) {
        return NGX_DECLINED;
    }

    acme::SharedState *state = ngx_http_acme_shared_state(const_cast<ngx_cycle_t *>(ngx_cycle));
    if (state == nullptr) {
        return NGX_DECLINED;
    }
    std::optional<std::string> answer;
    try {
        answer =
            state->find_http01(std::string_view(reinterpret_cast<const char *>(token), token_len));
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "acme: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    if (!answer) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "acme: no pending http-01 challenge for token \"%*s\"", token_len, token);
        return NGX_HTTP_NOT_FOUND;
    }
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "acme: answered http-01 challenge \"%*s\"",
                  token_len, token);
    // The request is complete here: the phase engine must not go on to
    // rewrites or content handlers.
    ngx_http_finalize_request(r, send_answer(r, *answer));
    return NGX_DONE;
}

}  // namespace

ngx_int_t ngx_http_acme_http01_init(ngx_conf_t *cf) {
    auto *cmcf = static_cast<ngx_http_core_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module));
    auto *h = static_cast<ngx_http_handler_pt *>(
        ngx_array_push(&cmcf->phases[NGX_HTTP_POST_READ_PHASE].handlers));
    if (h == nullptr) {
        return NGX_ERROR;
    }
    *h = ngx_http_acme_http01_handler;
    return NGX_OK;
}
