// dns-01 (RFC 8555 section 8.4): the TXT record _acme-challenge.<name> holds
// base64url(SHA-256(key authorization)). A wildcard and its apex share the
// record name with two values, so records are added and removed one value
// at a time. An order's records are published together (one RFC 2136 update
// per zone). Before the CA looks, every server the lookup asks must see it.
#include "base64url.h"
#include "crypto.h"
#include "dns.h"
#include "error.h"
#include "solver.h"
#include "text.h"

namespace acme {

namespace {

class Dns01Solver : public Solver {
public:
    Dns01Solver(std::unique_ptr<DnsPublisher> publisher, std::unique_ptr<DnsLookup> lookup,
                std::chrono::seconds timeout, SolverEnv env)
        : publisher_(std::move(publisher)),
          lookup_(std::move(lookup)),
          timeout_(timeout),
          env_(std::move(env)) {}

    void present(const Identifier& id, const Challenge&,
                 const std::string& key_authorization) override {
        publisher_->add_txt(id.value, record_name(id), txt_value(key_authorization));
    }

    void wait_visible(const Identifier& id, const Challenge&,
                      const std::string& key_authorization) override {
        if (!lookup_) return;
        wait_for_txt(*lookup_, record_name(id), {txt_value(key_authorization)}, timeout_,
                     env_.pause, env_.note);
    }

    void cleanup(const Identifier& id, const Challenge&,
                 const std::string& key_authorization) noexcept override {
        try {
            std::string error;
            publisher_->remove_txt(id.value, record_name(id), txt_value(key_authorization), error);
            if (!error.empty()) {
                env_.note("the dns-01 record " + quoted(record_name(id)) +
                              " may be left behind: " + error,
                          true);
            }
        } catch (...) {
            // Out of memory: the record stays, and with it no harm but clutter.
        }
    }

    // All of an order's records at once: names in one zone share an update.
    bool presents_together() const override { return true; }

    void present_together(const std::vector<Answer>& answers) override {
        publisher_->add_txts(records(answers));
    }

    void cleanup_together(const std::vector<Answer>& answers) noexcept override {
        try {
            std::string error;
            publisher_->remove_txts(records(answers), error);
            if (!error.empty()) env_.note("dns-01 records may be left behind: " + error, true);
        } catch (...) {
            // As in cleanup().
        }
    }

private:
    static std::vector<TxtRecord> records(const std::vector<Answer>& answers) {
        std::vector<TxtRecord> out;
        for (const Answer& a : answers) {
            out.push_back({a.id.value, record_name(a.id), txt_value(a.key_authorization)});
        }
        return out;
    }
    static std::string record_name(const Identifier& id) { return "_acme-challenge." + id.value; }
    static std::string txt_value(const std::string& key_authorization) {
        return base64url_encode(sha256(key_authorization));
    }

    std::unique_ptr<DnsPublisher> publisher_;
    std::unique_ptr<DnsLookup> lookup_;
    std::chrono::seconds timeout_;
    SolverEnv env_;
};

}  // namespace

std::unique_ptr<Solver> make_dns01_solver(std::unique_ptr<DnsPublisher> publisher,
                                          std::unique_ptr<DnsLookup> lookup,
                                          std::chrono::seconds propagation_timeout, SolverEnv env) {
    return std::make_unique<Dns01Solver>(std::move(publisher), std::move(lookup),
                                         propagation_timeout, std::move(env));
}

}  // namespace acme
