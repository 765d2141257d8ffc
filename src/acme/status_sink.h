// The status sink: keeps the status area (StatusBoard) up to date from the
// engine's events, for the status page and its metrics.
#pragma once

#include <ctime>
#include <functional>
#include <map>
#include <string>

#include "events.h"
#include "status_board.h"

namespace acme {

class StatusSink : public EventSink {
public:
    using Clock = std::function<std::time_t()>;
    // Writes in the board's current epoch: a later renew_epoch() (a new
    // configuration) ends this sink's writes.
    explicit StatusSink(StatusBoard& board, Clock clock = {});
    void on_event(const Event& event) override;

private:
    template <typename E>
    void handle(const E&) {}
    void handle(const events::CertificateState& e);
    void handle(const events::Ordering& e);
    void handle(const events::OrderResumed& e);
    void handle(const events::Issued& e);
    void handle(const events::Failed& e);
    void handle(const events::OrderPostponed& e);
    void handle(const events::RenewalWindow& e);
    void handle(const events::AuthorizationValid& e);
    void handle(const events::AccountRegistered& e);
    void handle(const events::AccountLost& e);
    void handle(const events::IssuerFailed& e);
    void handle(const events::SolverNote& e);

    void started(const CertRef& cert);
    void ended(const CertRef& cert);
    void count(const std::string& issuer, const std::function<void(IssuerStatus&)>& change);

    StatusBoard& board_;
    Clock clock_;
    std::uint64_t epoch_;
    std::map<std::string, std::string> issuer_of_;  // certificate id -> issuer name
};

}  // namespace acme
