// Fuzz target: the directory document a CA serves (acme::parse_directory).
// Only acme::Error may come out of it; anything else, a crash or a
// sanitizer report is a bug.
#include "acme/acme_client.h"
#include "acme/error.h"
#include "fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    try {
        acme::Directory d = acme::parse_directory(fuzz::text(data, size));
        // What the client relies on once the parse succeeded.
        FUZZ_CHECK(!d.new_nonce.empty() && !d.new_account.empty() && !d.new_order.empty());
    } catch (const acme::Error&) {
        // A refusal is a correct answer to garbage.
    }
    return 0;
}
