// Fuzz target: the certificate chain a CA returns (acme::split_pem_chain,
// acme::inspect_certificate, acme::certificate_matches_key), PEM text or DER
// of one certificate (see pem.h).
#include "acme/crypto.h"
#include "acme/error.h"
#include "fuzz.h"
#include "pem.h"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    static const acme::PrivateKey key = acme::PrivateKey::generate(acme::KeyType::ecdsa256);
    std::string pem = fuzz::as_pem(fuzz::text(data, size), "CERTIFICATE");
    try {
        std::vector<std::string> blocks = acme::split_pem_chain(pem);
        FUZZ_CHECK(!blocks.empty());
        // Each block was read once by the split: reading it again must work.
        acme::CertificateInfo info = acme::inspect_certificate(blocks.front());
        for (const acme::Identifier& id : info.names) FUZZ_CHECK(!id.value.empty());
        (void)acme::certificate_matches_key(blocks.front(), key);
    } catch (const acme::Error&) {
        // A refusal is a correct answer to garbage.
    }
    try {
        (void)acme::inspect_certificate(pem);
    } catch (const acme::Error&) {
    }
    return 0;
}
