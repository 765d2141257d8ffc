// The event seam: the engine reports what happens to event sinks instead of
// formatting log lines itself. LogSink (log_sink.h) turns events into the
// error log's lines; a status page or an event command is another sink.
// Each event is a small value type; times are Unix seconds.
#pragma once

#include <chrono>
#include <ctime>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

namespace acme {

// The certificate an event is about: its store id and its first name.
struct CertRef {
    std::string id;    // certificate_basename()
    std::string name;  // first identifier, as log lines show it
};

namespace events {

// The engine failed as a whole; it starts again after restart_in.
struct EngineFailed {
    std::string what;
    std::chrono::milliseconds restart_in{0};  // 0: it does not
};
// A store could not be locked: its certificates are not managed.
struct StoreUnusable {
    std::string what;
};
// Another engine (an old helper during a reload) holds the store.
struct StoreWaiting {
    std::string where;
};
struct StoreLocked {
    std::string where;
};
// Temporary files of writes a killed helper never finished.
struct UnfinishedRemoved {
    std::string where;
    std::size_t count = 0;
};
// Storage failed outside an order; `minor` for clean-ups that lose nothing.
struct StorageFailed {
    std::string what;
    bool minor = false;
};
struct IssuerFailed {
    std::string issuer;
    std::string what;
};
struct UnknownIssuer {
    CertRef cert;
    std::string issuer;
};
struct ThreadFailed {
    std::string what;
};
struct LeftoverAnswersWithdrawn {
    std::size_t count = 0;
};

// At start-up: a current certificate and when it will be renewed.
struct CertificateLoaded {
    CertRef cert;
    std::time_t not_after = 0;
    std::time_t renewal_at = 0;
};
// At start-up: no usable certificate ("missing", "expired", ...), or one
// whose renewal was failing.
struct OrderNeeded {
    CertRef cert;
    std::string reason;
    std::time_t not_before = 0;  // 0: at once
    int failures = 0;            // > 0: not_before is the backoff, else the CA's Retry-After
};
// A job could not even start (no HTTP client).
struct JobFailed {
    CertRef cert;
    std::string what;
    std::time_t next_attempt = 0;
};
// The CA's renewal information (RFC 9773) moved the renewal time.
struct RenewalWindow {
    CertRef cert;
    std::time_t start = 0;
    std::time_t end = 0;
    std::string explanation_url;
    std::time_t renewal_at = 0;
    bool earlier = false;  // renewal moved forward from an earlier window
};
struct RenewalInfoUnavailable {
    CertRef cert;
    std::string what;
    std::time_t next_check = 0;
    bool first = false;  // the first failure in a row
};

struct Ordering {
    CertRef cert;
    std::string issuer;
    std::string replaces;  // ARI certificate id; "" when not a replacement
};
struct ReplacementRefused {
    CertRef cert;
    std::string why;
};
struct ProfileNotOffered {
    CertRef cert;
    std::string why;
};
struct OrderResumed {
    CertRef cert;
    std::string url;
    std::string status;
};
// A saved order that cannot be used: `why` when the CA refused it, else
// its status.
struct SavedOrderDropped {
    CertRef cert;
    std::string url;
    std::string status;
    std::string why;
};
// A saved order whose record cannot be read.
struct SavedOrderIgnored {
    std::string where;
    std::string why;
};
struct ChallengeFallback {
    CertRef cert;
    std::string what;
};
struct AuthorizationValid {
    CertRef cert;
    std::string identifier;
    std::string challenge_type;
};
struct AlternateChain {
    CertRef cert;
    std::string issuer_cn;
};
struct NoPreferredChain {
    CertRef cert;
    std::string wanted;
    std::vector<std::string> offered;
};
struct NamesMismatch {
    CertRef cert;
};
struct Issued {
    CertRef cert;
    std::string issuer;
    std::time_t not_after = 0;
    std::time_t renewal_at = 0;
    double seconds = 0;  // the order took
    // Not 0 when the new certificate was due for renewal at once by this
    // host's clock (ahead of the CA's): how long ago its notBefore was.
    std::time_t clock_ahead = 0;
};
struct Failed {
    CertRef cert;
    std::string issuer;
    std::string problem_type;  // ACME problem type; "" for a local failure
    std::string detail;
    std::time_t next_attempt = 0;
};
// Renewal failed and the certificate expires soon (or has expired).
struct Expiring {
    CertRef cert;
    std::time_t not_after = 0;
    bool expired = false;
};

// What is known of a certificate after start-up or any change (stored
// certificate, schedule, failures): the status page's record. No log line.
struct CertificateState {
    CertRef cert;
    std::string issuer;
    std::string key_type;
    bool has_cert = false;
    std::time_t not_before = 0;
    std::time_t not_after = 0;
    std::string serial;
    std::string sha256;
    std::time_t renew_at = 0;  // renewal, or the next attempt when missing or failing
    std::string renew_reason;
    bool has_ari = false;
    std::time_t ari_start = 0;
    std::time_t ari_end = 0;
    std::time_t next_attempt = 0;  // 0: none planned but renewal
    int failures = 0;
    bool has_error = false;
    std::string error_type;
    std::string error_detail;
    std::time_t error_at = 0;
    std::time_t retry_after_until = 0;
};
// The order hook (OrderHook) said not now.
struct OrderPostponed {
    CertRef cert;
    std::string why;
    std::time_t next_attempt = 0;
};
// Renew-now asked for a certificate (through the status page).
struct RenewRequested {
    CertRef cert;
    bool running = false;  // an order is already running: it is that one
};
// A line of an event command's output, or how it ended.
struct CommandOutput {
    std::string event;
    std::string cert;
    std::string text;
    bool failed = false;  // a non-zero exit, a signal, a timeout, or no start
};

// Something a challenge solver says about its work (dns-01 records).
// With `record` set, `what` asks the operator to add that DNS record
// (dns-persist-01 without dns_update or dns_hook): the status page lists it.
struct SolverNote {
    std::string issuer;
    std::string what;
    bool warn = false;
    std::string record_name;  // "": no record asked for
    std::string record_type;
    std::string record_value;
};

struct AccountKeyCreated {
    std::string issuer;
    std::string where;
};
struct AccountRegistered {
    std::string issuer;
    std::string url;
};
struct AccountLost {
    std::string issuer;
    std::string why;
};

// OCSP stapling (CertificateConfig::ocsp_stapling): a checked response
// was stored for workers to staple, or none could be had.
struct OcspStored {
    CertRef cert;
    std::time_t next_update = 0;  // 0: the responder gave none
    std::time_t refresh_at = 0;
};
struct OcspFailed {
    CertRef cert;
    std::string url;
    std::string what;
    std::time_t next_attempt = 0;
};

}  // namespace events

using Event = std::variant<
    events::EngineFailed, events::StoreUnusable, events::StoreWaiting, events::StoreLocked,
    events::UnfinishedRemoved, events::StorageFailed, events::IssuerFailed, events::UnknownIssuer,
    events::ThreadFailed, events::LeftoverAnswersWithdrawn, events::CertificateLoaded,
    events::OrderNeeded, events::JobFailed, events::RenewalWindow, events::RenewalInfoUnavailable,
    events::Ordering, events::ReplacementRefused, events::ProfileNotOffered, events::OrderResumed,
    events::SavedOrderDropped, events::SavedOrderIgnored, events::ChallengeFallback,
    events::AuthorizationValid, events::AlternateChain, events::NoPreferredChain,
    events::NamesMismatch, events::Issued, events::Failed, events::Expiring,
    events::CertificateState, events::OrderPostponed, events::RenewRequested, events::CommandOutput,
    events::AccountKeyCreated, events::AccountRegistered, events::AccountLost, events::SolverNote,
    events::OcspStored, events::OcspFailed>;

// Called from the engine's threads, one event at a time (EventSinks
// serialises them); a sink must not block for long: orders wait for it.
class EventSink {
public:
    virtual ~EventSink() = default;
    virtual void on_event(const Event& event) = 0;
};

// Hands every event to each sink in turn; a sink that throws loses only
// its own copy of the event.
class EventSinks : public EventSink {
public:
    void add(EventSink& sink) { sinks_.push_back(&sink); }
    void on_event(const Event& event) override {
        std::lock_guard<std::mutex> lk(mutex_);
        for (EventSink* sink : sinks_) {
            try {
                sink->on_event(event);
            } catch (...) {
                // Reporting must never take the engine down.
            }
        }
    }

private:
    std::mutex mutex_;
    std::vector<EventSink*> sinks_;
};

}  // namespace acme
