// One issuer as the engine runs it: its storage, HTTP settings, solvers and
// the ACME account (key, registration, External Account Binding).
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "acme_client.h"
#include "engine_context.h"
#include "http.h"
#include "pacer.h"
#include "solver.h"
#include "storage.h"

namespace acme {

struct IssuerState {
    const IssuerConfig* config = nullptr;
    Storage* storage = nullptr;  // shared by issuers with the same state_path; null: unusable
    HttpOptions http_options;
    Solvers solvers;
    // Guards session creation and account registration, so only the first
    // order of an issuer talks to newAccount.
    std::mutex mutex;
    std::unique_ptr<AcmeSession> session;
    bool account_json_checked = false;
    Pacer pacer;  // background_rate
    // Scheduler fields, guarded by its mutex: jobs running for this issuer
    // and how many may (max_concurrent_orders).
    std::size_t active_jobs = 0;
    std::size_t max_active = 0;
};

// The issuer's protocol session, made on first use (the account key is
// read, or created in the storage). Throws when the key cannot be had.
AcmeSession& issuer_session(const EngineContext& ctx, IssuerState& is);

// Registers the account (or finds it for the key) unless the session has
// its URL, and keeps account.json in the storage.
void ensure_account(const EngineContext& ctx, IssuerState& is, AcmeClient& client);

// The CA no longer knows the account: the next order registers it again.
void forget_account(const EngineContext& ctx, IssuerState& is, const std::string& why);

}  // namespace acme
