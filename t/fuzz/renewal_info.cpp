// Fuzz target: RFC 9773 renewal information (acme::parse_renewal_info),
// whose suggestedWindow holds RFC 3339 dates.
#include "acme/acme_client.h"
#include "acme/error.h"
#include "fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    try {
        acme::RenewalInfo info = acme::parse_renewal_info(fuzz::text(data, size));
        // Either no window at all or one whose end is after its start.
        FUZZ_CHECK((info.window_start == 0 && info.window_end == 0) ||
                   info.window_end > info.window_start);
    } catch (const acme::Error&) {
        // A refusal is a correct answer to garbage.
    }
    return 0;
}
