// The challenge seam: one solver per challenge type publishes the answer the
// CA will look for and withdraws it afterwards. The order runner chooses a
// solver by the challenge's type (Solvers::find), never by special cases;
// make_solvers() is the one place that decides which types an issuer has.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "acme_client.h"
#include "engine_config.h"
#include "identifier.h"
#include "shared_state.h"

namespace acme {

class Solver {
public:
    virtual ~Solver() = default;
    // Publishes the answer to `challenge` for `id`; returns once the CA may
    // validate. Throws Error (with the reason) when it cannot.
    virtual void present(const Identifier& id, const Challenge& challenge,
                         const std::string& key_authorization) = 0;
    // Called for every answer once all of an order's answers are
    // presented, before the CA is told to look: returns once this one can
    // be seen (DNS propagation), so that the waits overlap. Throws Error.
    virtual void wait_visible(const Identifier&, const Challenge&, const std::string&) {}
    // Withdraws what present() published, however validation went.
    virtual void cleanup(const Identifier& id, const Challenge& challenge,
                         const std::string& key_authorization) noexcept = 0;

    // A solver that publishes all of an order's answers at once (dns-01:
    // one update message per zone) says so; the order runner then calls
    // present_together() and cleanup_together() with all of them instead
    // of present() and cleanup() for each. A throw publishes none.
    struct Answer {
        Identifier id;
        Challenge challenge;
        std::string key_authorization;
    };
    virtual bool presents_together() const { return false; }
    virtual void present_together(const std::vector<Answer>&) {}
    virtual void cleanup_together(const std::vector<Answer>&) noexcept {}
};

// The solvers of one issuer, by challenge type ("http-01").
class Solvers {
public:
    void add(std::string type, std::unique_ptr<Solver> solver);
    // nullptr when this issuer cannot answer the type.
    Solver* find(std::string_view type) const;

private:
    std::map<std::string, std::unique_ptr<Solver>, std::less<>> solvers_;
};

// http-01: the key authorization, served by workers from the shared zone.
std::unique_ptr<Solver> make_http01_solver(ChallengeBoard& board);
// tls-alpn-01: the digest a worker puts into the challenge certificate.
std::unique_ptr<Solver> make_tls_alpn01_solver(ChallengeBoard& board);

// dns-01 (solver_dns01.cpp): the TXT record _acme-challenge.<name>, through
// `publisher`, waited for through `lookup` (null: no propagation check).
// `pause` sleeps between lookups (and gives up when the engine stops).
// `env.note` logs what the operator should know (a record left behind).
class DnsPublisher;
class DnsLookup;
struct SolverEnv {
    // Sleeps; throws (Stopped) when the engine stops meanwhile.
    std::function<void(std::chrono::milliseconds)> pause;
    // A line for the log; `warn` for trouble, else a notice.
    std::function<void(const std::string& what, bool warn)> note;
    // Like a warning `note`, asking the operator to add the DNS record
    // `name` TXT `value` (dns-persist-01 with no publisher); also shown in
    // the status page.
    std::function<void(const std::string& what, const std::string& name, const std::string& value)>
        record_needed;
    // The issuer's account URL (registered before any challenge).
    std::function<std::string()> account_url;
};
std::unique_ptr<Solver> make_dns01_solver(std::unique_ptr<DnsPublisher> publisher,
                                          std::unique_ptr<DnsLookup> lookup,
                                          std::chrono::seconds propagation_timeout, SolverEnv env);

// dns-persist-01 (solver_dns_persist01.cpp): the standing record
// _validation-persist.<name>, published once through `publisher` when there
// is one (else logged for the operator to add), and never removed.
std::unique_ptr<Solver> make_dns_persist01_solver(std::unique_ptr<DnsPublisher> publisher,
                                                  std::unique_ptr<DnsLookup> lookup,
                                                  std::chrono::seconds propagation_timeout,
                                                  SolverEnv env);

// The solvers for the challenge types the issuer is configured with.
Solvers make_solvers(const IssuerConfig& issuer, ChallengeBoard& board, SolverEnv env = {});

}  // namespace acme
