// Challenge types: the names the configuration accepts, and which type an
// order uses for an identifier, given the preference order and which types
// failed for it before.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "json.h"

namespace acme {

// "http-01" or "http" gives "http-01", "tls-alpn-01" or "tls-alpn" gives
// "tls-alpn-01", "dns-01" or "dns" gives "dns-01", "dns-persist-01" gives
// itself; nullopt for any type this build cannot answer.
std::optional<std::string> canonical_challenge_type(std::string_view name);

// The types canonical_challenge_type() accepts, for error messages.
inline constexpr std::string_view supported_challenge_types =
    "http-01, tls-alpn-01, dns-01, dns-persist-01";

// Remembers, per identifier, when each challenge type last failed, so that
// the next order falls back to another type instead of repeating a failure.
class ChallengeHistory {
public:
    // Of the `preferred` types the CA `offered`, the first that never failed
    // for `name`, else the one that failed longest ago; nullopt when the CA
    // offers none of them.
    std::optional<std::string> choose(const std::vector<std::string>& preferred,
                                      const std::vector<std::string>& offered,
                                      const std::string& name) const;
    void failed(const std::string& name, const std::string& type);
    // A type that worked is as good as new.
    void succeeded(const std::string& name, const std::string& type);

    // {"<name>": ["<type>", ...]}, the failed types oldest first: kept in
    // the certificate's .json file so that restarts and reloads remember.
    Json to_json() const;
    void load(const Json& j);

private:
    std::map<std::pair<std::string, std::string>, std::uint64_t> failures_;  // -> when
    std::uint64_t clock_ = 0;
};

}  // namespace acme
