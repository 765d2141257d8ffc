// RFC 7807 problem documents as sent by ACME servers (RFC 8555 section 6.7),
// and the Retry-After header that often comes with them.
#pragma once

#include <chrono>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace acme {

struct Problem {
    std::string type;  // full URN, e.g. "urn:ietf:params:acme:error:badNonce"
    std::string detail;
    int status = 0;          // "status" member, or the HTTP status when absent
    std::string identifier;  // "dns:example.com" for subproblems, else empty
    std::vector<Problem> subproblems;

    // Tolerant: a body that is not a problem document yields a Problem whose
    // type is empty and whose detail holds (the start of) the body.
    static Problem parse(std::string_view body, int http_status);

    // "badNonce" for "urn:ietf:params:acme:error:badNonce", else the type.
    std::string short_type() const;
    bool is(std::string_view short_name) const { return short_type() == short_name; }

    // One line for the log: "<type>: <detail>[; <identifier>: <sub detail>...]"
    std::string describe() const;
};

// Retry-After as delta-seconds or HTTP-date (RFC 9110 section 10.2.3),
// relative to now. Dates in the past give 0 s; garbage gives nullopt.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value, std::time_t now);

}  // namespace acme
