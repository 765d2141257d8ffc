// Which solver answers which challenge type: a new type is one more line in
// make_solvers() and a file of its own.
#include "solver.h"

namespace acme {

void Solvers::add(std::string type, std::unique_ptr<Solver> solver) {
    solvers_[std::move(type)] = std::move(solver);
}

Solver* Solvers::find(std::string_view type) const {
    auto it = solvers_.find(type);
    return it == solvers_.end() ? nullptr : it->second.get();
}

Solvers make_solvers(const IssuerConfig& issuer, ChallengeBoard& board) {
    Solvers solvers;
    for (const std::string& type : issuer.challenges) {
        if (type == "http-01") solvers.add(type, make_http01_solver(board));
        if (type == "tls-alpn-01") solvers.add(type, make_tls_alpn01_solver(board));
    }
    return solvers;
}

}  // namespace acme
