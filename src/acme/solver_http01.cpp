// http-01 (RFC 8555 section 8.3): workers answer
// /.well-known/acme-challenge/<token> from the shared zone.
#include "error.h"
#include "solver.h"

namespace acme {

namespace {

class Http01Solver : public Solver {
public:
    explicit Http01Solver(ChallengeBoard& board) : board_(board) {}

    void present(const Identifier&, const Challenge& challenge,
                 const std::string& key_authorization) override {
        if (!board_.publish_http01(challenge.token, key_authorization)) {
            throw Error("shared memory is full or the name is too long");
        }
    }

    void cleanup(const Identifier&, const Challenge& challenge,
                 const std::string&) noexcept override {
        board_.withdraw_http01(challenge.token);
    }

private:
    ChallengeBoard& board_;
};

}  // namespace

std::unique_ptr<Solver> make_http01_solver(ChallengeBoard& board) {
    return std::make_unique<Http01Solver>(board);
}

}  // namespace acme
