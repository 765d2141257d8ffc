// Fuzz target: <basename>.order.json, the order in progress with the
// certificate's new key (acme::parse_saved_order). What the engine writes
// back from it must read back the same.
#include "acme/cert_record.h"
#include "acme/error.h"
#include "fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    try {
        acme::SavedOrder o = acme::parse_saved_order(fuzz::text(data, size));
        FUZZ_CHECK(!o.url.empty());
        std::string written = acme::format_saved_order(o);
        FUZZ_CHECK(acme::format_saved_order(acme::parse_saved_order(written)) == written);
    } catch (const acme::Error&) {
        // A refusal is a correct answer to garbage.
    }
    return 0;
}
