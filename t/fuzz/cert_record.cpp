// Fuzz target: <basename>.json as found in the state directory, perhaps
// edited by hand or from an older version (acme::parse_cert_record). What
// the engine writes back from it must read back the same.
#include "acme/cert_record.h"

#include "acme/error.h"
#include "fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    try {
        acme::CertRecord r = acme::parse_cert_record(fuzz::text(data, size));
        FUZZ_CHECK(r.failures >= 0 && r.failures <= 1000);
        std::string written = acme::format_cert_record(r);
        FUZZ_CHECK(acme::format_cert_record(acme::parse_cert_record(written)) == written);
    } catch (const acme::Error&) {
        // A refusal is a correct answer to garbage.
    }
    return 0;
}
