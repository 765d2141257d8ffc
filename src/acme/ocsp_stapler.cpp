// The OCSP refresh loop: cheap version checks every second, a fetch only
// when the certificate changed or its response is due.
#include "ocsp_stapler.h"

#include <algorithm>
#include <chrono>

#include "error.h"
#include "ocsp.h"
#include "storage.h"

namespace acme {

OcspStapler::OcspStapler(const EngineContext& ctx,
                         const std::vector<std::unique_ptr<CertState>>& certs,
                         HttpFactory make_http)
    : ctx_(ctx), make_http_(std::move(make_http)) {
    for (const auto& c : certs) {
        if (c->config != nullptr && c->config->ocsp_stapling && c->issuer != nullptr &&
            c->issuer->storage != nullptr) {
            entries_.push_back(Entry{c.get(), "", 0, 0});
        }
    }
}

OcspStapler::~OcspStapler() {
    if (thread_.joinable()) thread_.join();
}

void OcspStapler::start() {
    if (entries_.empty()) return;
    thread_ = std::thread([this] { run(); });
}

void OcspStapler::run() {
    while (!ctx_.stop.requested()) {
        try {
            check(std::time(nullptr));
        } catch (const std::exception& e) {
            ctx_.report(events::ThreadFailed{std::string("OCSP: ") + e.what()});
        }
        if (ctx_.stop.wait(std::chrono::seconds(1))) break;
    }
}

void OcspStapler::check(std::time_t now) {
    for (Entry& e : entries_) {
        Storage& storage = e.cert->storage();
        std::string crt_key = e.cert->basename + storage_keys::cert_suffix;
        std::optional<ItemStat> st;
        try {
            st = storage.stat(crt_key);
        } catch (const Error&) {
            continue;  // the store is out of reach: look again next time
        }
        if (!st) continue;  // nothing issued yet
        if (st->version == e.version && now < e.due) continue;
        if (st->version != e.version) e.failures = 0;
        std::optional<std::string> chain;
        try {
            chain = storage.load(crt_key);
        } catch (const Error&) {
            continue;
        }
        if (!chain) continue;
        bool first_look = e.version.empty();
        e.version = st->version;
        if (first_look && still_current(e, *chain, now)) continue;
        fetch(e, *chain, now);
    }
}

// At start-up: a response stored by an earlier engine that is still good
// for this certificate is kept until its refresh time.
bool OcspStapler::still_current(Entry& e, const std::string& chain, std::time_t now) {
    std::optional<std::string> der;
    try {
        der = e.cert->storage().load(e.cert->basename + storage_keys::ocsp_suffix);
    } catch (const Error&) {
        return false;
    }
    if (!der) return false;
    OcspStatus status = check_ocsp_response(*der, chain, e.cert->config->ocsp_verify, now);
    if (!status.good || status.refresh_at <= now) return false;
    e.due = status.refresh_at;
    return true;
}

void OcspStapler::fetch(Entry& e, const std::string& chain, std::time_t now) {
    const CertState& c = *e.cert;
    std::string url;
    try {
        url = ocsp_responder_url(chain);
    } catch (const std::exception&) {
    }
    if (url.empty()) {
        // Nothing to staple until the next certificate.
        e.due = std::numeric_limits<std::time_t>::max();
        return;
    }
    std::time_t retry = std::min(max_retry, first_retry << std::min(e.failures, 16));
    auto fail = [&](const std::string& what) {
        e.failures++;
        e.due = now + retry;
        ctx_.report(events::OcspFailed{c.ref(), url, what, e.due});
    };
    try {
        if (!http_) http_ = make_http_(c.issuer->http_options);
        HttpRequest req;
        req.method = "POST";
        req.url = url;
        req.headers = {{"Content-Type", "application/ocsp-request"},
                       {"Accept", "application/ocsp-response"}};
        req.body = make_ocsp_request(chain);
        HttpResponse resp = http_->send(req);
        if (resp.status != 200) {
            fail("HTTP status " + std::to_string(resp.status));
            return;
        }
        OcspStatus status = check_ocsp_response(resp.body, chain, c.config->ocsp_verify, now);
        if (!status.good) {
            fail(status.error.empty() ? "unusable response" : status.error);
            return;
        }
        c.storage().store(c.basename + storage_keys::ocsp_suffix, resp.body, Access::shared);
        e.failures = 0;
        e.due = status.refresh_at;
        ctx_.board.certificate_updated(c.basename);
        ctx_.report(events::OcspStored{c.ref(), status.next_update, status.refresh_at});
    } catch (const std::exception& ex) {
        fail(ex.what());
    }
}

}  // namespace acme
