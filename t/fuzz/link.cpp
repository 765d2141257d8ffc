// Fuzz target: Link headers (RFC 8288) of a certificate download, which name
// the alternate chains (acme::HttpResponse::links). The first line of the
// input is the response's URL (relative targets are resolved against it),
// each further line the value of one Link header.
#include "acme/http.h"
#include "fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    std::string_view input = fuzz::text(data, size);
    acme::HttpResponse response;
    response.status = 200;
    std::size_t eol = input.find('\n');
    response.effective_url = std::string(input.substr(0, eol));
    while (eol != std::string_view::npos) {
        input.remove_prefix(eol + 1);
        eol = input.find('\n');
        response.headers.emplace_back("link", std::string(input.substr(0, eol)));
    }
    std::vector<std::string> alternates = response.links("alternate");
    std::vector<std::string> up = response.links("up");
    FUZZ_CHECK(alternates.size() + up.size() <= size);
    return 0;
}
