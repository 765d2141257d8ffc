// tls-alpn-01 (RFC 8737): workers answer a ClientHello offering acme-tls/1
// with a certificate carrying the digest of the key authorization.
#include "crypto.h"
#include "error.h"
#include "solver.h"
#include "tls_alpn.h"

namespace acme {

namespace {

class TlsAlpn01Solver : public Solver {
public:
    explicit TlsAlpn01Solver(ChallengeBoard& board) : board_(board) {}

    void present(const Identifier& id, const Challenge&,
                 const std::string& key_authorization) override {
        if (!board_.publish_tls_alpn01(tls_alpn_server_name(id), id.value,
                                       sha256(key_authorization))) {
            throw Error("shared memory is full or the name is too long");
        }
    }

    // Only this answer's digest: another order may have published a newer
    // one for the same name.
    void cleanup(const Identifier& id, const Challenge&,
                 const std::string& key_authorization) noexcept override {
        try {
            board_.withdraw_tls_alpn01(tls_alpn_server_name(id), sha256(key_authorization));
        } catch (...) {
            // Out of memory computing the digest: the answer stays until the
            // next engine withdraws what it finds.
        }
    }

private:
    ChallengeBoard& board_;
};

}  // namespace

std::unique_ptr<Solver> make_tls_alpn01_solver(ChallengeBoard& board) {
    return std::make_unique<TlsAlpn01Solver>(board);
}

}  // namespace acme
