// The wording of the engine's log lines, one function per event.
#include "log_sink.h"

#include <cstdio>

#include "text.h"

namespace acme {

namespace {

using namespace events;

struct Line {
    LogLevel level;
    std::string text;
};

std::string certificate(const CertRef& c) { return "acme: certificate " + quoted(c.name); }

Line line(const EngineFailed& e) {
    std::string again;
    if (e.restart_in.count() > 0) {
        char s[32];
        std::snprintf(s, sizeof(s), "%.1f", e.restart_in.count() / 1000.0);
        again = std::string(", starting it again in ") + s + " s";
    }
    return {LogLevel::crit, "acme: engine failed: " + e.what + again};
}
Line line(const StoreUnusable& e) {
    return {LogLevel::error, "acme: " + e.what + ", certificates stored there are not managed"};
}
Line line(const StoreWaiting& e) {
    return {LogLevel::notice,
            "acme: state " + quoted(e.where) + " is locked by another nginx process, waiting"};
}
Line line(const StoreLocked& e) {
    return {LogLevel::notice, "acme: state " + quoted(e.where) + " lock acquired"};
}
Line line(const UnfinishedRemoved& e) {
    return {LogLevel::notice, "acme: removed " + std::to_string(e.count) +
                                  " unfinished file(s) a killed helper left in " + quoted(e.where)};
}
Line line(const StorageFailed& e) {
    return {e.minor ? LogLevel::warn : LogLevel::error, "acme: " + e.what};
}
Line line(const IssuerFailed& e) {
    return {LogLevel::error, "acme: issuer " + quoted(e.issuer) + ": " + e.what};
}
Line line(const UnknownIssuer& e) {
    return {LogLevel::error, certificate(e.cert) + " refers to unknown issuer " + quoted(e.issuer)};
}
Line line(const ThreadFailed& e) {
    return {LogLevel::error, "acme: cannot start an order thread: " + e.what};
}
Line line(const LeftoverAnswersWithdrawn& e) {
    return {LogLevel::notice, "acme: withdrew " + std::to_string(e.count) +
                                  " challenge answer(s) left by a previous helper process"};
}
Line line(const CertificateLoaded& e) {
    return {LogLevel::notice, certificate(e.cert) + " is valid until " + format_time(e.not_after) +
                                  ", renewal at " + format_time(e.renewal_at)};
}
Line line(const OrderNeeded& e) {
    std::string when;
    if (e.not_before != 0) {
        when = ", not before " + format_time(e.not_before) +
               (e.failures > 0 ? " (after " + std::to_string(e.failures) + " failed attempt" +
                                     (e.failures == 1 ? ")" : "s)")
                               : " (Retry-After)");
    }
    return {LogLevel::notice,
            certificate(e.cert) + " needs to be ordered (" + e.reason + ")" + when};
}
Line line(const JobFailed& e) {
    return {LogLevel::error, certificate(e.cert) + ": " + e.what + ", next attempt at " +
                                 format_time(e.next_attempt)};
}
Line line(const RenewalWindow& e) {
    std::string why = e.explanation_url.empty() ? "" : " (see " + e.explanation_url + ")";
    return {e.earlier || !why.empty() ? LogLevel::notice : LogLevel::info,
            certificate(e.cert) + ": the CA suggests renewal between " + format_time(e.start) +
                " and " + format_time(e.end) + why + ", renewal at " + format_time(e.renewal_at)};
}
Line line(const RenewalInfoUnavailable& e) {
    return {e.first ? LogLevel::warn : LogLevel::info,
            "acme: renewal information for certificate " + quoted(e.cert.name) +
                " is not available: " + e.what + ", next check at " + format_time(e.next_check)};
}
Line line(const Ordering& e) {
    return {LogLevel::info, "acme: ordering certificate " + quoted(e.cert.name) + " from " +
                                quoted(e.issuer) +
                                (e.replaces.empty() ? "" : " to replace " + e.replaces)};
}
Line line(const ReplacementRefused& e) {
    return {LogLevel::notice, "acme: the CA refused the order for " + quoted(e.cert.name) +
                                  " as a replacement (" + e.why + "), ordering without"};
}
Line line(const ProfileNotOffered& e) {
    return {LogLevel::notice,
            certificate(e.cert) + ": " + e.why + ", ordering with the CA's default profile"};
}
Line line(const OrderResumed& e) {
    return {LogLevel::notice, "acme: resuming order " + quoted(e.url) + " for certificate " +
                                  quoted(e.cert.name) + " (" + e.status + ")"};
}
Line line(const SavedOrderDropped& e) {
    std::string head = "acme: the saved order " + quoted(e.url) + " for " + quoted(e.cert.name);
    if (!e.why.empty()) return {LogLevel::info, head + " cannot be resumed: " + e.why};
    return {LogLevel::info, head + " is " + quoted(e.status) + ", ordering anew"};
}
Line line(const SavedOrderIgnored& e) {
    return {LogLevel::warn, "acme: ignoring the saved order " + quoted(e.where) + ": " + e.why};
}
Line line(const ChallengeFallback& e) {
    return {LogLevel::warn,
            certificate(e.cert) + ": " + e.what + ", trying another challenge type"};
}
Line line(const AuthorizationValid& e) {
    return {LogLevel::info, "acme: authorization for " + quoted(e.identifier) + " is valid (" +
                                e.challenge_type + ")"};
}
Line line(const AlternateChain& e) {
    return {LogLevel::info,
            certificate(e.cert) + ": using the alternate chain issued by " + quoted(e.issuer_cn)};
}
Line line(const NoPreferredChain& e) {
    std::string list;
    for (const std::string& s : e.offered) list += (list.empty() ? "" : ", ") + quoted(s);
    return {LogLevel::notice, certificate(e.cert) + ": no chain issued by " + quoted(e.wanted) +
                                  " (offered: " + list + "), using the default chain"};
}
Line line(const NamesMismatch& e) {
    return {LogLevel::warn, "acme: the certificate issued for " + quoted(e.cert.name) +
                                " does not carry exactly the configured names"};
}
Line line(const Issued& e) {
    char took[32];
    std::snprintf(took, sizeof(took), "%.1f", e.seconds);
    std::string text = certificate(e.cert) + " issued by " + quoted(e.issuer);
    if (e.clock_ahead > 0) {
        text += " is due for renewal at once by this host's clock (its notBefore was " +
                std::to_string(e.clock_ahead) +
                " s ago: is the clock ahead of the CA's?); renewal after the same share of "
                "its lifetime from now";
    }
    text += ", valid until " + format_time(e.not_after) + ", renewal at " +
            format_time(e.renewal_at) + " (order took " + took + " s)";
    return {e.clock_ahead > 0 ? LogLevel::warn : LogLevel::notice, text};
}
Line line(const Failed& e) {
    return {LogLevel::error, certificate(e.cert) + " from " + quoted(e.issuer) + " failed: " +
                                 e.detail + ", next attempt at " + format_time(e.next_attempt)};
}
Line line(const Expiring& e) {
    return {LogLevel::warn, certificate(e.cert) + (e.expired ? " expired at " : " expires at ") +
                                format_time(e.not_after) + " and could not be renewed yet"};
}
Line line(const CertificateState&) { return {LogLevel::debug, ""}; }
Line line(const OrderPostponed& e) {
    return {LogLevel::notice, certificate(e.cert) + ": renewal postponed (" + e.why +
                                  "), next attempt at " + format_time(e.next_attempt)};
}
Line line(const RenewRequested& e) {
    return {LogLevel::notice, certificate(e.cert) + ": renewal requested" +
                                  (e.running ? ", an order is already running" : ", ordering now")};
}
Line line(const CommandOutput& e) {
    return {e.failed ? LogLevel::error : LogLevel::notice,
            "acme: event command (" + e.event + " " + e.cert + "): " + e.text};
}
Line line(const AccountKeyCreated& e) {
    return {LogLevel::notice,
            "acme: issuer " + quoted(e.issuer) + ": created account key " + quoted(e.where)};
}
Line line(const AccountRegistered& e) {
    return {LogLevel::notice,
            "acme: issuer " + quoted(e.issuer) + ": using account " + quoted(e.url)};
}
Line line(const AccountLost& e) {
    return {LogLevel::notice,
            "acme: issuer " + quoted(e.issuer) + ": " + e.why + ", registering the account again"};
}

Line line(const SolverNote& e) {
    return {e.warn ? LogLevel::warn : LogLevel::notice,
            "acme: issuer " + quoted(e.issuer) + ": " + e.what};
}

Line line(const OcspStored& e) {
    return {LogLevel::info, "acme: certificate " + quoted(e.cert.name) +
                                ": stored OCSP response, refreshed at " +
                                format_time(e.refresh_at)};
}
Line line(const OcspFailed& e) {
    return {LogLevel::warn, "acme: certificate " + quoted(e.cert.name) + ": OCSP responder " +
                                quoted(e.url) + ": " + e.what + ", next attempt at " +
                                format_time(e.next_attempt)};
}

}  // namespace

std::string format_time(std::time_t t) {
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
    return buf;
}

void LogSink::on_event(const Event& event) {
    Line l = std::visit([](const auto& e) { return line(e); }, event);
    if (l.text.empty()) return;  // for other sinks only
    logger_.log(l.level, l.text);
}

}  // namespace acme
