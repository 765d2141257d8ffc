// Challenge type names and the per-identifier choice between them.
#include "challenge.h"

#include <algorithm>

namespace acme {

std::optional<std::string> canonical_challenge_type(std::string_view name) {
    if (name == "http-01" || name == "http") return std::string("http-01");
    if (name == "tls-alpn-01" || name == "tls-alpn") return std::string("tls-alpn-01");
    if (name == "dns-01" || name == "dns") return std::string("dns-01");
    if (name == "dns-persist-01") return std::string("dns-persist-01");
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

Json ChallengeHistory::to_json() const {
    std::map<std::string, std::vector<std::pair<std::uint64_t, std::string>>> by_name;
    for (const auto& [key, when] : failures_) by_name[key.first].emplace_back(when, key.second);
    Json j = Json::object();
    for (auto& [name, types] : by_name) {
        std::sort(types.begin(), types.end());
        Json list = Json::array();
        for (const auto& entry : types) list.push(Json::string(entry.second));
        j.set(name, list);
    }
    return j;
}

void ChallengeHistory::load(const Json& j) {
    if (!j.is_object()) return;
    for (const std::string& name : j.keys()) {
        for (const Json& type : j.get(name).items()) {
            if (type.is_string()) failed(name, type.as_string());
        }
    }
}

}  // namespace acme
