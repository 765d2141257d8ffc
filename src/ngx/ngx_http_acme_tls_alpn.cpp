// tls-alpn-01 (RFC 8737) inside nginx's TLS handshake. A ClientHello callback
// on every server SSL_CTX of the http module spots ALPN "acme-tls/1" and
// moves that one handshake to a private SSL_CTX, which selects acme-tls/1
// and presents the challenge certificate; nginx then closes the connection
// without reading a request. Other ClientHellos only pay for one extension
// lookup.
//
// From nginx 1.29.2 nginx has a ClientHello callback of its own, which
// selects the virtual server by SNI (and with it the server's protocols and
// other settings applied at that point). Ours replaces it on the context,
// so every ClientHello that is not a challenge we answer goes on to nginx's.
#include <openssl/ssl.h>

#include <exception>
#include <map>
#include <optional>

#include "acme/tls_alpn.h"
#include "ngx/ngx_http_acme.h"

extern "C" {
#include <nginx.h>
}

#if nginx_version >= 1029002 && defined SSL_CLIENT_HELLO_SUCCESS
#define NGX_HTTP_ACME_NGINX_CLIENT_HELLO 1
#else
#define NGX_HTTP_ACME_NGINX_CLIENT_HELLO 0
#endif

// Per cycle, created in the master and copied into each worker by fork();
// the certificate cache and key then fill up per worker.
struct ngx_http_acme_tls_alpn_t {
    struct Cached {
        std::string digest;
        std::string identifier;
        acme::X509Ptr cert;
    };

    SSL_CTX *ctx = nullptr;
    std::optional<acme::PrivateKey> key;
    std::map<std::string, Cached> certs;  // by server name

    ~ngx_http_acme_tls_alpn_t() { SSL_CTX_free(ctx); }
};

namespace {

// Validators retry a handful of times per challenge; anything beyond this
// is stale, and dropping it only costs a new certificate.
constexpr size_t max_cached_certificates = 64;

const unsigned char acme_tls_protocols[] =
    "\x0a"
    "acme-tls/1";

// nginx's own servername callback would move the handshake back to the
// server's context: this one keeps it here.
int ngx_http_acme_tls_alpn_servername(SSL *, int *, void *) { return SSL_TLSEXT_ERR_OK; }

int ngx_http_acme_tls_alpn_select(SSL *, const unsigned char **out, unsigned char *outlen,
                                  const unsigned char *in, unsigned int inlen, void *) {
    unsigned char *selected;
    if (SSL_select_next_proto(&selected, outlen, acme_tls_protocols, sizeof(acme_tls_protocols) - 1,
                              in, inlen) != OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

X509 *challenge_certificate(ngx_http_acme_tls_alpn_t *tls, const std::string &name,
                            const acme::TlsAlpnAnswer &answer) {
    auto it = tls->certs.find(name);
    if (it != tls->certs.end() && it->second.digest == answer.digest &&
        it->second.identifier == answer.identifier) {
        return it->second.cert.get();
    }
    if (!tls->key) {
        tls->key = acme::PrivateKey::generate(acme::KeyType::ecdsa256);
    }
    if (tls->certs.size() >= max_cached_certificates) {
        tls->certs.clear();
    }
    acme::X509Ptr cert = acme::make_tls_alpn_certificate(
        *tls->key, acme::parse_identifier(answer.identifier), answer.digest);
    auto &slot = tls->certs[name];
    slot = {answer.digest, answer.identifier, std::move(cert)};
    return slot.cert.get();
}

// The handshake offers acme-tls/1: answer it, or refuse it.
int answer_challenge(SSL *ssl, int *alert, ngx_http_acme_tls_alpn_t *tls) {
    auto *c = static_cast<ngx_connection_t *>(SSL_get_ex_data(ssl, ngx_ssl_connection_index));

    // SNI is not parsed yet at this point of the handshake.
    const unsigned char *ext;
    size_t len;
    std::optional<std::string> name;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &len) == 1) {
        name = acme::sni_host_name(ext, len);
    }
    acme::SharedState *state = ngx_http_acme_shared_state(const_cast<ngx_cycle_t *>(ngx_cycle));
    std::optional<acme::TlsAlpnAnswer> answer;
    if (name && state != nullptr) {
        answer = state->find_tls_alpn01(*name);
    }
    if (!answer) {
        // Neither the challenge certificate nor the server's own: RFC 8737
        // section 3 says to refuse the protocol.
        ngx_log_error(NGX_LOG_INFO, c->log, 0, "acme: no pending tls-alpn-01 challenge for \"%s\"",
                      name ? name->c_str() : "");
        *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
        return SSL_CLIENT_HELLO_ERROR;
    }

    X509 *cert = challenge_certificate(tls, *name, *answer);
    if (SSL_set_SSL_CTX(ssl, tls->ctx) == nullptr ||
        SSL_use_cert_and_key(ssl, cert, tls->key->get(), nullptr, 1) != 1) {
        ngx_ssl_error(NGX_LOG_ALERT, c->log, 0,
                      const_cast<char *>("acme: cannot present the tls-alpn-01 certificate"));
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    // Nothing of this handshake is worth resuming.
    SSL_set_options(ssl, SSL_OP_NO_TICKET);
    SSL_set_num_tickets(ssl, 0);
    // Checked by nginx's request reader right after the handshake.
    c->close = 1;
    ngx_log_error(NGX_LOG_INFO, c->log, 0, "acme: answering tls-alpn-01 challenge for \"%s\"",
                  name->c_str());
    return SSL_CLIENT_HELLO_SUCCESS;
}

// What nginx's own ClientHello callback, where there is one, makes of a
// ClientHello that is not a challenge.
int nginx_client_hello(SSL *ssl, int *alert) {
#if NGX_HTTP_ACME_NGINX_CLIENT_HELLO
    // nginx reads its argument from the connection's first context (the
    // listener's default server's), where ngx_ssl_set_client_hello_callback
    // stored it; a context it never set up has none.
    auto *c = static_cast<ngx_connection_t *>(SSL_get_ex_data(ssl, ngx_ssl_connection_index));
    if (c != nullptr && c->ssl != nullptr && c->ssl->session_ctx != nullptr &&
        SSL_CTX_get_ex_data(c->ssl->session_ctx, ngx_ssl_client_hello_arg_index) != nullptr) {
        return ngx_ssl_client_hello_callback(ssl, alert, nullptr);
    }
#else
    (void)ssl;
    (void)alert;
#endif
    return SSL_CLIENT_HELLO_SUCCESS;
}

int ngx_http_acme_tls_alpn_client_hello(SSL *ssl, int *alert, void *arg) {
    const unsigned char *ext;
    size_t len;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext,
                                  &len) == 0 ||
        !acme::alpn_offers(ext, len, acme::tls_alpn_protocol)) {
        return nginx_client_hello(ssl, alert);
    }
    try {
        return answer_challenge(ssl, alert, static_cast<ngx_http_acme_tls_alpn_t *>(arg));
    } catch (const std::exception &e) {
        auto *c = static_cast<ngx_connection_t *>(SSL_get_ex_data(ssl, ngx_ssl_connection_index));
        ngx_log_error(NGX_LOG_ALERT, c->log, 0, "acme: tls-alpn-01: %s", e.what());
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
}

void ngx_http_acme_tls_alpn_cleanup(void *data) {
    delete static_cast<ngx_http_acme_tls_alpn_t *>(data);
}

ngx_http_acme_tls_alpn_t *create_context(ngx_conf_t *cf) {
    ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == nullptr) {
        return nullptr;
    }
    auto *tls = new ngx_http_acme_tls_alpn_t;
    cln->handler = ngx_http_acme_tls_alpn_cleanup;
    cln->data = tls;

    tls->ctx = SSL_CTX_new(TLS_server_method());
    if (tls->ctx == nullptr) {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0, const_cast<char *>("acme: SSL_CTX_new() failed"));
        return nullptr;
    }
    SSL_CTX_set_tlsext_servername_callback(tls->ctx, ngx_http_acme_tls_alpn_servername);
    SSL_CTX_set_alpn_select_cb(tls->ctx, ngx_http_acme_tls_alpn_select, nullptr);
    // Sessions made here must never resume on a server's context.
    static const unsigned char sid_ctx[] = "acme-tls/1";
    if (SSL_CTX_set_session_id_context(tls->ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1) {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                      const_cast<char *>("acme: SSL_CTX_set_session_id_context() failed"));
        return nullptr;
    }
    return tls;
}

}  // namespace

ngx_int_t ngx_http_acme_tls_alpn_add(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf,
                                     SSL_CTX *ctx) {
    if (amcf->tls_alpn == nullptr) {
        try {
            amcf->tls_alpn = create_context(cf);
        } catch (const std::exception &e) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "acme: %s", e.what());
        }
        if (amcf->tls_alpn == nullptr) {
            return NGX_ERROR;
        }
    }
    SSL_CTX_set_client_hello_cb(ctx, ngx_http_acme_tls_alpn_client_hello, amcf->tls_alpn);
    return NGX_OK;
}
