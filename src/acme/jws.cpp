// Flattened JWS for ACME requests. The JSON is written by hand: the layout is
// fixed and tiny, and only url/nonce/kid need string escaping.
#include "jws.h"

#include <cstdio>

#include "base64url.h"
#include "json.h"

namespace acme {

namespace {}  // namespace

std::string jws_sign(const PrivateKey& key, std::string_view url, std::string_view nonce,
                     std::string_view kid, std::string_view payload) {
    // RFC 8555 section 6.2: "kid" once the account exists, "jwk" only for
    // newAccount (and revocation by certificate key).
    std::string header = "{\"alg\":" + json_quote(key.jws_alg());
    if (kid.empty())
        header += ",\"jwk\":" + key.jwk();
    else
        header += ",\"kid\":" + json_quote(kid);
    header += ",\"nonce\":" + json_quote(nonce) + ",\"url\":" + json_quote(url) + "}";

    std::string protected64 = base64url_encode(header);
    // POST-as-GET signs an empty payload, which base64url-encodes to "".
    std::string payload64 = base64url_encode(payload);
    std::string signature = key.sign(protected64 + "." + payload64);
    return "{\"protected\":\"" + protected64 + "\",\"payload\":\"" + payload64 +
           "\",\"signature\":\"" + base64url_encode(signature) + "\"}";
}

std::string jws_external_account_binding(const PrivateKey& account_key, std::string_view alg,
                                         std::string_view kid, std::string_view mac_key,
                                         std::string_view url) {
    // No nonce here: the outer newAccount JWS carries it (section 7.3.4).
    std::string header = "{\"alg\":" + json_quote(alg) + ",\"kid\":" + json_quote(kid) +
                         ",\"url\":" + json_quote(url) + "}";
    std::string protected64 = base64url_encode(header);
    std::string payload64 = base64url_encode(account_key.jwk());
    std::string mac = hmac(alg, mac_key, protected64 + "." + payload64);
    return "{\"protected\":\"" + protected64 + "\",\"payload\":\"" + payload64 +
           "\",\"signature\":\"" + base64url_encode(mac) + "\"}";
}

}  // namespace acme
