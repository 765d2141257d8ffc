// dns-01 (RFC 8555 section 8.4): the TXT record _acme-challenge.<name> holds
// base64url(SHA-256(key authorization)). A wildcard and its apex share the
// record name with two values, so records are added and removed one value
// at a time. Before the CA looks, every server the lookup asks must see it.
#include <algorithm>

#include "base64url.h"
#include "crypto.h"
#include "dns.h"
#include "error.h"
#include "solver.h"
#include "text.h"

namespace acme {

namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

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

    // Polls with backoff: a quick first look (a server that applies the
    // update at once), then up to 8 s apart.
    void wait_visible(const Identifier& id, const Challenge&,
                      const std::string& key_authorization) override {
        if (!lookup_) return;
        std::string name = record_name(id), value = txt_value(key_authorization);
        auto deadline = SteadyClock::now() + timeout_;
        milliseconds delay{250};
        for (bool first = true;; first = false) {
            std::vector<DnsLookup::Answer> answers = lookup_->check_txt(name, value);
            std::string missing;
            for (const DnsLookup::Answer& a : answers) {
                if (!a.has_value) {
                    missing += (missing.empty() ? "" : "; ") + a.server + ": " + a.detail;
                }
            }
            if (missing.empty()) return;
            auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
            if (left.count() <= 0) {
                throw Error("the TXT record " + quoted(name) + " was not seen after " +
                            std::to_string(timeout_.count()) +
                            " s (dns_propagation_timeout) by every server asked (" + missing + ")");
            }
            if (first) {
                env_.note("waiting up to " + std::to_string(timeout_.count()) +
                              " s for the TXT record " + quoted(name) + " (" + missing + ")",
                          false);
            }
            env_.pause(std::min(delay, left));
            delay = std::min(delay * 2, milliseconds(8000));
        }
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

private:
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
