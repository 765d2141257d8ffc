// Waiting until a TXT record can be seen by every server the lookup asks,
// before the CA is told to look (dns-01, dns-persist-01).
#include <algorithm>

#include "dns.h"
#include "error.h"
#include "text.h"

namespace acme {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// A quick first look (a server that applies an update at once is common),
// then up to 8 s apart.
void wait_for_txt(DnsLookup& lookup, const std::string& name,
                  const std::vector<std::string>& values, std::chrono::seconds timeout,
                  const std::function<void(milliseconds)>& pause,
                  const std::function<void(const std::string&, bool)>& note,
                  const std::string& hint) {
    auto deadline = SteadyClock::now() + timeout;
    milliseconds delay{250};
    for (bool first = true;; first = false) {
        std::string missing;
        for (const DnsLookup::Answer& a : lookup.check_txt(name, values)) {
            if (!a.has_value) missing += (missing.empty() ? "" : "; ") + a.server + ": " + a.detail;
        }
        if (missing.empty()) return;
        auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
        if (left.count() <= 0) {
            throw Error("the TXT record " + quoted(name) + " was not seen after " +
                        std::to_string(timeout.count()) +
                        " s (dns_propagation_timeout) by every server asked (" + missing + ")" +
                        hint);
        }
        if (first) {
            note("waiting up to " + std::to_string(timeout.count()) + " s for the TXT record " +
                     quoted(name) + " (" + missing + ")",
                 false);
        }
        pause(std::min(delay, left));
        delay = std::min(delay * 2, milliseconds(8000));
    }
}

}  // namespace acme
