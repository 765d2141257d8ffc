// Fuzz target: error bodies (acme::Problem::parse), which are tolerant: any
// body, JSON or not, must give a problem the log can print on one line.
#include "acme/problem.h"

#include "acme/error.h"
#include "acme/json.h"
#include "fuzz.h"

namespace {

// What Problem::parse takes for a problem document: an object with a type
// or a detail string.
bool is_problem_document(std::string_view body) {
    try {
        acme::Json doc = acme::Json::parse(body);
        return doc.is_object() && (doc.get("type").is_string() || doc.get("detail").is_string());
    } catch (const acme::Error&) {
        return false;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    std::string_view body = fuzz::text(data, size);
    acme::Problem p = acme::Problem::parse(body, 400);
    (void)p.short_type();
    (void)p.is("badNonce");
    (void)p.describe();
    if (!is_problem_document(body)) {
        // A body that is not a problem document is cut to an excerpt of
        // printable text, so a proxy's HTML page cannot flood the log.
        FUZZ_CHECK(p.detail.size() <= 200);
        for (char c : p.detail) FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
    }
    return 0;
}
