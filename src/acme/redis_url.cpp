// Parsing acme_storage's redis:// URL.
#include "redis_url.h"

#include <cctype>

#include "error.h"

namespace acme {

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

std::string percent_decode(std::string_view s, const char* what) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        int hi = i + 2 < s.size() ? hex_value(s[i + 1]) : -1;
        int lo = i + 2 < s.size() ? hex_value(s[i + 2]) : -1;
        if (hi < 0 || lo < 0) throw Error(std::string("bad percent escape in the ") + what);
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

// A decimal number in [min, max], all of `s`.
bool parse_number(std::string_view s, int min, int max, int* out) {
    if (s.empty() || s.size() > 6) return false;
    int n = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        n = n * 10 + (c - '0');
    }
    if (n < min || n > max) return false;
    *out = n;
    return true;
}

}  // namespace

// Not yet: hiredis 0.14 (Debian 12) has no TLS at all, and the 1.x
// releases need libhiredis_ssl and redisInitiateSSLWithContext, which
// RedisConnection does not use yet. nginx -t says so for rediss://.
bool redis_tls_supported() { return false; }

std::string RedisTarget::describe() const {
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return std::string(tls ? "rediss://" : "redis://") + h + ":" + std::to_string(port) + "/" +
           std::to_string(db) + " prefix=" + prefix;
}

bool valid_redis_prefix(std::string_view prefix) {
    if (prefix.empty() || prefix.size() > 128) return false;
    for (char c : prefix) {
        auto u = static_cast<unsigned char>(c);
        if (u <= ' ' || u >= 0x7f || c == '*' || c == '?' || c == '[' || c == ']' || c == '\\' ||
            c == '{' || c == '}') {
            return false;
        }
    }
    return true;
}

RedisTarget parse_redis_url(std::string_view url) {
    RedisTarget t;
    std::string_view rest;
    if (url.substr(0, 8) == "redis://") {
        rest = url.substr(8);
    } else if (url.substr(0, 9) == "rediss://") {
        rest = url.substr(9);
        t.tls = true;
        if (!redis_tls_supported()) {
            throw Error("rediss:// is not supported by this version (plain redis:// only)");
        }
    } else {
        throw Error("the URL must start with redis:// or rediss://");
    }

    std::string_view authority = rest.substr(0, rest.find('/'));
    std::string_view path =
        authority.size() < rest.size() ? rest.substr(authority.size() + 1) : std::string_view{};
    if (auto at = authority.rfind('@'); at != std::string_view::npos) {
        std::string_view userinfo = authority.substr(0, at);
        authority = authority.substr(at + 1);
        auto colon = userinfo.find(':');
        if (colon == std::string_view::npos) {
            throw Error("the credentials must be user:password or :password");
        }
        t.user = percent_decode(userinfo.substr(0, colon), "user name");
        t.password = percent_decode(userinfo.substr(colon + 1), "password");
        if (t.password.empty()) throw Error("the password in the URL is empty");
    }

    std::string_view port;
    if (!authority.empty() && authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string_view::npos) throw Error("unterminated [ in the host");
        t.host = std::string(authority.substr(1, close - 1));
        std::string_view after = authority.substr(close + 1);
        if (!after.empty() && after.front() != ':') throw Error("junk after the IPv6 address");
        if (!after.empty()) port = after.substr(1);
    } else {
        auto colon = authority.rfind(':');
        t.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) port = authority.substr(colon + 1);
    }
    if (t.host.empty()) throw Error("the URL has no host");
    for (char c : t.host) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != ':' &&
            c != '_') {
            throw Error("invalid character in the host \"" + t.host + "\"");
        }
    }
    if (port.empty()) throw Error("the URL has no port (HOST:PORT)");
    if (!parse_number(port, 1, 65535, &t.port)) {
        throw Error("invalid port \"" + std::string(port) + "\"");
    }
    if (!path.empty() && !parse_number(path, 0, 65535, &t.db)) {
        throw Error("invalid database number \"" + std::string(path) + "\"");
    }
    return t;
}

}  // namespace acme
