// OCSP for stapling a stored certificate: the responder's URL, the request
// for the chain's leaf, and what a response says about it. The engine (in
// the helper) fetches and checks responses; workers only staple them.
#pragma once

#include <ctime>
#include <string>
#include <string_view>

namespace acme {

// The leaf's OCSP responder (authorityInfoAccess); "" when it names none.
std::string ocsp_responder_url(std::string_view pem_chain);

// A DER OCSPRequest for the chain's leaf, its issuer being the chain's
// second certificate. Throws acme::Error without one.
std::string make_ocsp_request(std::string_view pem_chain);

struct OcspStatus {
    bool good = false;
    std::string error;  // why it cannot be stapled: "revoked", "unknown", ...
    std::time_t this_update = 0;
    std::time_t next_update = 0;  // 0: the responder gave none
    // When to fetch again: before half of its validity is gone.
    std::time_t refresh_at = 0;
};

// Checks a DER OCSPResponse for the chain's leaf: a successful answer about
// that certificate, current at `now`, and with `verify` (ssl_stapling_verify)
// signed by the issuer or by a responder the issuer delegated to. Never throws.
OcspStatus check_ocsp_response(std::string_view der, std::string_view pem_chain, bool verify,
                               std::time_t now);

// Half of a response's validity from this_update; an hour without next_update.
std::time_t ocsp_refresh_time(std::time_t this_update, std::time_t next_update);

}  // namespace acme
