// ARI checks between renewals.
#include "ari.h"

#include "acme_client.h"
#include "error.h"

namespace acme {

namespace {

void ari_failed(const EngineContext& ctx, CertState& c, const std::string& what, std::time_t now,
                std::optional<std::chrono::seconds> retry_after, std::time_t lifetime) {
    c.ari_check_at = now + ari_recheck_delay(retry_after, lifetime).count();
    ctx.report(
        events::RenewalInfoUnavailable{c.ref(), what, c.ari_check_at, c.ari_failures++ == 0});
}

}  // namespace

void check_renewal_info(const EngineContext& ctx, CertState& c, HttpClient& http) {
    std::time_t now = ctx.now();
    std::time_t lifetime = c.current->not_after - c.current->not_before;
    std::optional<std::chrono::seconds> retry_after;
    try {
        AcmeClient client(http, issuer_session(ctx, *c.issuer));
        client.set_pause([&ctx](std::chrono::milliseconds d) { ctx.stop.pause(d); });
        if (client.directory().renewal_info.empty()) {
            c.ari_check_at = 0;  // the CA has no ARI: the ratio rule alone
            return;
        }
        RenewalInfo info = client.renewal_info(c.current->ari_cert_id);
        retry_after = info.retry_after;
        Window w{info.window_start, info.window_end};
        if (!c.ari_window || c.ari_window->start != w.start || c.ari_window->end != w.end) {
            std::time_t before = c.renewal_at;
            bool first = !c.ari_window;
            c.ari_window = w;
            c.renewal_at = renewal_time(c.ratio_pick, w, ctx.random.next());
            ctx.report(events::RenewalWindow{c.ref(), w.start, w.end, info.explanation_url,
                                             c.renewal_at, !first && c.renewal_at < before});
            write_record(ctx, c, now);
        }
    } catch (const CaError& e) {
        ari_failed(ctx, c, e.what(), now, e.retry_after, lifetime);
        return;
    } catch (const std::exception& e) {
        ari_failed(ctx, c, e.what(), now, retry_after, lifetime);
        return;
    }
    c.ari_failures = 0;
    c.ari_check_at = now + ari_recheck_delay(retry_after, lifetime).count();
}

}  // namespace acme
