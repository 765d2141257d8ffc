// JSON Web Signature in flattened JSON serialization, as ACME requests use it
// (RFC 8555 section 6.2).
#pragma once

#include <string>
#include <string_view>

#include "crypto.h"

namespace acme {

// Protected header {"alg","nonce","url"} plus either "kid" (when kid is not
// empty) or "jwk". payload is the JSON text to sign; an empty payload makes
// a POST-as-GET (payload "" in the JWS).
std::string jws_sign(const PrivateKey& key, std::string_view url, std::string_view nonce,
                     std::string_view kid, std::string_view payload);

}  // namespace acme
