// tls-alpn-01 (RFC 8737, RFC 8738 for IP addresses): the server name a
// validator sends, the challenge certificate, and the two ClientHello
// extensions the TLS callback reads, parsed from their wire form.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "crypto.h"
#include "identifier.h"

namespace acme {

inline constexpr std::string_view tls_alpn_protocol = "acme-tls/1";

// The SNI a validator sends for id: the DNS name itself, or for an IP
// address its reverse-DNS name ("1.0.0.127.in-addr.arpa", nibbles under
// "ip6.arpa"), as RFC 8738 section 6 requires.
std::string tls_alpn_server_name(const Identifier& id);

// The self-signed challenge certificate: id as its only SAN and the
// critical id-pe-acmeIdentifier extension (1.3.6.1.5.5.7.1.31) holding an
// OCTET STRING with `digest`, the SHA-256 of the key authorization.
X509Ptr make_tls_alpn_certificate(const PrivateKey& key, const Identifier& id,
                                  std::string_view digest);

// True when the body of an ALPN extension (RFC 7301: a 2-byte length, then
// length-prefixed names) lists `protocol`. Malformed input gives false.
bool alpn_offers(const unsigned char* ext, std::size_t len, std::string_view protocol);

// The host_name in the body of a server_name extension (RFC 6066 section
// 3), lower-cased and without a trailing dot; nullopt when absent or
// malformed.
std::optional<std::string> sni_host_name(const unsigned char* ext, std::size_t len);

}  // namespace acme
