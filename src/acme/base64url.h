// base64url without padding (RFC 4648 section 5), as JOSE uses it.
#pragma once

#include <string>
#include <string_view>

namespace acme {

std::string base64url_encode(std::string_view data);
// Accepts input with or without '=' padding; throws acme::Error on bad input.
std::string base64url_decode(std::string_view text);

}  // namespace acme
