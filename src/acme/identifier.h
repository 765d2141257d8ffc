// ACME identifiers (RFC 8555 section 9.7.7, RFC 8738): a DNS name or an IP address.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace acme {

struct Identifier {
    enum class Type { dns, ip };
    Type type = Type::dns;
    std::string value;  // lower-case DNS name, or canonical textual IP address

    std::string type_name() const { return type == Type::dns ? "dns" : "ip"; }
    bool operator==(const Identifier& o) const { return type == o.type && value == o.value; }
    bool operator<(const Identifier& o) const {
        return type != o.type ? type < o.type : value < o.value;
    }
};

// Classifies and normalises "Example.COM", "*.example.com", "127.0.0.1",
// "::1". Throws acme::Error with a reason for anything that is neither a
// valid DNS name (LDH labels, optional leading "*.") nor an IP address.
Identifier parse_identifier(std::string_view text);

// Sorted, without duplicates: compares what two lists of names cover.
std::vector<Identifier> identifier_set(std::vector<Identifier> ids);

}  // namespace acme
