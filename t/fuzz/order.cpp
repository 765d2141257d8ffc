// Fuzz target: order objects as newOrder, the order URL and finalize return
// them (acme::parse_order), with their error problem documents.
#include "acme/acme_client.h"
#include "acme/error.h"
#include "fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    try {
        acme::Order o = acme::parse_order(fuzz::text(data, size));
        if (o.error) (void)o.error->describe();
        for (const acme::Identifier& id : o.identifiers) (void)id.type_name();
    } catch (const acme::Error&) {
        // A refusal is a correct answer to garbage.
    }
    return 0;
}
