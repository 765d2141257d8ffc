// Fuzz target: Retry-After values (acme::parse_retry_after), as
// delta-seconds or any of the three HTTP-date forms.
#include <ctime>

#include "acme/problem.h"
#include "fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    std::string_view value = fuzz::text(data, size);
    // Now as it is, and two dates that move the two-digit-year pivot of RFC
    // 850 dates.
    for (std::time_t now : {std::time(nullptr), std::time_t(0), std::time_t(4102444800)}) {
        std::optional<std::chrono::seconds> delay = acme::parse_retry_after(value, now);
        if (delay) FUZZ_CHECK(delay->count() >= 0);
    }
    return 0;
}
