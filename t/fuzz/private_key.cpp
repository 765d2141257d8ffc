// Fuzz target: private keys read from the state directory
// (acme::PrivateKey::from_pem), PEM text or DER of a PKCS#8 key (pem.h).
// A key that reads must also give a JWK, a PEM that reads back, and a
// signature.
#include "acme/crypto.h"
#include "acme/error.h"
#include "fuzz.h"
#include "pem.h"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    std::string pem = fuzz::as_pem(fuzz::text(data, size), "PRIVATE KEY");
    try {
        acme::PrivateKey key = acme::PrivateKey::from_pem(pem);
        (void)key.jwk();
        (void)key.thumbprint();
        FUZZ_CHECK(acme::PrivateKey::from_pem(key.to_pem()).jwk() == key.jwk());
        (void)key.sign("fuzz");
    } catch (const acme::Error&) {
        // A refusal is a correct answer to garbage.
    }
    return 0;
}
