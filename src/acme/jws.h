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

// The externalAccountBinding member of a newAccount payload (RFC 8555
// section 7.3.4): a JWS over the account's public JWK, MACed with the key the
// CA handed out. alg is "HS256", "HS384" or "HS512"; mac_key is raw bytes.
std::string jws_external_account_binding(const PrivateKey& account_key, std::string_view alg,
                                         std::string_view kid, std::string_view mac_key,
                                         std::string_view url);

}  // namespace acme
