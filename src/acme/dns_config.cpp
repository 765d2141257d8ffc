// The pieces of dns-01 configuration the glue checks at nginx -t and the
// engine uses again: server addresses, TSIG key files, the choice between
// dns_update and dns_hook.
#include <arpa/inet.h>

#include <cctype>

#include "base64url.h"
#include "dns.h"
#include "error.h"

namespace acme {

namespace {

bool all_digits(std::string_view s) {
    if (s.empty() || s.size() > 5) return false;
    for (char c : s) {
        if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    }
    return true;
}

// The tokens of a BIND key statement: words, quoted strings, '{', '}', ';'.
std::vector<std::string> key_tokens(std::string_view text) {
    std::vector<std::string> tokens;
    for (size_t i = 0; i < text.size();) {
        char c = text[i];
        if (std::isspace(static_cast<unsigned char>(c))) {
            i++;
        } else if (c == '#' || (c == '/' && i + 1 < text.size() && text[i + 1] == '/')) {
            while (i < text.size() && text[i] != '\n') i++;
        } else if (c == '{' || c == '}' || c == ';') {
            tokens.emplace_back(1, c);
            i++;
        } else if (c == '"') {
            size_t end = text.find('"', i + 1);
            if (end == std::string_view::npos) throw Error("unterminated quoted string");
            tokens.emplace_back(text.substr(i + 1, end - i - 1));
            i = end + 1;
        } else {
            size_t start = i;
            while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i])) &&
                   text[i] != '{' && text[i] != '}' && text[i] != ';' && text[i] != '"') {
                i++;
            }
            tokens.emplace_back(text.substr(start, i - start));
        }
    }
    return tokens;
}

std::string lower(std::string s) {
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

}  // namespace

std::string DnsServer::label() const {
    bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::optional<DnsServer> parse_dns_server(std::string_view text) {
    DnsServer server;
    if (text.empty() || text.find('\0') != std::string_view::npos) return std::nullopt;
    if (text.front() == '[') {
        size_t close = text.find(']');
        if (close == std::string_view::npos || close == 1) return std::nullopt;
        server.host = std::string(text.substr(1, close - 1));
        if (server.host.find(':') == std::string::npos) return std::nullopt;  // IPv6 only
        std::string_view rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':' || !all_digits(rest.substr(1))) return std::nullopt;
            server.port = std::stoul(std::string(rest.substr(1)));
        }
    } else if (text.find(':') != text.rfind(':')) {
        server.host = std::string(text);  // a bare IPv6 address
    } else if (size_t colon = text.find(':'); colon != std::string_view::npos) {
        if (colon == 0 || !all_digits(text.substr(colon + 1))) return std::nullopt;
        server.host = std::string(text.substr(0, colon));
        server.port = std::stoul(std::string(text.substr(colon + 1)));
    } else {
        server.host = std::string(text);
    }
    if (server.port == 0 || server.port > 65535) return std::nullopt;
    // An IPv6 address (the only form with ':'), or an IPv4 address or host
    // name of letters, digits, '-', '_' and '.'.
    unsigned char addr[sizeof(struct in6_addr)];
    if (server.host.find(':') != std::string::npos) {
        if (inet_pton(AF_INET6, server.host.c_str(), addr) != 1) return std::nullopt;
        return server;
    }
    if (server.host.empty() || server.host.size() > 253) return std::nullopt;
    for (char c : server.host) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
            return std::nullopt;
        }
    }
    return server;
}

TsigKey parse_tsig_key(std::string_view text) {
    std::vector<std::string> t = key_tokens(text);
    // key "name" { algorithm A; secret "S"; };
    if (t.size() < 4 || t[0] != "key" || t[2] != "{") {
        throw Error("expected key \"name\" { algorithm ...; secret \"...\"; };");
    }
    TsigKey key;
    key.name = lower(t[1]);
    if (key.name.empty()) throw Error("empty key name");
    for (char c : key.name) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
            throw Error("invalid key name \"" + t[1] + "\"");
        }
    }
    if (key.name.back() != '.') key.name += '.';
    size_t i = 3;
    for (; i < t.size() && t[i] != "}"; i++) {
        if (i + 2 >= t.size() || t[i + 2] != ";") throw Error("expected \"" + t[i] + " VALUE;\"");
        if (t[i] == "algorithm") {
            std::string alg = lower(t[i + 1]);
            if (!alg.empty() && alg.back() == '.') alg.pop_back();
            if (alg != "hmac-sha256" && alg != "hmac-sha384" && alg != "hmac-sha512") {
                throw Error("unsupported algorithm \"" + t[i + 1] +
                            "\" (hmac-sha256, hmac-sha384 or hmac-sha512 is expected)");
            }
            key.algorithm = alg + ".";
        } else if (t[i] == "secret") {
            key.secret = t[i + 1];
        } else {
            throw Error("unknown key option \"" + t[i] + "\"");
        }
        i += 2;
    }
    if (i == t.size()) throw Error("missing \"}\"");
    if (key.algorithm.empty()) throw Error("no algorithm");
    if (key.secret.empty()) throw Error("no secret");
    std::string decoded;
    try {
        std::string url_form = key.secret;  // standard base64 to base64url
        for (char& c : url_form) c = c == '+' ? '-' : c == '/' ? '_' : c;
        decoded = base64url_decode(url_form);
    } catch (const std::exception&) {
        decoded.clear();
    }
    if (decoded.empty()) throw Error("the secret is not base64");
    return key;
}

std::unique_ptr<DnsPublisher> make_dns_publisher(const DnsConfig& config) {
    if (!config.hook.empty()) return make_dns_hook(config);
    if (!config.update_server.empty()) return make_dns_update(config);
    return nullptr;
}

}  // namespace acme
