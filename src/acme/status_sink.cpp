// Events into status records: the certificate's state as the engine reports
// it, whether an order runs, and the per-issuer counters of the metrics.
#include "status_sink.h"

#include <variant>

namespace acme {

StatusSink::StatusSink(StatusBoard& board, Clock clock)
    : board_(board), clock_(std::move(clock)), epoch_(board.epoch()) {
    if (!clock_) clock_ = [] { return std::time(nullptr); };
}

void StatusSink::on_event(const Event& event) {
    std::visit([this](const auto& e) { handle(e); }, event);
}

void StatusSink::handle(const events::CertificateState& e) {
    issuer_of_[e.cert.id] = e.issuer;
    board_.update_certificate(epoch_, e.cert.id, [&](CertificateStatus& s) {
        s.key_type = e.key_type;
        s.has_cert = e.has_cert;
        s.not_before = e.not_before;
        s.not_after = e.not_after;
        s.serial = e.serial;
        s.sha256 = e.sha256;
        s.renew_at = e.renew_at;
        s.renew_reason = e.renew_reason;
        s.has_ari = e.has_ari;
        s.ari_start = e.ari_start;
        s.ari_end = e.ari_end;
        if (!e.has_ari) s.ari_explanation_url.clear();
        s.next_attempt = e.next_attempt;
        s.attempts = e.failures;
        s.has_error = e.has_error;
        s.error_type = e.error_type;
        s.error_detail = e.error_detail;
        s.error_at = e.error_at;
        // After a restart the last failure is the last attempt known.
        if (s.last_attempt == 0 && e.has_error) s.last_attempt = e.error_at;
    });
    std::time_t now = clock_();
    count(e.issuer, [&](IssuerStatus& is) {
        if (e.retry_after_until > now) is.retry_after = e.retry_after_until;
    });
}

void StatusSink::started(const CertRef& cert) {
    std::time_t now = clock_();
    board_.update_certificate(epoch_, cert.id, [&](CertificateStatus& s) {
        s.renewing = true;
        s.last_attempt = now;
    });
}

void StatusSink::ended(const CertRef& cert) {
    board_.update_certificate(epoch_, cert.id, [](CertificateStatus& s) { s.renewing = false; });
}

void StatusSink::handle(const events::Ordering& e) { started(e.cert); }
void StatusSink::handle(const events::OrderResumed& e) { started(e.cert); }
void StatusSink::handle(const events::OrderPostponed& e) { ended(e.cert); }

void StatusSink::handle(const events::Issued& e) {
    ended(e.cert);
    count(e.issuer, [](IssuerStatus& is) {
        ++is.orders_issued;
        is.state = "ready";
        is.error.clear();
    });
}

void StatusSink::handle(const events::Failed& e) {
    ended(e.cert);
    count(e.issuer, [](IssuerStatus& is) { ++is.orders_failed; });
}

void StatusSink::handle(const events::RenewalWindow& e) {
    board_.update_certificate(epoch_, e.cert.id, [&](CertificateStatus& s) {
        s.ari_explanation_url = e.explanation_url;
    });
}

void StatusSink::handle(const events::AuthorizationValid& e) {
    auto it = issuer_of_.find(e.cert.id);
    if (it == issuer_of_.end()) return;
    ChallengeCounter which = e.challenge_type == "http-01"       ? ChallengeCounter::http01
                             : e.challenge_type == "tls-alpn-01" ? ChallengeCounter::tls_alpn01
                                                                 : ChallengeCounter::other;
    count(it->second, [&](IssuerStatus& is) { ++is.challenges[static_cast<int>(which)]; });
}

void StatusSink::handle(const events::AccountRegistered& e) {
    count(e.issuer, [&](IssuerStatus& is) {
        is.account = e.url;
        is.state = "ready";
        is.error.clear();
    });
}

void StatusSink::handle(const events::AccountLost& e) {
    count(e.issuer, [](IssuerStatus& is) { is.account.clear(); });
}

void StatusSink::handle(const events::IssuerFailed& e) {
    count(e.issuer, [&](IssuerStatus& is) {
        is.state = "failed";
        is.error = e.what;
    });
}

void StatusSink::handle(const events::SolverNote& e) {
    if (e.record_name.empty()) return;
    DnsRecord record{e.record_name, e.record_type, e.record_value};
    count(e.issuer, [&](IssuerStatus& is) {
        // One record per name: a new account or CA name replaces the old,
        // but the wildcard form stays, as it serves the plain name too.
        for (DnsRecord& r : is.dns_persist) {
            if (r.name == record.name && r.type == record.type) {
                if (r.value != record.value + "; policy=wildcard") r = record;
                return;
            }
        }
        is.dns_persist.push_back(record);
    });
}

void StatusSink::count(const std::string& issuer,
                       const std::function<void(IssuerStatus&)>& change) {
    board_.update_issuer(epoch_, issuer, change);
}

}  // namespace acme
