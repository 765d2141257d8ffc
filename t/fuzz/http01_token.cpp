// Fuzz target: the token of a request for /.well-known/acme-challenge/<token>
// (acme::is_http01_token, then the shared zone's lookup as a worker does it).
#include <vector>

#include "acme/shared_state.h"
#include "fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    static std::vector<unsigned char> memory(acme::SharedState::min_size());
    static acme::SharedState* state = [] {
        auto* s = new acme::SharedState(memory.data(), memory.size());
        s->format();
        s->publish_http01("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", "answer");
        return s;
    }();
    std::string_view token = fuzz::text(data, size);
    if (!acme::is_http01_token(token)) {
        FUZZ_CHECK(token.empty() || token.size() > acme::SharedState::max_token ||
                   token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                           "0123456789-_") != std::string_view::npos);
        return 0;
    }
    (void)state->find_http01(token);
    // Any valid token can be published, found and withdrawn again.
    if (token != "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA") {
        FUZZ_CHECK(state->publish_http01(token, "ka"));
        FUZZ_CHECK(state->find_http01(token) == std::optional<std::string>("ka"));
        state->withdraw_http01(token);
        FUZZ_CHECK(!state->find_http01(token));
    }
    return 0;
}
