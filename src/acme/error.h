// Error types of the ACME engine. Everything under src/acme throws these;
// the nginx glue catches them at its boundary and logs what() .
#pragma once

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>

#include "problem.h"

namespace acme {

// A local failure: bad input, I/O, OpenSSL, libcurl.
struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The CA answered with an error status and (usually) an RFC 7807 problem
// document. retry_after is set when the response carried Retry-After.
struct CaError : Error {
    CaError(Problem p, std::optional<std::chrono::seconds> ra)
        : Error(p.describe()), problem(std::move(p)), retry_after(ra) {}
    // The same, with what() prefixed by context ("account registration failed: ").
    CaError(const std::string& context, Problem p, std::optional<std::chrono::seconds> ra)
        : Error(context + p.describe()), problem(std::move(p)), retry_after(ra) {}
    Problem problem;
    std::optional<std::chrono::seconds> retry_after;
};

}  // namespace acme
