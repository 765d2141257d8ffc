// How a certificate is ordered: a saved order resumed or a new one (with
// "replaces" for ARI and the profile), every pending authorization answered
// through the issuer's solvers and validated in parallel, finalize with a
// fresh key, download with the preferred chain, and storage of the result.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "acme_client.h"
#include "cert_state.h"
#include "error.h"
#include "http.h"

namespace acme {

// One attempt: runs the order (falling back to another challenge type when
// one fails and the CA offered another), then records the outcome in the
// state, the record and the events. Throws only Stopped.
void attempt_order(const EngineContext& ctx, CertState& c, HttpClient& http);

// A failure that carries the ACME problem type behind it, for the record.
struct OrderFailure : Error {
    OrderFailure(const std::string& what, std::string problem_type)
        : Error(what), type(std::move(problem_type)) {}
    std::string type;
    // A challenge failed and the CA offered another configured type for the
    // same identifier: a new order can try that one at once.
    bool other_challenge = false;
};

class OrderRunner {
public:
    OrderRunner(const EngineContext& ctx, CertState& cert, HttpClient& http)
        : ctx_(ctx), c_(cert), http_(http) {}

    // Runs orders until one succeeds or fails without a fallback left.
    // Throws CaError, OrderFailure or Error; on success c.current is the
    // stored certificate.
    void run();

private:
    void run_order();
    bool resume_order(AcmeClient& client, const SavedOrder& saved, Order& order);
    Order new_order(AcmeClient& client, const Directory& dir);
    void complete_order(AcmeClient& client, AcmeSession& session, Order order,
                        std::optional<PrivateKey> key);
    void authorize(AcmeClient& client, const Order& order, const PrivateKey& account_key);
    Order wait_order(AcmeClient& client, Order order, std::initializer_list<const char*> waiting);
    Order finalize(AcmeClient& client, Order order, const std::string& csr_der);
    std::string order_profile(const Directory& directory);
    std::string preferred_chain(AcmeClient& client, std::string chain,
                                const std::vector<std::string>& alternates);
    void keep_lease();

    const EngineContext& ctx_;
    CertState& c_;
    HttpClient& http_;
    std::chrono::steady_clock::time_point lease_renewed_{};  // the first wait renews
};

}  // namespace acme
