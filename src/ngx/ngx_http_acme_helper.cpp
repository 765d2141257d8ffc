// Where the engine runs: nginx's "cache manager" helper process, obtained by
// registering the state directories as paths with a manager callback (the
// only way a stock nginx spawns, respawns and replaces a helper), or the
// single process with `master_process off`.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <memory>

#include "acme/cluster_node.h"
#include "acme/command_sink.h"
#include "acme/engine.h"
#include "acme/identifier.h"
#include "acme/reload_sink.h"
#include "acme/status_sink.h"
#include "ngx/ngx_http_acme.h"
#include "ngx/ngx_http_acme_api.h"

namespace {

acme::StatusSink *status_sink;
acme::EngineConfig *command_config;  // what command_sink refers to
acme::CommandSink *command_sink;
acme::Engine *engine;
acme::ReloadSink *reload_sink;
acme::ClusterNode *cluster;  // with acme_storage

std::string user_agent() {
    return "ngx_http_acme_module/" NGX_HTTP_ACME_VERSION " nginx/" NGINX_VERSION;
}

acme::EngineConfig engine_config(ngx_http_acme_main_conf_t *amcf) {
    acme::EngineConfig config;
    config.user_agent = user_agent();
    config.event_command = ngx_http_acme_strings(amcf->event_command);
    config.event_timeout = std::chrono::milliseconds(amcf->event_timeout);
    config.warn_window = amcf->warn_window;

    std::vector<std::string> resolvers;
    auto *rs = static_cast<ngx_str_t *>(amcf->resolvers.elts);
    for (ngx_uint_t i = 0; i < amcf->resolvers.nelts; i++) {
        resolvers.push_back(ngx_http_acme_string(rs[i]));
    }

    auto **issuers = static_cast<ngx_http_acme_issuer_t **>(amcf->issuers.elts);
    for (ngx_uint_t i = 0; i < amcf->issuers.nelts; i++) {
        ngx_http_acme_issuer_t *is = issuers[i];
        if (!is->used) {
            continue;
        }
        acme::IssuerConfig ic;
        ic.name = ngx_http_acme_string(is->name);
        ic.directory_url = ngx_http_acme_string(is->uri);
        auto *contacts = static_cast<ngx_str_t *>(is->contacts.elts);
        for (ngx_uint_t k = 0; k < is->contacts.nelts; k++) {
            ic.contacts.push_back(ngx_http_acme_string(contacts[k]));
        }
        ic.accept_terms = is->accept_tos;
        ic.account_key = ngx_http_acme_string(is->account_key);
        ic.challenges.clear();
        auto *challenges = static_cast<ngx_str_t *>(is->challenges.elts);
        for (ngx_uint_t k = 0; k < is->challenges.nelts; k++) {
            ic.challenges.push_back(ngx_http_acme_string(challenges[k]));
        }
        ic.state_path = ngx_http_acme_string(is->state_path);
        ic.ca_file = ngx_http_acme_string(is->ssl_trusted_certificate);
        ic.verify = is->ssl_verify;
        ic.resolvers = resolvers;
        if (is->eab_kid.len != 0) {
            ic.eab_kid = ngx_http_acme_string(is->eab_kid);
            ic.eab_mac_key = ngx_http_acme_string(is->eab_mac_key);
            ic.eab_alg = ngx_http_acme_string(is->eab_alg);
        }
        ic.profile = ngx_http_acme_string(is->profile);
        ic.profile_required = is->profile_required;
        ic.preferred_chain = ngx_http_acme_string(is->preferred_chain);
        ic.common_name_in_csr = is->common_name_in_csr;
        ic.renew_before = is->renew_before;
        ic.event_command = ngx_http_acme_strings(is->event_command);
        ic.dns = ngx_http_acme_dns_config(is);
        ic.max_concurrent_orders = static_cast<int>(is->max_concurrent_orders);
        ic.background_rate = static_cast<double>(is->background_rate);
        // The engine-wide bound must not hold back an issuer allowed more.
        config.max_concurrent_orders =
            std::max(config.max_concurrent_orders, ic.max_concurrent_orders);
        config.issuers.push_back(std::move(ic));
    }

    auto **certs = static_cast<ngx_http_acme_cert_t **>(amcf->certs.elts);
    for (ngx_uint_t i = 0; i < amcf->certs.nelts; i++) {
        // Servers that share names, key type and issuer share one
        // certificate, ordered with the first one's settings.
        if (certs[i]->first != certs[i]) {
            continue;
        }
        acme::CertificateConfig cc;
        cc.issuer = ngx_http_acme_string(certs[i]->issuer->name);
        cc.key_type = certs[i]->key_type;
        cc.profile = ngx_http_acme_string(certs[i]->profile);
        cc.renew_before = certs[i]->renew_before;
        cc.ocsp_stapling = certs[i]->stapling == 1;
        cc.ocsp_verify = certs[i]->stapling_verify == 1;
        auto *ids = static_cast<ngx_str_t *>(certs[i]->identifiers.elts);
        for (ngx_uint_t k = 0; k < certs[i]->identifiers.nelts; k++) {
            cc.identifiers.push_back(acme::parse_identifier(ngx_http_acme_string(ids[k])));
        }
        config.certificates.push_back(std::move(cc));
    }
    return config;
}

// nginx ends the helper with exit(): stop there, before OpenSSL's and the
// C++ runtime's exit handlers pull state from under a running engine thread.
// Everything the engine writes is already atomic on disk.
void exit_now() {
    if (engine != nullptr && engine->running()) {
        ngx_http_acme_drain_engine_log();
        _exit(0);
    }
}

ngx_int_t start_engine(ngx_cycle_t *cycle) {
    ngx_http_acme_main_conf_t *amcf = ngx_http_acme_cycle_main_conf(cycle);
    if (amcf == nullptr || amcf->certs.nelts == 0 || engine != nullptr) {
        return NGX_OK;
    }
    acme::SharedState *state = ngx_http_acme_shared_state(cycle);
    if (state == nullptr) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0, "acme: shared zone is missing");
        return NGX_ERROR;
    }
    try {
        acme::Logger *log = ngx_http_acme_engine_log(cycle);
        auto config = std::make_unique<acme::EngineConfig>(engine_config(amcf));
        // With acme_storage the engine keeps its store in Redis and
        // publishes challenge answers through the cluster.
        std::unique_ptr<acme::ClusterNode> node;
        if (amcf->storage != nullptr) {
            node = std::make_unique<acme::ClusterNode>(*amcf->storage, *state, *log);
        }
        auto started = node ? std::make_unique<acme::Engine>(*config, *node, *log,
                                                             node->storage_factory(*config))
                            : std::make_unique<acme::Engine>(*config, *state, *log);
        auto commands = std::make_unique<acme::CommandSink>(*config, started->events());
        if (commands->enabled()) {
            started->add_sink(*commands);
            started->set_order_hook(*commands);
        }
        std::unique_ptr<acme::StatusSink> sink;
        if (acme::StatusBoard *board = ngx_http_acme_status_board(cycle)) {
            if (node) {
                node->set_status_board(board);
            }
            sink = std::make_unique<acme::StatusSink>(*board);
            started->add_sink(*sink);
            started->set_renew_requests(*board);
        }
        // acme_reload: only where the master started a reload process.
        std::unique_ptr<acme::ReloadSink> reload;
        if (amcf->reload && ngx_http_acme_reload_available()) {
            reload = std::make_unique<acme::ReloadSink>(
                std::chrono::milliseconds(amcf->reload_delay), *log,
                [](std::string &error) { return ngx_http_acme_reload_request(error); });
            started->add_sink(*reload);
        }
        if (node) {
            node->start();
        }
        started->start();
        reload_sink = reload.release();
        cluster = node.release();
        status_sink = sink.release();
        command_sink = commands.release();
        command_config = config.release();
        engine = started.release();
        std::atexit(exit_now);
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0, "acme: cannot start the engine: %s", e.what());
        return NGX_ERROR;
    }
    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0, "acme: engine started for %ui certificate(s)",
                  amcf->certs.nelts);
    return NGX_OK;
}

// Called by the helper's timer; the first call starts the engine thread,
// which then schedules itself.
ngx_msec_t ngx_http_acme_manager(void *) {
    start_engine(const_cast<ngx_cycle_t *>(ngx_cycle));
    return 60 * 60 * 1000;
}

// mkdir -p for the directories above a state path (nginx creates the last
// component itself, owned by the worker user).
ngx_int_t create_parents(ngx_log_t *log, const std::string &path) {
    for (size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
        std::string dir = path.substr(0, pos);
        if (mkdir(dir.c_str(), 0755) == -1 && errno != EEXIST) {
            ngx_log_error(NGX_LOG_EMERG, log, ngx_errno, "acme: mkdir(\"%s\") failed", dir.c_str());
            return NGX_ERROR;
        }
    }
    return NGX_OK;
}

}  // namespace

ngx_int_t ngx_http_acme_add_helper(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf) {
    // nginx -t must leave the file system alone: nginx would create the
    // registered paths even when only testing.
    if (ngx_test_config) {
        return NGX_OK;
    }
    bool manager_set = false;
    auto **issuers = static_cast<ngx_http_acme_issuer_t **>(amcf->issuers.elts);
    for (ngx_uint_t i = 0; i < amcf->issuers.nelts; i++) {
        ngx_http_acme_issuer_t *is = issuers[i];
        if (!is->used) {
            continue;
        }
        if (create_parents(cf->log, ngx_http_acme_string(is->state_path)) != NGX_OK) {
            return NGX_ERROR;
        }
        auto *path = static_cast<ngx_path_t *>(ngx_pcalloc(cf->pool, sizeof(ngx_path_t)));
        if (path == nullptr) {
            return NGX_ERROR;
        }
        path->name = is->state_path;
        path->conf_file = is->file;
        path->line = is->line;
        path->data = &ngx_http_acme_module;
        if (!manager_set) {
            path->manager = ngx_http_acme_manager;
            manager_set = true;
        }
        if (ngx_add_path(cf, &path) != NGX_OK) {
            return NGX_ERROR;
        }
    }
    return NGX_OK;
}

ngx_int_t ngx_http_acme_init_single(ngx_cycle_t *cycle) { return start_engine(cycle); }
