// Challenge type names and the per-identifier choice between them.
#include "challenge.h"

#include <algorithm>

namespace acme {

std::optional<std::string> canonical_challenge_type(std::string_view name) {
    if (name == "http-01" || name == "http") return std::string("http-01");
    if (name == "tls-alpn-01" || name == "tls-alpn") return std::string("tls-alpn-01");
    return std::nullopt;
}

std::optional<std::string> ChallengeHistory::choose(const std::vector<std::string>& preferred,
                                                    const std::vector<std::string>& offered,
                                                    const std::string& name) const {
    std::optional<std::string> best;
    std::uint64_t best_failure = 0;
    for (const std::string& type : preferred) {
        if (std::find(offered.begin(), offered.end(), type) == offered.end()) continue;
        auto it = failures_.find({name, type});
        std::uint64_t failure = it == failures_.end() ? 0 : it->second;
        if (!best || failure < best_failure) {
            best = type;
            best_failure = failure;
        }
        if (failure == 0) break;  // never failed: nothing later can beat it
    }
    return best;
}

void ChallengeHistory::failed(const std::string& name, const std::string& type) {
    failures_[{name, type}] = ++clock_;
}

void ChallengeHistory::succeeded(const std::string& name, const std::string& type) {
    failures_.erase({name, type});
}

}  // namespace acme
