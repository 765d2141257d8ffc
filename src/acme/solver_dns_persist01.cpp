// dns-persist-01 (draft-ietf-acme-dns-persist): a standing TXT record
//   _validation-persist.<name>  "<issuer-domain-name>; accounturi=<account URL>[; policy=wildcard]"
// that lets this account validate the name for as long as it stays, with no
// DNS change per order. The record is made from the CA's challenge object
// and the account; when it is missing it is published once (dns_update or
// dns_hook) or, without either, logged for the operator to add. It is never
// removed: that is the point of it.
#include "dns.h"
#include "error.h"
#include "solver.h"
#include "text.h"

namespace acme {

namespace {

class DnsPersist01Solver : public Solver {
public:
    DnsPersist01Solver(std::unique_ptr<DnsPublisher> publisher, std::unique_ptr<DnsLookup> lookup,
                       std::chrono::seconds timeout, SolverEnv env)
        : publisher_(std::move(publisher)),
          lookup_(std::move(lookup)),
          timeout_(timeout),
          env_(std::move(env)) {
        if (!env_.record_needed) {
            env_.record_needed = [note = env_.note](const std::string& what, const std::string&,
                                                    const std::string&) { note(what, true); };
        }
    }

    void present(const Identifier& id, const Challenge& challenge, const std::string&) override {
        std::string name = record_name(id);
        std::vector<std::string> values = accepted_values(challenge);
        if (lookup_ && visible(name, values)) return;  // standing already: nothing to do
        if (publisher_) {
            publisher_->add_txt(id.value, name, values.front());
            env_.note("published the dns-persist-01 record " + record_text(name, values.front()) +
                          "; it stays for later orders",
                      false);
            return;
        }
        env_.record_needed("dns-persist-01 for " +
                               quoted(challenge.wildcard ? "*." + id.value : id.value) +
                               " needs the DNS record " + record_text(name, values.front()) +
                               ": add it once, it serves every later order",
                           name, values.front());
    }

    void wait_visible(const Identifier& id, const Challenge& challenge,
                      const std::string&) override {
        if (!lookup_) return;
        std::vector<std::string> values = accepted_values(challenge);
        wait_for_txt(*lookup_, record_name(id), values, timeout_, env_.pause, env_.note,
                     publisher_ ? "" : "; add " + record_text(record_name(id), values.front()));
    }

    // The record stands.
    void cleanup(const Identifier&, const Challenge&, const std::string&) noexcept override {}

private:
    static std::string record_name(const Identifier& id) {
        return "_validation-persist." + id.value;
    }

    static std::string record_text(const std::string& name, const std::string& value) {
        return name + ". IN TXT \"" + value + "\"";
    }

    // The value to publish first; for a name (not a wildcard) the wildcard
    // form serves too, so a record made for both is not made again.
    std::vector<std::string> accepted_values(const Challenge& challenge) const {
        if (challenge.issuer_domain_names.empty()) {
            throw Error("the CA's dns-persist-01 challenge names no issuer-domain-names");
        }
        std::string account = env_.account_url();
        if (account.empty()) throw Error("no account URL yet for the dns-persist-01 record");
        std::string plain = challenge.issuer_domain_names.front() + "; accounturi=" + account;
        std::string wildcard = plain + "; policy=wildcard";
        if (challenge.wildcard) return {wildcard};
        return {plain, wildcard};
    }

    bool visible(const std::string& name, const std::vector<std::string>& values) {
        try {
            for (const DnsLookup::Answer& a : lookup_->check_txt(name, values)) {
                if (!a.has_value) return false;
            }
            return true;
        } catch (const Error&) {
            return false;  // wait_visible says why
        }
    }

    std::unique_ptr<DnsPublisher> publisher_;
    std::unique_ptr<DnsLookup> lookup_;
    std::chrono::seconds timeout_;
    SolverEnv env_;
};

}  // namespace

std::unique_ptr<Solver> make_dns_persist01_solver(std::unique_ptr<DnsPublisher> publisher,
                                                  std::unique_ptr<DnsLookup> lookup,
                                                  std::chrono::seconds propagation_timeout,
                                                  SolverEnv env) {
    return std::make_unique<DnsPersist01Solver>(std::move(publisher), std::move(lookup),
                                                propagation_timeout, std::move(env));
}

}  // namespace acme
