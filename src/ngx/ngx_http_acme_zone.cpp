// The shared memory zone that carries http-01 answers and certificate
// generations from the engine to the workers (acme::SharedState inside an
// nginx zone), and acme_shared_zone, which names and sizes it.
#include <algorithm>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "ngx/ngx_http_acme.h"
#include "ngx/ngx_http_acme_api.h"

namespace {

constexpr size_t area_header = 64;  // keeps SharedState cache-line aligned

// A zone kept over a reload holds the slots of every certificate it ever
// saw: those of certificates no longer configured are freed, or a few
// thousand names changes would fill the table.
void release_unconfigured(ngx_shm_zone_t *zone, ngx_http_acme_main_conf_t *amcf, void *area) {
    std::vector<std::string> ids;
    ids.reserve(amcf->certs.nelts);
    auto **certs = static_cast<ngx_http_acme_cert_t **>(amcf->certs.elts);
    for (ngx_uint_t i = 0; i < amcf->certs.nelts; i++) {
        ids.push_back(ngx_http_acme_string(certs[i]->basename));
    }
    auto *base = static_cast<u_char *>(area);
    acme::SharedState state(base + area_header, *reinterpret_cast<size_t *>(area));
    if (std::size_t n = state.retain_certificates(ids)) {
        ngx_log_error(NGX_LOG_INFO, zone->shm.log, 0,
                      "acme: zone \"%V\": released %uz slot(s) of certificates no longer "
                      "configured",
                      &zone->shm.name, n);
    }
}

ngx_int_t ngx_http_acme_init_zone(ngx_shm_zone_t *zone, void *) {
    auto *shpool = reinterpret_cast<ngx_slab_pool_t *>(zone->shm.addr);
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(zone->data);

    // A zone kept over a reload already holds our area, with the pending
    // challenges and generations the running engine relies on.
    if (zone->shm.exists || shpool->data != nullptr) {
        zone->data = shpool->data;
        try {
            release_unconfigured(zone, amcf, shpool->data);
        } catch (const std::exception &e) {
            ngx_log_error(NGX_LOG_ALERT, zone->shm.log, 0, "acme: %s", e.what());
        }
        return NGX_OK;
    }

    // The slab allocator owns the start of the zone; take all the pages it
    // has left, then lay out SharedState inside them.
    size_t size = shpool->pfree * ngx_pagesize;
    void *area =
        size > acme::SharedState::min_size() + area_header ? ngx_slab_alloc(shpool, size) : nullptr;
    if (area == nullptr) {
        ngx_log_error(NGX_LOG_EMERG, zone->shm.log, 0, "acme: zone \"%V\" is too small",
                      &zone->shm.name);
        return NGX_ERROR;
    }
    // The area starts with its own size, so that every process can attach
    // to it without repeating this search.
    *static_cast<size_t *>(area) = size - area_header;
    acme::SharedState(static_cast<u_char *>(area) + area_header, size - area_header).format();
    shpool->data = area;
    zone->data = area;
    return NGX_OK;
}

// What a zone of `certificates` needs: the area, its header, and what
// nginx's slab allocator keeps for itself (page descriptors, about 1 %).
size_t zone_size_for(ngx_uint_t certificates) {
    size_t area = acme::SharedState::size_for(certificates) + area_header;
    return area + area / 64 + 16 * ngx_pagesize;
}

}  // namespace

size_t ngx_http_acme_default_zone_size(ngx_uint_t certificates) {
    // In whole megabytes, so that a few names more or less keep the size,
    // and with it the zone, over a reload.
    constexpr size_t mb = 1024 * 1024;
    size_t needed = (zone_size_for(certificates) + mb - 1) / mb * mb;
    return std::max(needed, acme::SharedState::default_size);
}

char *ngx_http_acme_shared_zone(ngx_conf_t *cf, ngx_command_t *, void *conf) {
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(conf);
    auto *value = static_cast<ngx_str_t *>(cf->args->elts);

    if (amcf->zone_size != NGX_CONF_UNSET_SIZE) {
        return const_cast<char *>("is duplicate");
    }
    if (value[1].len <= 5 || ngx_strncmp(value[1].data, "zone=", 5) != 0) {
        return ngx_http_acme_conf_error(
            cf, 0, "invalid parameter \"%V\": zone=NAME:SIZE is expected", &value[1]);
    }
    ngx_str_t spec{value[1].len - 5, value[1].data + 5};
    u_char *colon = static_cast<u_char *>(ngx_strlchr(spec.data, spec.data + spec.len, ':'));
    if (colon == nullptr || colon == spec.data) {
        return ngx_http_acme_conf_error(cf, 0, "invalid zone \"%V\": zone=NAME:SIZE is expected",
                                        &value[1]);
    }
    ngx_str_t size_text{static_cast<size_t>(spec.data + spec.len - colon - 1), colon + 1};
    ssize_t size = ngx_parse_size(&size_text);
    if (size == NGX_ERROR) {
        return ngx_http_acme_conf_error(cf, 0, "invalid zone size \"%V\"", &value[1]);
    }
    size_t min_size = acme::SharedState::min_size() + 16 * ngx_pagesize;
    if (static_cast<size_t>(size) < min_size) {
        return ngx_http_acme_conf_error(cf, 0, "zone \"%V\" is too small: at least %uzk", &value[1],
                                        min_size / 1024 + 1);
    }
    amcf->zone_name.len = colon - spec.data;
    amcf->zone_name.data = spec.data;
    amcf->zone_size = size;
    amcf->zone_file = cf->conf_file->file.name.data;
    amcf->zone_line = cf->conf_file->line;
    return NGX_CONF_OK;
}

ngx_int_t ngx_http_acme_add_zone(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf) {
    // Every certificate needs a slot for its generation, or its renewals
    // reach the workers only as "something changed".
    size_t needed = zone_size_for(amcf->certs.nelts);
    if (amcf->zone_size < needed) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "acme_shared_zone \"%V\" in %s:%ui is too small for %ui acme_certificate "
                      "directives: at least %uzk is needed",
                      &amcf->zone_name, amcf->zone_file, amcf->zone_line, amcf->certs.nelts,
                      needed / 1024 + 1);
        return NGX_ERROR;
    }
    amcf->zone =
        ngx_shared_memory_add(cf, &amcf->zone_name, amcf->zone_size, &ngx_http_acme_module);
    if (amcf->zone == nullptr) {
        return NGX_ERROR;
    }
    if (amcf->zone->data != nullptr) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "acme: zone \"%V\" is already used",
                      &amcf->zone_name);
        return NGX_ERROR;
    }
    amcf->zone->init = ngx_http_acme_init_zone;
    amcf->zone->data = amcf;  // replaced by the area's address in init
    return NGX_OK;
}

acme::SharedState *ngx_http_acme_shared_state(ngx_cycle_t *cycle) {
    static acme::SharedState *state = nullptr;
    static void *state_area = nullptr;

    ngx_http_acme_main_conf_t *amcf = ngx_http_acme_cycle_main_conf(cycle);
    if (amcf == nullptr || amcf->zone == nullptr || amcf->zone->data == nullptr) {
        return nullptr;
    }
    if (state == nullptr || state_area != amcf->zone->data) {
        delete state;
        // Called from request and event handlers: no exception may escape.
        auto *area = static_cast<u_char *>(amcf->zone->data);
        state = new (std::nothrow)
            acme::SharedState(area + area_header, *reinterpret_cast<size_t *>(area));
        state_area = state ? amcf->zone->data : nullptr;
    }
    return state;
}
