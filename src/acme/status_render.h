// The status page's two formats, JSON and the Prometheus text format, made
// from what the configuration says (names, issuers) and what the status area
// holds. Output goes to `out` in pieces, so that no buffer limits it.
#pragma once

#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "json.h"
#include "status_board.h"

namespace acme {

struct CertificateView {
    std::string id;
    std::vector<std::string> names;
    std::string issuer;
    std::string key_type;
    std::optional<CertificateStatus> status;  // none: the engine has not said yet
};

struct IssuerView {
    std::string name;
    std::string directory;
    std::optional<IssuerStatus> status;
};

using StatusOutput = std::function<void(std::string_view)>;

// "valid", "pending", "renewing", "failed" or "expired".
std::string certificate_state(const CertificateView& c, std::time_t now);

void render_status_json(std::string_view version, std::time_t now,
                        const std::vector<CertificateView>& certificates,
                        const std::vector<IssuerView>& issuers, const StatusOutput& out);
void render_status_prometheus(std::time_t now, const std::vector<CertificateView>& certificates,
                              const std::vector<IssuerView>& issuers, const StatusOutput& out);

}  // namespace acme
