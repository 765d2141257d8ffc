// dns_hook: the TXT record is published by the operator's program, called as
// mod_md's MDChallengeDns01 (version 2) calls it, so its scripts work:
//   PATH ARG... setup <domain> <value>      PATH ARG... teardown <domain> <value>
// <domain> is the identifier without "*."; the record is
// _acme-challenge.<domain> (or _validation-persist.<domain>, see the solver).
#include "dns.h"
#include "error.h"
#include "run_command.h"
#include "text.h"

namespace acme {

namespace {

// The last lines of what the program said, on one line for the log.
std::string tail(const std::string& output) {
    std::string s = output.size() > 2000 ? output.substr(output.size() - 2000) : output;
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    for (char& c : s) {
        if (c == '\n') c = ' ';
    }
    return s.empty() ? "no output" : "output: " + s;
}

class DnsHook : public DnsPublisher {
public:
    explicit DnsHook(const DnsConfig& config) : config_(config) {}

    void add_txt(const std::string& domain, const std::string& name,
                 const std::string& value) override {
        std::string error = call("setup", domain, name, value);
        if (!error.empty()) throw Error(error);
    }

    void remove_txt(const std::string& domain, const std::string& name, const std::string& value,
                    std::string& error) noexcept override {
        try {
            error = call("teardown", domain, name, value);
        } catch (const std::exception& e) {
            error = e.what();
        }
    }

private:
    // "" when it worked, else why not.
    std::string call(const char* action, const std::string& domain, const std::string& name,
                     const std::string& value) {
        std::vector<std::string> argv = config_.hook;
        argv.insert(argv.end(), {action, domain, value});
        // The record name is given too, for scripts that serve both types.
        CommandResult r = run_command(argv, {"ACME_DNS_RECORD=" + name}, config_.hook_timeout);
        std::string what =
            "dns_hook " + quoted(config_.hook.front()) + " " + action + " " + quoted(domain);
        if (!r.started) return what + " could not run: " + tail(r.output);
        if (r.timed_out) {
            long long ms = config_.hook_timeout.count();
            std::string limit =
                ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
            return what + " was killed after " + limit + " (dns_hook_timeout), " + tail(r.output);
        }
        if (r.exit_code != 0) {
            return what + " exited with " + std::to_string(r.exit_code) + ", " + tail(r.output);
        }
        return "";
    }

    DnsConfig config_;
};

}  // namespace

std::unique_ptr<DnsPublisher> make_dns_hook(const DnsConfig& config) {
    return std::make_unique<DnsHook>(config);
}

}  // namespace acme
