// Fuzz target: authorization objects and the challenge objects in them
// (acme::parse_authorization; acme::parse_challenge for the answer to a
// challenge POST), including each challenge's error.
#include "acme/acme_client.h"
#include "acme/error.h"
#include "fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    std::string_view body = fuzz::text(data, size);
    try {
        acme::Authorization a = acme::parse_authorization(body);
        (void)a.find("http-01");
        (void)a.find("tls-alpn-01");
        if (std::optional<acme::Problem> p = a.first_error()) (void)p->describe();
    } catch (const acme::Error&) {
        // A refusal is a correct answer to garbage.
    }
    try {
        acme::Challenge c = acme::parse_challenge(body);
        if (c.error) (void)c.error->describe();
    } catch (const acme::Error&) {
    }
    return 0;
}
