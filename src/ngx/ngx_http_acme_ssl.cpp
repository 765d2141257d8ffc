// Certificates in nginx's SSL contexts: the stored certificate installed
// at configuration time, and the hot swap in each worker when the engine
// has stored a new one (the fallback is ngx_http_acme_fallback.cpp's).
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <pwd.h>
#include <sys/stat.h>

#include <exception>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "acme/file_io.h"
#include "acme/storage.h"
#include "ngx/ngx_http_acme.h"
#include "ngx/ngx_http_acme_api.h"

namespace {

constexpr ngx_msec_t swap_check_interval = 100;  // one atomic load per tick and worker
// A writer renames the key and then the certificate within microseconds.
constexpr int pair_read_attempts = 5;
constexpr ngx_msec_t pair_read_pause = 20;

struct BioFree {
    void operator()(BIO *b) const { BIO_free(b); }
};
struct ChainFree {
    void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using ChainPtr = std::unique_ptr<STACK_OF(X509), ChainFree>;

// Private key text read from the store is wiped when it goes out of scope,
// so that freed memory of the master (which every worker inherits) and of
// the workers holds no copy of it.
class WipeOnExit {
public:
    explicit WipeOnExit(std::string *s) : s_(s) {}
    ~WipeOnExit() { OPENSSL_cleanse(s_->data(), s_->size()); }
    WipeOnExit(const WipeOnExit &) = delete;
    WipeOnExit &operator=(const WipeOnExit &) = delete;

private:
    std::string *s_;
};

// The parsed contents of a <basename>.crt / .key pair.
struct Loaded {
    acme::X509Ptr leaf;
    ChainPtr chain;
    acme::EvpPkeyPtr key;
};

size_t count_certificate_blocks(const std::string &pem) {
    static const std::string begin = "-----BEGIN CERTIFICATE-----";
    size_t n = 0;
    for (size_t pos = pem.find(begin); pos != std::string::npos; pos = pem.find(begin, pos + 1)) {
        n++;
    }
    return n;
}

// Returns false (with *error set) when the files do not hold a usable pair;
// *mismatch tells a certificate that is not the key's (a renewal between
// its two renames) from damaged files.
bool load_pair(const std::string &crt_pem, const std::string &key_pem, Loaded *out,
               std::string *error, bool *mismatch = nullptr) {
    if (mismatch != nullptr) {
        *mismatch = false;
    }
    BioPtr bio(BIO_new_mem_buf(crt_pem.data(), static_cast<int>(crt_pem.size())));
    if (!bio) {
        *error = "out of memory";
        return false;
    }
    out->leaf.reset(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    out->chain.reset(sk_X509_new_null());
    while (out->leaf) {
        X509 *x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
        if (x == nullptr) {
            break;
        }
        sk_X509_push(out->chain.get(), x);
    }
    ERR_clear_error();  // the loop ends on a "no start line" error
    // Every certificate of the chain must parse: a file cut short would be
    // served without its intermediates, which clients refuse. Counted
    // rather than parsed twice (each parse decodes a public key); the
    // engine's parser says what is wrong.
    size_t parsed = out->leaf ? 1 + static_cast<size_t>(sk_X509_num(out->chain.get())) : 0;
    if (parsed == 0 || parsed < count_certificate_blocks(crt_pem)) {
        try {
            acme::split_pem_chain(crt_pem);
            *error = "malformed PEM certificate chain";
        } catch (const std::exception &e) {
            *error = e.what();
        }
        ERR_clear_error();
        return false;
    }

    out->key = acme::decode_private_key_pem(key_pem);
    if (!out->key) {
        *error = "no private key in the key file";
        ERR_clear_error();
        return false;
    }
    if (X509_check_private_key(out->leaf.get(), out->key.get()) != 1) {
        *error = "certificate and key do not match";
        if (mismatch != nullptr) {
            *mismatch = true;
        }
        ERR_clear_error();
        return false;
    }
    return true;
}

// Keeps "data:" + PEM of what is installed, the value of $acme_certificate
// and $acme_certificate_key. malloc'd: it changes with every renewal, and
// the cycle's pool would keep every old copy until the next reload.
bool remember_pem(ngx_str_t *slot, const std::string &pem) {
    auto *data = static_cast<u_char *>(ngx_alloc(5 + pem.size(), ngx_cycle->log));
    if (data == nullptr) {
        return false;
    }
    ngx_memcpy(data, "data:", 5);
    ngx_memcpy(data + 5, pem.data(), pem.size());
    if (slot->data != nullptr) {
        ngx_explicit_memzero(slot->data, slot->len);
        ngx_free(slot->data);
    }
    slot->data = data;
    slot->len = 5 + pem.size();
    return true;
}

void forget_pem(ngx_str_t *slot) {
    if (slot->data != nullptr) {
        ngx_explicit_memzero(slot->data, slot->len);
        ngx_free(slot->data);
        *slot = {0, nullptr};
    }
}

void forget_pem(ngx_http_acme_served_t *served) {
    forget_pem(&served->pem_cert);
    forget_pem(&served->pem_key);
}

// The copies the variables need, and no others: a key held in every
// worker's heap for nothing is one more place to leak it from.
bool remember_served_pem(const ngx_http_acme_main_conf_t *amcf, ngx_http_acme_served_t *served,
                         const std::string &crt, const std::string &key) {
    return (!amcf->keep_pem_cert || remember_pem(&served->pem_cert, crt)) &&
           (!amcf->keep_pem_key || remember_pem(&served->pem_key, key));
}

void forget_all_pem(void *data) {
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(data);
    auto *served = static_cast<ngx_http_acme_served_t *>(amcf->served.elts);
    for (ngx_uint_t i = 0; i < amcf->served.nelts; i++) {
        forget_pem(&served[i]);
    }
}

bool install(SSL_CTX *ctx, const Loaded &pair) {
    return SSL_CTX_use_cert_and_key(ctx, pair.leaf.get(), pair.key.get(), pair.chain.get(), 1) == 1;
}

// The user the store's files may belong to besides root: the worker user,
// who runs the engine. At configuration time nginx may not have set it yet.
ngx_uid_t store_owner(ngx_cycle_t *cycle) {
    auto *ccf = reinterpret_cast<ngx_core_conf_t *>(ngx_get_conf(cycle->conf_ctx, ngx_core_module));
    if (ccf != nullptr && ccf->user != static_cast<ngx_uid_t>(NGX_CONF_UNSET_UINT)) {
        return ccf->user;
    }
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam(NGX_USER);
        if (pw != nullptr) {
            return pw->pw_uid;
        }
    }
    return geteuid();
}

// Reads both files of a stored certificate (st: the certificate's), as
// far as they can be trusted (acme::untrusted_file).
acme::TrustedRead read_pair(const ngx_http_acme_served_t &served, ngx_uid_t owner, std::string *crt,
                            std::string *key, struct stat *st, std::string *why) {
    acme::TrustedRead r =
        acme::read_trusted_file(ngx_http_acme_string(served.crt_path), false, owner, crt, st, why);
    if (r != acme::TrustedRead::ok) {
        return r;
    }
    struct stat key_st;
    return acme::read_trusted_file(ngx_http_acme_string(served.key_path), true, owner, key, &key_st,
                                   why);
}

// At configuration time: the stored pair, parsed. The engine renames the
// new key into place before the new certificate, so a reload between the
// two finds a mismatched pair: it is read again until the writer is done,
// and a torn pair is never served. False with *error empty when nothing
// is stored.
bool read_usable_pair(ngx_cycle_t *cycle, const ngx_http_acme_served_t &served, std::string *crt,
                      std::string *key, struct stat *st, Loaded *pair, std::string *error) {
    ngx_uid_t owner = store_owner(cycle);
    for (int attempt = 1;; attempt++) {
        error->clear();
        acme::TrustedRead stored = read_pair(served, owner, crt, key, st, error);
        if (stored != acme::TrustedRead::ok) {
            return false;
        }
        if (load_pair(*crt, *key, pair, error)) {
            return true;
        }
        if (attempt == pair_read_attempts) {
            return false;
        }
        ngx_msleep(pair_read_pause);
    }
}

ngx_str_t join_path(ngx_pool_t *pool, const ngx_str_t &dir, const ngx_str_t &base,
                    const char *suffix) {
    return ngx_http_acme_pstrdup(
        pool, ngx_http_acme_string(dir) + "/" + ngx_http_acme_string(base) + suffix);
}

double thread_cpu_ms() {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// Loads the stored certificate into every context that serves it, if it
// changed since it was last installed. Runs in workers, on the event loop.
// False when it should be tried again at the next check.
bool refresh(const ngx_http_acme_main_conf_t *amcf, ngx_http_acme_served_t *served,
             ngx_log_t *log) {
    struct stat st;
    if (lstat(reinterpret_cast<const char *>(served->crt_path.data), &st) != 0) {
        return true;  // nothing stored (yet): the fallback stays
    }
    if (st.st_mtime == served->mtime && st.st_ino == served->inode) {
        return true;  // another certificate was renewed
    }
    double cpu_start = thread_cpu_ms();
    std::string crt, key, why;
    WipeOnExit wipe_key(&key);
    acme::TrustedRead stored = read_pair(*served, geteuid(), &crt, &key, &st, &why);
    if (stored == acme::TrustedRead::missing) {
        return true;
    }
    if (stored == acme::TrustedRead::refused) {
        // Until the engine stores the next one (a new file), the current
        // certificate stays.
        ngx_log_error(NGX_LOG_ERR, log, 0, "acme: stored certificate \"%s\" is not installed: %s",
                      served->crt_path.data, why.c_str());
        return true;
    }
    Loaded pair;
    std::string error;
    bool mismatch = false;
    if (!load_pair(crt, key, &pair, &error, &mismatch)) {
        if (!mismatch) {
            // Damaged files: the current certificate stays until the
            // engine stores the next one.
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "acme: stored certificate \"%s\" is not installed: %s",
                          served->crt_path.data, error.c_str());
            return true;
        }
        // The engine writes the key before the certificate, so a mismatch
        // can only be a renewal in progress: the next tick sees both.
        ngx_log_error(NGX_LOG_INFO, log, 0, "acme: certificate \"%s\" not installed yet: %s",
                      served->crt_path.data, error.c_str());
        return false;
    }
    auto **ctxs = static_cast<SSL_CTX **>(served->ctxs.elts);
    for (ngx_uint_t i = 0; i < served->ctxs.nelts; i++) {
        if (!install(ctxs[i], pair)) {
            ngx_ssl_error(NGX_LOG_ALERT, log, 0,
                          const_cast<char *>("acme: SSL_CTX_use_cert_and_key(\"%s\") failed"),
                          served->crt_path.data);
            return false;
        }
    }
    served->mtime = st.st_mtime;
    served->inode = st.st_ino;
    if (!remember_served_pem(amcf, served, crt, key)) {
        forget_pem(served);  // $acme_certificate falls back; the context is right
    }
    // What a swap costs this worker, on its event loop.
    ngx_log_error(NGX_LOG_INFO, log, 0, "acme: installed certificate \"%s\" (%.2f ms of CPU)",
                  served->crt_path.data, thread_cpu_ms() - cpu_start);
    return true;
}

ngx_event_t swap_event;
// nginx's debug logging of timers reads the event's connection fd.
ngx_connection_t swap_event_connection;

// The global generation this worker has caught up with, and whether the
// next change must compare every served certificate (an install failed).
uint64_t seen_global = 0;
bool compare_all = true;
// Served entries by basename, so that a renewal costs a worker what
// changed (the zone's journal), not a look at every certificate.
std::unordered_map<std::string, ngx_uint_t> *served_by_basename;

// Installs what changed of one served entry; false to look again later.
bool catch_up(const ngx_http_acme_main_conf_t *amcf, acme::SharedState *state,
              ngx_http_acme_served_t *served, ngx_log_t *log) {
    uint64_t gen = state->generation(ngx_http_acme_string(served->basename));
    if (gen == served->generation) {
        return true;
    }
    if (!refresh(amcf, served, log)) {
        return false;
    }
    served->generation = gen;
    ngx_http_acme_ocsp_refresh(served, log);
    return true;
}

void swap_check(ngx_event_t *ev) {
    ngx_http_acme_main_conf_t *amcf =
        ngx_http_acme_cycle_main_conf(const_cast<ngx_cycle_t *>(ngx_cycle));
    acme::SharedState *state = ngx_http_acme_shared_state(const_cast<ngx_cycle_t *>(ngx_cycle));

    try {
        uint64_t global = state ? state->global_generation() : 0;
        if (global != seen_global) {
            auto *served = static_cast<ngx_http_acme_served_t *>(amcf->served.elts);
            std::vector<std::string> changed;
            bool caught_up = true;
            if (!compare_all && served_by_basename != nullptr &&
                state->updated_since(seen_global, &changed)) {
                for (const std::string &id : changed) {
                    auto it = served_by_basename->find(id);
                    if (it != served_by_basename->end()) {
                        caught_up &= catch_up(amcf, state, &served[it->second], ev->log);
                    }
                }
            } else {
                for (ngx_uint_t i = 0; i < amcf->served.nelts; i++) {
                    caught_up &= catch_up(amcf, state, &served[i], ev->log);
                }
            }
            // A failed install is looked at again at the next check.
            seen_global = caught_up ? global : 0;
            compare_all = !caught_up;
        }
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ALERT, ev->log, 0, "acme: %s", e.what());
    }

    if (!ngx_exiting) {
        ngx_add_timer(ev, swap_check_interval);
    }
}

}  // namespace

void ngx_http_acme_forget_pem(ngx_str_t *slot) { forget_pem(slot); }

ngx_str_t ngx_http_acme_pstrdup(ngx_pool_t *pool, const std::string &s) {
    ngx_str_t out{0, static_cast<u_char *>(ngx_pnalloc(pool, s.size() + 1))};
    if (out.data != nullptr) {
        ngx_memcpy(out.data, s.c_str(), s.size() + 1);
        out.len = s.size();
    }
    return out;
}

ngx_int_t ngx_http_acme_serve(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf,
                              ngx_http_acme_cert_t *cert, ngx_str_t *state_path, SSL_CTX *ctx) {
    // Servers that share a certificate share its entry, made by the first
    // of them that is served.
    ngx_uint_t &shared = cert->first->shared_served;
    if (shared == 0) {
        if (amcf->served.nelts == 0) {
            ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(cf->pool, 0);
            if (cln == nullptr) {
                return NGX_ERROR;
            }
            cln->handler = forget_all_pem;
            cln->data = amcf;
        }
        auto *entry = static_cast<ngx_http_acme_served_t *>(ngx_array_push(&amcf->served));
        if (entry == nullptr) {
            return NGX_ERROR;
        }
        ngx_memzero(entry, sizeof(*entry));
        // The array moves as it grows: certificates refer to it by index.
        shared = amcf->served.nelts;
        entry->crt_path =
            join_path(cf->pool, *state_path, cert->basename, acme::storage_keys::cert_suffix);
        entry->key_path =
            join_path(cf->pool, *state_path, cert->basename, acme::storage_keys::key_suffix);
        entry->basename = cert->basename;
        if (entry->crt_path.data == nullptr || entry->key_path.data == nullptr ||
            ngx_array_init(&entry->ctxs, cf->pool, 1, sizeof(SSL_CTX *)) != NGX_OK) {
            return NGX_ERROR;
        }
    }
    cert->served = shared;
    auto *served = static_cast<ngx_http_acme_served_t *>(amcf->served.elts) + shared - 1;
    auto **slot = static_cast<SSL_CTX **>(ngx_array_push(&served->ctxs));
    if (slot == nullptr) {
        return NGX_ERROR;
    }
    *slot = ctx;

    // The master (and nginx -t) serves what is in the store from the first
    // handshake; the fallback stays only while there is nothing usable.
    std::string crt, key, error;
    WipeOnExit wipe_key(&key);
    struct stat st;
    Loaded pair;
    if (!read_usable_pair(cf->cycle, *served, &crt, &key, &st, &pair, &error)) {
        if (!error.empty()) {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                          "acme: stored certificate \"%s\" is not usable (%s), serving the "
                          "fallback until it is renewed",
                          served->crt_path.data, error.c_str());
        }
        if (!ngx_http_acme_install_fallback(amcf, cert->key_type, ctx)) {
            ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                          const_cast<char *>("acme: SSL_CTX_use_cert_and_key(fallback) failed"));
            return NGX_ERROR;
        }
        return NGX_OK;
    }
    if (!install(ctx, pair)) {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                      const_cast<char *>("acme: SSL_CTX_use_cert_and_key(\"%s\") failed"),
                      served->crt_path.data);
        return NGX_ERROR;
    }
    if (served->mtime != st.st_mtime || served->inode != st.st_ino) {
        if (!remember_served_pem(amcf, served, crt, key)) {
            return NGX_ERROR;
        }
    }
    served->mtime = st.st_mtime;
    served->inode = st.st_ino;
    return NGX_OK;
}

// nginx derives a server's session id context from its certificates, but
// every acme server has the same "$acme_fallback_certificate": mix in the
// certificates' basenames, so that a session cached for one server is not
// resumed by another that shares the session cache.
ngx_int_t ngx_http_acme_session_id(ngx_conf_t *cf, const char *protocol, ngx_array_t *list,
                                   ngx_str_t *id) {
    std::string text = std::string(protocol) + " acme";
    auto **certs = static_cast<ngx_http_acme_cert_t **>(list->elts);
    for (ngx_uint_t i = 0; i < list->nelts; i++) {
        text += " " + ngx_http_acme_string(certs[i]->basename);
    }
    *id = ngx_http_acme_pstrdup(cf->pool, text);
    return id->data != nullptr ? NGX_OK : NGX_ERROR;
}

ngx_int_t ngx_http_acme_session_context(ngx_conf_t *cf, ngx_http_acme_srv_conf_t *ascf,
                                        ngx_http_ssl_srv_conf_t *sscf) {
    ngx_str_t sess_ctx;
    if (ngx_http_acme_session_id(cf, "HTTP", ascf->certs, &sess_ctx) != NGX_OK) {
        return NGX_ERROR;
    }
    // The same call nginx made, with the same settings: only the context
    // string differs.
    return ngx_ssl_session_cache(&sscf->ssl, &sess_ctx, sscf->certificates,
                                 sscf->builtin_session_cache, sscf->shm_zone,
                                 sscf->session_timeout);
}

ngx_int_t ngx_http_acme_init_swap(ngx_cycle_t *cycle) {
    ngx_http_acme_main_conf_t *amcf = ngx_http_acme_cycle_main_conf(cycle);
    if (amcf == nullptr || amcf->served.nelts == 0) {
        return NGX_OK;
    }

    // A respawned worker starts from the master's copy, which may predate
    // a renewal: catch up before the first handshake.
    acme::SharedState *state = ngx_http_acme_shared_state(cycle);
    // Read before the generations: an update after it is in the journal.
    seen_global = state ? state->global_generation() : 0;
    compare_all = false;
    delete served_by_basename;
    served_by_basename = new std::unordered_map<std::string, ngx_uint_t>();
    served_by_basename->reserve(amcf->served.nelts);
    auto *served = static_cast<ngx_http_acme_served_t *>(amcf->served.elts);
    for (ngx_uint_t i = 0; i < amcf->served.nelts; i++) {
        served_by_basename->emplace(ngx_http_acme_string(served[i].basename), i);
        served[i].generation =
            state ? state->generation(ngx_http_acme_string(served[i].basename)) : 0;
        refresh(amcf, &served[i], cycle->log);
        ngx_http_acme_ocsp_refresh(&served[i], cycle->log);
    }

    ngx_memzero(&swap_event, sizeof(swap_event));
    swap_event.handler = swap_check;
    swap_event_connection.fd = static_cast<ngx_socket_t>(-1);
    swap_event.data = &swap_event_connection;
    swap_event.log = cycle->log;
    swap_event.cancelable = 1;
    ngx_add_timer(&swap_event, swap_check_interval);
    return NGX_OK;
}
