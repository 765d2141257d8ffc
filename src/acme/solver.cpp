// Which solver answers which challenge type: a new type is one more line in
// make_solvers() and a file of its own.
#include "solver.h"

#include <thread>

#include "dns.h"

namespace acme {

void Solvers::add(std::string type, std::unique_ptr<Solver> solver) {
    solvers_[std::move(type)] = std::move(solver);
}

Solver* Solvers::find(std::string_view type) const {
    auto it = solvers_.find(type);
    return it == solvers_.end() ? nullptr : it->second.get();
}

Solvers make_solvers(const IssuerConfig& issuer, ChallengeBoard& board, SolverEnv env) {
    if (!env.pause) env.pause = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
    if (!env.note) env.note = [](const std::string&, bool) {};
    if (!env.account_url) env.account_url = [] { return std::string(); };
    Solvers solvers;
    for (const std::string& type : issuer.challenges) {
        if (type == "http-01") solvers.add(type, make_http01_solver(board));
        if (type == "tls-alpn-01") solvers.add(type, make_tls_alpn01_solver(board));
        if (type == "dns-01") {
            if (auto publisher = make_dns_publisher(issuer.dns)) {
                solvers.add(
                    type, make_dns01_solver(
                              std::move(publisher),
                              issuer.dns.propagation_check ? make_dns_lookup(issuer.dns) : nullptr,
                              issuer.dns.propagation_timeout, env));
            }
        }
        if (type == "dns-persist-01") {
            solvers.add(type,
                        make_dns_persist01_solver(
                            make_dns_publisher(issuer.dns),
                            issuer.dns.propagation_check ? make_dns_lookup(issuer.dns) : nullptr,
                            issuer.dns.propagation_timeout, env));
        }
    }
    return solvers;
}

}  // namespace acme
