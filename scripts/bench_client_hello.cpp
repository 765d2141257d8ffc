// Benchmark (not a test) of what the tls-alpn-01 ClientHello callback costs
// an ordinary handshake: full TLS handshakes between two in-memory OpenSSL
// endpoints, the server context with and without a callback that does what
// ngx_http_acme_tls_alpn_client_hello does for a ClientHello without
// acme-tls/1 (one extension lookup, one scan of the ALPN list). Alternating
// batches in one process, so both sides see the same machine load; then the
// same callback repeated many times per handshake, which gives its own cost.
//
//   make bench-client-hello
#include <openssl/ssl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "acme/tls_alpn.h"

namespace {

int repeat = 1;  // checks per ClientHello

int client_hello(SSL *ssl, int *, void *) {
    int ordinary = 0;
    for (int i = 0; i < repeat; i++) {
        const unsigned char *ext;
        size_t len;
        if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext,
                                      &len) == 0 ||
            !acme::alpn_offers(ext, len, acme::tls_alpn_protocol)) {
            ordinary++;
        }
    }
    return ordinary == repeat ? SSL_CLIENT_HELLO_SUCCESS : SSL_CLIENT_HELLO_ERROR;
}

int select_http11(SSL *, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                  unsigned int inlen, void *) {
    static const unsigned char protocols[] = "\x08http/1.1";
    unsigned char *selected;
    if (SSL_select_next_proto(&selected, outlen, protocols, sizeof(protocols) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_NOACK;
    }
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

bool handshake(SSL_CTX *server_ctx, SSL_CTX *client_ctx) {
    SSL *server = SSL_new(server_ctx);
    SSL *client = SSL_new(client_ctx);
    BIO *a, *b;
    BIO_new_bio_pair(&a, 0, &b, 0);
    SSL_set_bio(server, a, a);
    SSL_set_bio(client, b, b);
    SSL_set_accept_state(server);
    SSL_set_connect_state(client);
    SSL_set_tlsext_host_name(client, "bench.test");
    bool done = false;
    for (int i = 0; i < 20 && !done; i++) {
        int c = SSL_do_handshake(client);
        int s = SSL_do_handshake(server);
        done = c == 1 && s == 1;
    }
    SSL_free(server);
    SSL_free(client);
    return done;
}

// Seconds per handshake of `batches` alternating batches: [0] without the
// callback, [1] with it; and the median of the per-batch rate ratios.
struct Result {
    double per_handshake[2];
    double ratio;
};

Result run(SSL_CTX *plain, SSL_CTX *hooked, SSL_CTX *client, int batches, int size) {
    std::vector<double> ratios;
    double total[2] = {0, 0};
    for (int batch = 0; batch < batches; batch++) {
        double took[2];
        for (int k = 0; k < 2; k++) {
            int which = k ^ (batch & 1);  // alternate which goes first
            auto start = std::chrono::steady_clock::now();
            for (int i = 0; i < size; i++) {
                if (!handshake(which ? hooked : plain, client)) {
                    std::fprintf(stderr, "handshake failed\n");
                    std::exit(1);
                }
            }
            took[which] =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        }
        total[0] += took[0];
        total[1] += took[1];
        ratios.push_back(took[0] / took[1]);
    }
    std::sort(ratios.begin(), ratios.end());
    double n = static_cast<double>(batches) * size;
    return {{total[0] / n, total[1] / n}, ratios[ratios.size() / 2]};
}

}  // namespace

int main() {
    acme::PrivateKey key = acme::PrivateKey::generate(acme::KeyType::ecdsa256);
    acme::X509Ptr cert = acme::make_tls_alpn_certificate(
        key, {acme::Identifier::Type::dns, "bench.test"}, std::string(32, 'x'));
    SSL_CTX *plain = SSL_CTX_new(TLS_server_method());
    SSL_CTX *hooked = SSL_CTX_new(TLS_server_method());
    for (SSL_CTX *ctx : {plain, hooked}) {
        SSL_CTX_use_certificate(ctx, cert.get());
        SSL_CTX_use_PrivateKey(ctx, key.get());
        SSL_CTX_set_alpn_select_cb(ctx, select_http11, nullptr);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(ctx, 0);
    }
    SSL_CTX_set_client_hello_cb(hooked, client_hello, nullptr);
    SSL_CTX *client = SSL_CTX_new(TLS_client_method());
    static const unsigned char browser[] = "\x02h2\x08http/1.1";
    SSL_CTX_set_alpn_protos(client, browser, sizeof(browser) - 1);

    Result r = run(plain, hooked, client, 21, 200);
    std::printf(
        "TLS 1.3 handshakes (client and server), ALPN h2,http/1.1: %.0f us without the "
        "callback, %.0f us with it; rate ratio with/without (median of 21 batches): "
        "%.3f\n",
        r.per_handshake[0] * 1e6, r.per_handshake[1] * 1e6, r.ratio);

    repeat = 10000;
    Result amplified = run(plain, hooked, client, 5, 50);
    double per_check = (amplified.per_handshake[1] - amplified.per_handshake[0]) / repeat;
    std::printf(
        "the callback's check alone: %.1f ns per ClientHello (%d checks per handshake), "
        "%.5f of a handshake\n",
        per_check * 1e9, repeat, per_check / r.per_handshake[0]);
    return 0;
}
