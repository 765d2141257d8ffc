// Classification and normalisation of ACME identifiers, so that the same name
// written differently ("Example.COM.", "0:0::1") maps to one certificate.
#include "identifier.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <optional>

#include "error.h"

namespace acme {

namespace {

[[noreturn]] void fail(std::string_view text, const char* reason) {
    throw Error("invalid identifier \"" + std::string(text) + "\": " + reason);
}

std::optional<Identifier> parse_ip(const std::string& s) {
    // inet_pton accepts only the strict forms (no "1.2.3", no octal), which
    // is what a CA will accept too; inet_ntop gives the canonical text
    // (RFC 5952 for IPv6).
    char buf[INET6_ADDRSTRLEN];
    unsigned char addr[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, s.c_str(), addr) == 1) {
        if (inet_ntop(AF_INET, addr, buf, sizeof buf) == nullptr) return std::nullopt;
    } else if (inet_pton(AF_INET6, s.c_str(), addr) == 1) {
        if (inet_ntop(AF_INET6, addr, buf, sizeof buf) == nullptr) return std::nullopt;
    } else {
        return std::nullopt;
    }
    return Identifier{Identifier::Type::ip, buf};
}

bool is_ldh(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

}  // namespace

Identifier parse_identifier(std::string_view text) {
    if (text.empty()) fail(text, "empty");
    if (text.find('\0') != std::string_view::npos) fail(text, "contains a NUL byte");

    std::string s(text);
    if (auto ip = parse_ip(s)) return *ip;
    // "[::1]" is how addresses appear in URLs and nginx listen directives.
    if (s.size() > 2 && s.front() == '[' && s.back() == ']') {
        if (auto ip = parse_ip(s.substr(1, s.size() - 2))) return *ip;
    }

    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (s.back() == '.') s.pop_back();  // absolute form means the same name

    std::string_view rest = s;
    if (rest.substr(0, 2) == "*.") rest.remove_prefix(2);
    if (rest.empty()) fail(text, "no labels");
    if (s.size() > 253) fail(text, "longer than 253 characters");

    while (true) {
        size_t dot = rest.find('.');
        std::string_view label = rest.substr(0, dot);
        if (label.empty()) fail(text, "empty label");
        if (label.size() > 63) fail(text, "label longer than 63 characters");
        for (char c : label) {
            if (c == '*') fail(text, "wildcard is only allowed as the whole leftmost label");
            if (!is_ldh(c)) fail(text, "invalid character (only letters, digits and '-')");
        }
        if (label.front() == '-' || label.back() == '-')
            fail(text, "label starts or ends with '-'");
        if (dot == std::string_view::npos) {
            // Catches mistyped addresses like "10.0.0.256" or "1.2.3", which
            // would otherwise pass as DNS names (no TLD is all-numeric).
            if (label.find_first_not_of("0123456789") == std::string_view::npos)
                fail(text, "neither an IP address nor a DNS name (numeric last label)");
            break;
        }
        rest.remove_prefix(dot + 1);
    }
    return Identifier{Identifier::Type::dns, s};
}

std::vector<Identifier> identifier_set(std::vector<Identifier> ids) {
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids;
}

}  // namespace acme
