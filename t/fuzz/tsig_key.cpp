// Fuzz target: dns_update's key= file (BIND's key statement) through
// acme::parse_tsig_key, and dns_update / dns_resolver addresses through
// acme::parse_dns_server. What is accepted must be usable as it is: an
// absolute key name, an algorithm ldns knows, a secret that decodes; an
// address whose label parses back to the same server.
#include "acme/dns.h"
#include "acme/error.h"
#include "fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    std::string text(fuzz::text(data, size));
    try {
        acme::TsigKey key = acme::parse_tsig_key(text);
        FUZZ_CHECK(!key.name.empty() && key.name.back() == '.');
        FUZZ_CHECK(key.algorithm == "hmac-sha256." || key.algorithm == "hmac-sha384." ||
                   key.algorithm == "hmac-sha512.");
        FUZZ_CHECK(!key.secret.empty());
        FUZZ_CHECK(key.name.find('\0') == std::string::npos &&
                   key.secret.find('\0') == std::string::npos);
    } catch (const acme::Error&) {
        // A refusal is a correct answer to garbage.
    }
    if (auto server = acme::parse_dns_server(text)) {
        FUZZ_CHECK(!server->host.empty());
        FUZZ_CHECK(server->port >= 1 && server->port <= 65535);
        auto again = acme::parse_dns_server(server->label());
        FUZZ_CHECK(again && again->host == server->host && again->port == server->port);
    }
    return 0;
}
