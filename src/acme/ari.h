// ACME Renewal Information (RFC 9773): the CA's suggested renewal window for
// a current certificate, which can only bring renewal forward.
#pragma once

#include "cert_state.h"
#include "http.h"

namespace acme {

// Fetches the window, moves the renewal time when it changed, and plans the
// next look. Failures only delay that look: the ratio rule still applies.
// Throws only Stopped.
void check_renewal_info(const EngineContext& ctx, CertState& c, HttpClient& http);

}  // namespace acme
