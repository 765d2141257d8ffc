// acme_status: the status page (JSON, or the Prometheus text format) made by
// any worker from the status zone (acme::StatusBoard) and the configuration,
// and with `acme_status renew`, POST ?renew=<id or name> for renew-now.
#include <ctime>
#include <new>
#include <string>
#include <vector>

#include "acme/status_render.h"
#include "ngx/ngx_http_acme.h"
#include "ngx/ngx_http_acme_api.h"

namespace {

constexpr size_t area_header = 64;  // as in the shared zone: the area's size, then the board

struct status_zone_data_t {
    ngx_http_acme_main_conf_t *amcf;
    size_t board_size;
};

size_t used_issuers(ngx_http_acme_main_conf_t *amcf, std::vector<std::string> *names) {
    size_t n = 0;
    auto **issuers = static_cast<ngx_http_acme_issuer_t **>(amcf->issuers.elts);
    for (ngx_uint_t i = 0; i < amcf->issuers.nelts; i++) {
        if (!issuers[i]->used) {
            continue;
        }
        n++;
        if (names != nullptr) {
            names->push_back(ngx_http_acme_string(issuers[i]->name));
        }
    }
    return n;
}

size_t distinct_certificates(ngx_http_acme_main_conf_t *amcf) {
    size_t n = 0;
    auto **certs = static_cast<ngx_http_acme_cert_t **>(amcf->certs.elts);
    for (ngx_uint_t i = 0; i < amcf->certs.nelts; i++) {
        n += certs[i]->first == certs[i];
    }
    return n;
}

ngx_int_t init_status_zone(ngx_shm_zone_t *zone, void *) {
    auto *shpool = reinterpret_cast<ngx_slab_pool_t *>(zone->shm.addr);
    auto *data = static_cast<status_zone_data_t *>(zone->data);
    try {
        std::vector<std::string> names;
        used_issuers(data->amcf, &names);
        if (zone->shm.exists || shpool->data != nullptr) {
            // Same size over a reload: the records were the old
            // configuration's, and its engine is ending.
            zone->data = shpool->data;
            auto *area = static_cast<u_char *>(zone->data);
            acme::StatusBoard(area + area_header, *reinterpret_cast<size_t *>(area))
                .renew_epoch(names);
            return NGX_OK;
        }
        void *area = ngx_slab_alloc(shpool, data->board_size + area_header);
        if (area == nullptr) {
            ngx_log_error(NGX_LOG_EMERG, zone->shm.log, 0, "acme: status zone \"%V\" is too small",
                          &zone->shm.name);
            return NGX_ERROR;
        }
        *static_cast<size_t *>(area) = data->board_size;
        acme::StatusBoard(static_cast<u_char *>(area) + area_header, data->board_size)
            .format(distinct_certificates(data->amcf), names.size());
        shpool->data = area;
        zone->data = area;
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_EMERG, zone->shm.log, 0, "acme: %s", e.what());
        return NGX_ERROR;
    }
    return NGX_OK;
}

// ------------------------------------------------------------------ rendering

std::vector<acme::CertificateView> certificate_views(ngx_http_acme_main_conf_t *amcf,
                                                     acme::StatusBoard *board) {
    std::vector<acme::CertificateView> views;
    auto **certs = static_cast<ngx_http_acme_cert_t **>(amcf->certs.elts);
    for (ngx_uint_t i = 0; i < amcf->certs.nelts; i++) {
        ngx_http_acme_cert_t *c = certs[i];
        if (c->first != c) {
            continue;
        }
        acme::CertificateView v;
        v.id = ngx_http_acme_string(c->basename);
        auto *ids = static_cast<ngx_str_t *>(c->identifiers.elts);
        for (ngx_uint_t k = 0; k < c->identifiers.nelts; k++) {
            v.names.push_back(ngx_http_acme_string(ids[k]));
        }
        v.issuer = ngx_http_acme_string(c->issuer->name);
        v.key_type = acme::key_type_name(c->key_type);
        if (board != nullptr) {
            v.status = board->certificate(v.id);
        }
        views.push_back(std::move(v));
    }
    return views;
}

std::vector<acme::IssuerView> issuer_views(ngx_http_acme_main_conf_t *amcf,
                                           acme::StatusBoard *board) {
    std::vector<acme::IssuerView> views;
    auto **issuers = static_cast<ngx_http_acme_issuer_t **>(amcf->issuers.elts);
    for (ngx_uint_t i = 0; i < amcf->issuers.nelts; i++) {
        if (!issuers[i]->used) {
            continue;
        }
        acme::IssuerView v;
        v.name = ngx_http_acme_string(issuers[i]->name);
        v.directory = ngx_http_acme_string(issuers[i]->uri);
        if (board != nullptr) {
            v.status = board->issuer(v.name);
        }
        views.push_back(std::move(v));
    }
    return views;
}

// Collects the rendering as a chain of pool buffers.
struct chain_writer_t {
    ngx_http_request_t *r;
    ngx_chain_t *first = nullptr;
    ngx_chain_t **last = &first;
    off_t length = 0;
    bool failed = false;

    void operator()(std::string_view piece) {
        ngx_buf_t *b = ngx_create_temp_buf(r->pool, piece.size());
        ngx_chain_t *cl = ngx_alloc_chain_link(r->pool);
        if (b == nullptr || cl == nullptr) {
            failed = true;
            return;
        }
        b->last = ngx_cpymem(b->last, piece.data(), piece.size());
        cl->buf = b;
        cl->next = nullptr;
        *last = cl;
        last = &cl->next;
        length += piece.size();
    }
};

ngx_int_t send(ngx_http_request_t *r, ngx_uint_t status, const char *type, chain_writer_t &body) {
    if (body.failed) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    r->headers_out.status = status;
    r->headers_out.content_length_n = body.length;
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type.data = reinterpret_cast<u_char *>(const_cast<char *>(type));
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    if (body.first == nullptr) {
        r->header_only = 1;
    } else {
        // The last buffer ends the response.
        ngx_chain_t *cl = body.first;
        while (cl->next != nullptr) {
            cl = cl->next;
        }
        cl->buf->last_buf = r == r->main ? 1 : 0;
        cl->buf->last_in_chain = 1;
    }
    ngx_int_t rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }
    return ngx_http_output_filter(r, body.first);
}

ngx_int_t send_json(ngx_http_request_t *r, ngx_uint_t status, const std::string &text) {
    chain_writer_t body{r};
    body(text);
    return send(r, status, "application/json", body);
}

bool wants_prometheus(ngx_http_request_t *r) {
    ngx_str_t format;
    if (ngx_http_arg(r, reinterpret_cast<u_char *>(const_cast<char *>("format")), 6, &format) ==
        NGX_OK) {
        return format.len == 10 && ngx_strncmp(format.data, "prometheus", 10) == 0;
    }
    // Prometheus asks with Accept: text/plain;version=0.0.4 (or
    // OpenMetrics first, then that).
    ngx_list_part_t *part = &r->headers_in.headers.part;
    auto *h = static_cast<ngx_table_elt_t *>(part->elts);
    for (ngx_uint_t i = 0;; i++) {
        if (i >= part->nelts) {
            if (part->next == nullptr) {
                break;
            }
            part = part->next;
            h = static_cast<ngx_table_elt_t *>(part->elts);
            i = 0;
        }
        if (h[i].key.len == 6 && ngx_strncasecmp(h[i].key.data, (u_char *)"accept", 6) == 0) {
            std::string v = ngx_http_acme_string(h[i].value);
            return v.find("text/plain") != std::string::npos &&
                   v.find("application/json") == std::string::npos;
        }
    }
    return false;
}

ngx_int_t render(ngx_http_request_t *r, ngx_http_acme_main_conf_t *amcf) {
    ngx_int_t rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }
    acme::StatusBoard *board = ngx_http_acme_status_board(const_cast<ngx_cycle_t *>(ngx_cycle));
    auto certs = certificate_views(amcf, board);
    auto issuers = issuer_views(amcf, board);
    chain_writer_t body{r};
    std::time_t now = ngx_time();
    if (wants_prometheus(r)) {
        acme::render_status_prometheus(now, certs, issuers, std::ref(body));
        return send(r, NGX_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body);
    }
    acme::render_status_json(NGX_HTTP_ACME_VERSION, now, certs, issuers, std::ref(body));
    return send(r, NGX_HTTP_OK, "application/json", body);
}

// POST ?renew=<id or name>: every certificate with that id or name (a name
// can have one per key type).
ngx_int_t renew(ngx_http_request_t *r, ngx_http_acme_main_conf_t *amcf) {
    ngx_int_t rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }
    ngx_str_t arg;
    if (ngx_http_arg(r, reinterpret_cast<u_char *>(const_cast<char *>("renew")), 5, &arg) !=
            NGX_OK ||
        arg.len == 0) {
        return send_json(r, NGX_HTTP_BAD_REQUEST,
                         "{\"error\": \"renew=<certificate id or name> is expected\"}\n");
    }
    u_char *decoded = static_cast<u_char *>(ngx_pnalloc(r->pool, arg.len));
    if (decoded == nullptr) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    u_char *src = arg.data, *dst = decoded;
    ngx_unescape_uri(&dst, &src, arg.len, NGX_UNESCAPE_URI);
    std::string wanted(reinterpret_cast<char *>(decoded), dst - decoded);

    acme::StatusBoard *board = ngx_http_acme_status_board(const_cast<ngx_cycle_t *>(ngx_cycle));
    std::time_t now = ngx_time();
    std::string ids;
    bool full = false;
    // A look at each certificate's names, nothing copied: with thousands of
    // certificates a request must not cost more than the renewal itself.
    ngx_str_t target = {wanted.size(), reinterpret_cast<u_char *>(wanted.data())};
    auto **certs = static_cast<ngx_http_acme_cert_t **>(amcf->certs.elts);
    for (ngx_uint_t i = 0; i < amcf->certs.nelts; i++) {
        const ngx_http_acme_cert_t *c = certs[i];
        if (c->first != c) {
            continue;
        }
        bool match = ngx_http_acme_str_eq(c->basename, target);
        auto *names = static_cast<const ngx_str_t *>(c->identifiers.elts);
        for (ngx_uint_t k = 0; !match && k < c->identifiers.nelts; k++) {
            match = ngx_http_acme_str_eq(names[k], target);
        }
        if (!match) {
            continue;
        }
        std::string id = ngx_http_acme_string(c->basename);
        if (board == nullptr || !board->request_renewal(id, now)) {
            full = true;
            continue;
        }
        ids += (ids.empty() ? "" : ", ") + acme::json_quote(id);
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "acme: renewal of certificate \"%s\" requested", id.c_str());
    }
    if (ids.empty()) {
        return send_json(r, full ? NGX_HTTP_SERVICE_UNAVAILABLE : NGX_HTTP_NOT_FOUND,
                         full ? "{\"error\": \"the status zone is not available\"}\n"
                              : "{\"error\": \"no such certificate\", \"renew\": " +
                                    acme::json_quote(wanted) + "}\n");
    }
    // The engine looks for requests every second.
    return send_json(r, NGX_HTTP_ACCEPTED,
                     "{\"renew\": [" + ids + "], \"requested\": " + std::to_string(now) +
                         ", \"scheduled\": " + std::to_string(now + 1) + "}\n");
}

ngx_int_t handler(ngx_http_request_t *r, bool renew_allowed) {
    try {
        auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(
            ngx_http_get_module_main_conf(r, ngx_http_acme_module));
        if (r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD)) {
            return render(r, amcf);
        }
        if ((r->method & NGX_HTTP_POST) && renew_allowed) {
            return renew(r, amcf);
        }
        return NGX_HTTP_NOT_ALLOWED;
    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "acme: status: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}

ngx_int_t status_handler(ngx_http_request_t *r) { return handler(r, false); }
ngx_int_t status_renew_handler(ngx_http_request_t *r) { return handler(r, true); }

}  // namespace

char *ngx_http_acme_status(ngx_conf_t *cf, ngx_command_t *, void *) {
    auto *value = static_cast<ngx_str_t *>(cf->args->elts);
    bool renew_allowed = false;
    if (cf->args->nelts == 2) {
        if (value[1].len != 5 || ngx_strncmp(value[1].data, "renew", 5) != 0) {
            return ngx_http_acme_conf_error(
                cf, 0, "invalid parameter \"%V\": \"renew\" is expected", &value[1]);
        }
        renew_allowed = true;
    }
    auto *clcf = static_cast<ngx_http_core_loc_conf_t *>(
        ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    if (clcf->handler != nullptr) {
        return const_cast<char *>("is duplicate");
    }
    clcf->handler = renew_allowed ? status_renew_handler : status_handler;
    return NGX_CONF_OK;
}

// The board for the configuration's certificates, and the zone it needs
// (the slab allocator keeps its header and a descriptor per page).
static size_t status_board_size(ngx_http_acme_main_conf_t *amcf, size_t *zone_size) {
    size_t board_size =
        acme::StatusBoard::size_for(distinct_certificates(amcf), used_issuers(amcf, nullptr));
    *zone_size =
        ngx_align(board_size + area_header + board_size / 32 + 16 * ngx_pagesize, ngx_pagesize);
    return board_size;
}

ngx_int_t ngx_http_acme_add_status_zone(ngx_conf_t *cf, ngx_http_acme_main_conf_t *amcf) {
    size_t size;
    size_t board_size = status_board_size(amcf, &size);
    std::string name = ngx_http_acme_string(amcf->zone_name) + "_status";
    ngx_str_t zone_name = ngx_http_acme_pstrdup(cf->pool, name);
    if (zone_name.data == nullptr) {
        return NGX_ERROR;
    }
    amcf->status_zone = ngx_shared_memory_add(cf, &zone_name, size, &ngx_http_acme_module);
    if (amcf->status_zone == nullptr) {
        return NGX_ERROR;
    }
    auto *data =
        static_cast<status_zone_data_t *>(ngx_pcalloc(cf->pool, sizeof(status_zone_data_t)));
    if (data == nullptr) {
        return NGX_ERROR;
    }
    data->amcf = amcf;
    data->board_size = board_size;
    amcf->status_zone->init = init_status_zone;
    amcf->status_zone->data = data;  // replaced by the area's address in init
    return NGX_OK;
}

void ngx_http_acme_resize_status_zone(ngx_http_acme_main_conf_t *amcf) {
    // nginx creates the zone once the whole configuration is parsed.
    size_t size;
    size_t board_size = status_board_size(amcf, &size);
    static_cast<status_zone_data_t *>(amcf->status_zone->data)->board_size = board_size;
    amcf->status_zone->shm.size = size;
}

acme::StatusBoard *ngx_http_acme_status_board(ngx_cycle_t *cycle) {
    static acme::StatusBoard *board = nullptr;
    static void *board_area = nullptr;

    ngx_http_acme_main_conf_t *amcf = ngx_http_acme_cycle_main_conf(cycle);
    if (amcf == nullptr || amcf->status_zone == nullptr || amcf->status_zone->data == nullptr) {
        return nullptr;
    }
    if (board == nullptr || board_area != amcf->status_zone->data) {
        delete board;
        auto *area = static_cast<u_char *>(amcf->status_zone->data);
        board = new (std::nothrow)
            acme::StatusBoard(area + area_header, *reinterpret_cast<size_t *>(area));
        board_area = board ? amcf->status_zone->data : nullptr;
    }
    return board;
}
