// Tests for identifier classification and normalisation.
#include <gtest/gtest.h>

#include "acme/error.h"
#include "acme/identifier.h"

namespace {

using acme::Identifier;
using acme::parse_identifier;

Identifier dns(const char* v) { return {Identifier::Type::dns, v}; }
Identifier ip(const char* v) { return {Identifier::Type::ip, v}; }

std::string error_of(std::string_view text) {
    try {
        parse_identifier(text);
    } catch (const acme::Error& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(Identifier, DnsNames) {
    EXPECT_EQ(parse_identifier("example.com"), dns("example.com"));
    EXPECT_EQ(parse_identifier("Example.COM"), dns("example.com"));
    EXPECT_EQ(parse_identifier("example.com."), dns("example.com"));
    EXPECT_EQ(parse_identifier("*.Example.com"), dns("*.example.com"));
    EXPECT_EQ(parse_identifier("localhost"), dns("localhost"));
    EXPECT_EQ(parse_identifier("xn--bcher-kva.example"), dns("xn--bcher-kva.example"));
    EXPECT_EQ(parse_identifier("a-b.0-9.example"), dns("a-b.0-9.example"));
    EXPECT_EQ(parse_identifier("1.2.3.example"), dns("1.2.3.example"));
    EXPECT_EQ(parse_identifier("example.com").type_name(), "dns");
}

TEST(Identifier, IpAddresses) {
    EXPECT_EQ(parse_identifier("127.0.0.1"), ip("127.0.0.1"));
    EXPECT_EQ(parse_identifier("192.0.2.10"), ip("192.0.2.10"));
    EXPECT_EQ(parse_identifier("::1"), ip("::1"));
    EXPECT_EQ(parse_identifier("2001:DB8:0:0:0::1"), ip("2001:db8::1"));
    EXPECT_EQ(parse_identifier("0:0:0:0:0:0:0:1"), ip("::1"));
    EXPECT_EQ(parse_identifier("[2001:db8::1]"), ip("2001:db8::1"));
    EXPECT_EQ(parse_identifier("::ffff:192.0.2.1"), ip("::ffff:192.0.2.1"));
    EXPECT_EQ(parse_identifier("::1").type_name(), "ip");
}

TEST(Identifier, LengthLimits) {
    std::string label63(63, 'a');
    EXPECT_EQ(parse_identifier(label63 + ".com").value, label63 + ".com");
    EXPECT_NE(error_of(label63 + "a.com").find("label longer than 63"), std::string::npos);

    // 3 * 63 + 61 + 3 dots = 253 characters: the maximum.
    std::string name = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
    ASSERT_EQ(name.size(), 253u);
    EXPECT_EQ(parse_identifier(name).value, name);
    EXPECT_EQ(parse_identifier(name + ".").value, name);  // trailing dot does not count
    EXPECT_NE(error_of(name + "b").find("longer than 253"), std::string::npos);
}

TEST(Identifier, Invalid) {
    EXPECT_EQ(error_of("foo..bar"), "invalid identifier \"foo..bar\": empty label");
    const char* bad[] = {
        "",
        ".",
        "..",
        ".example.com",
        "example..com.",
        "*",
        "*.",
        "*.*.example",
        "foo.*.bar",
        "*example.com",
        "f*o.com",
        "ex ample.com",
        "exa_mple.com",
        "-foo.com",
        "foo-.com",
        "foo.-bar",
        "bücher.de",
        "1.2.3",
        "10.0.0.256",
        "*.10.0.0.1",
        "[::1",
        "[example.com]",
        "fe80::1%eth0",
        "http://example.com",
        "example.com:443",
    };
    for (const char* text : bad) {
        EXPECT_THROW(parse_identifier(text), acme::Error) << '"' << text << '"';
    }
    EXPECT_THROW(parse_identifier(std::string_view("a\0b.com", 7)), acme::Error);
    EXPECT_NE(error_of("ex ample.com").find("invalid character"), std::string::npos);
    EXPECT_NE(error_of("-foo.com").find("'-'"), std::string::npos);
    EXPECT_NE(error_of("foo.*.bar").find("wildcard"), std::string::npos);
}

TEST(Identifier, Ordering) {
    EXPECT_LT(dns("b.example"), ip("127.0.0.1"));  // all DNS names before all IPs
    EXPECT_LT(dns("a.example"), dns("b.example"));
    EXPECT_FALSE(dns("a.example") == ip("a.example"));
}

}  // namespace
