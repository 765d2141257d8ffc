// One managed certificate as the engine knows it: what is stored, when it is
// due (renewal, retry, ARI check), and its records in the storage (the
// <id>.json record and the saved order of an order in progress).
#pragma once

#include <chrono>
#include <ctime>
#include <optional>
#include <string>

#include "accounts.h"
#include "cert_record.h"
#include "challenge.h"
#include "crypto.h"
#include "engine_context.h"
#include "schedule.h"

namespace acme {

struct CertState {
    const CertificateConfig* config = nullptr;
    IssuerState* issuer = nullptr;
    std::string basename;
    std::string name;          // first identifier, for log lines
    RenewBefore renew_before;  // the certificate's, else the issuer's

    // Scheduler fields, guarded by the scheduler's mutex.
    std::time_t due = 0;
    bool in_flight = false;

    // False until the storage was read (it may be briefly out of reach), and
    // again after another engine held the certificate's lease: the next job
    // reads the storage before deciding anything.
    bool inspected = false;
    // The lease the running job holds, for the order runner to renew.
    Lease* lease = nullptr;

    // Owned by whoever runs a job for it (in_flight guarantees one at a time).
    int failures = 0;
    ChallengeHistory challenges;
    std::string profile;                // asked for in the last order, "" for none
    std::time_t retry_at = 0;           // next order attempt, when missing or failing
    std::time_t retry_after_until = 0;  // the CA's Retry-After: no order before this
    std::optional<LastError> last_error;
    std::optional<CertificateInfo> current;
    std::time_t ratio_pick = 0;  // random time in the ratio rule's window
    std::optional<Window> ari_window;
    std::time_t ari_check_at = 0;  // 0: no ARI check planned
    int ari_failures = 0;          // in a row, to warn only once
    std::time_t renewal_at = 0;    // ratio_pick, or earlier when ARI says so
    std::string missing_reason;    // why there is no current certificate
    bool renew_requested = false;  // renew-now: order at once, whatever is stored
    std::time_t paced_at = 0;      // the place the issuer's pacer gave the next job

    CertRef ref() const { return {basename, name}; }
    Storage& storage() const { return *issuer->storage; }

    // Due when missing or failing: the retry time; else the renewal time.
    bool order_due(std::time_t now) const {
        if (renew_requested) return true;
        return (!current || failures > 0) ? now >= retry_at : now >= renewal_at;
    }
    // ARI can only bring renewal forward: it is not asked once renewal is
    // due or failing.
    std::time_t next_due() const {
        if (renew_requested) return 0;
        if (!current || failures > 0) return retry_at;
        return ari_check_at != 0 ? std::min(renewal_at, ari_check_at) : renewal_at;
    }
};

// Decides from the storage whether the certificate is current, and when to
// act on it (at start-up, and when the storage or a lease was in the way).
void inspect_stored(const EngineContext& ctx, CertState& c);

// Tells the sinks what is known now (events::CertificateState).
void report_state(const EngineContext& ctx, const CertState& c);

// Writes <id>.json from the state (and reports it); a failure is reported, not thrown.
void write_record(const EngineContext& ctx, const CertState& c, std::time_t now);

// The outcome of an order attempt: the state, the record and the event.
void record_issued(const EngineContext& ctx, CertState& c, std::chrono::duration<double> took);
// The order hook said not now: ask again after the configured delay.
void postpone_order(const EngineContext& ctx, CertState& c, const std::string& why);
void record_failure(const EngineContext& ctx, CertState& c, LastError failure,
                    std::optional<std::chrono::seconds> retry_after);

// The saved order of an order in progress; a damaged one is reported,
// removed and treated as none.
std::optional<SavedOrder> load_saved_order(const EngineContext& ctx, const CertState& c);
// `key` once the CSR is sent (it is stored as a secret).
void save_order(const EngineContext& ctx, const CertState& c, const std::string& url,
                const PrivateKey* key);
void discard_saved_order(const EngineContext& ctx, const CertState& c);

}  // namespace acme
