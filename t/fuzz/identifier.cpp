// Fuzz target: names from the configuration (server_name, acme_certificate)
// through acme::parse_identifier. The normalised form must parse again to
// itself, or two spellings of one name would make two certificates.
#include "acme/identifier.h"

#include "acme/error.h"
#include "fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    try {
        acme::Identifier id = acme::parse_identifier(fuzz::text(data, size));
        FUZZ_CHECK(!id.value.empty());
        FUZZ_CHECK(id.value.size() <= 253);
        FUZZ_CHECK(acme::parse_identifier(id.value) == id);
        FUZZ_CHECK(acme::identifier_set({id, id}).size() == 1);
    } catch (const acme::Error&) {
        // A refusal is a correct answer to garbage.
    }
    return 0;
}
