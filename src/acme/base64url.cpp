// base64url without padding (RFC 4648 section 5). Hand-written rather than
// OpenSSL's EVP_EncodeBlock because that one emits the standard alphabet.
#include "base64url.h"

#include <cstdint>

#include "error.h"

namespace acme {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int decode_char(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

}  // namespace

std::string base64url_encode(std::string_view data) {
    std::string out;
    out.reserve((data.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= data.size(); i += 3) {
        uint32_t v = uint32_t(uint8_t(data[i])) << 16 | uint32_t(uint8_t(data[i + 1])) << 8 |
                     uint32_t(uint8_t(data[i + 2]));
        out += kAlphabet[v >> 18 & 63];
        out += kAlphabet[v >> 12 & 63];
        out += kAlphabet[v >> 6 & 63];
        out += kAlphabet[v & 63];
    }
    size_t rest = data.size() - i;
    if (rest == 1) {
        uint32_t v = uint32_t(uint8_t(data[i])) << 16;
        out += kAlphabet[v >> 18 & 63];
        out += kAlphabet[v >> 12 & 63];
    } else if (rest == 2) {
        uint32_t v = uint32_t(uint8_t(data[i])) << 16 | uint32_t(uint8_t(data[i + 1])) << 8;
        out += kAlphabet[v >> 18 & 63];
        out += kAlphabet[v >> 12 & 63];
        out += kAlphabet[v >> 6 & 63];
    }
    return out;
}

std::string base64url_decode(std::string_view text) {
    // Padding is tolerated (some CAs and tools add it) but only at the end,
    // and only as much as the length calls for.
    size_t len = text.size();
    size_t pad = 0;
    while (len > 0 && text[len - 1] == '=') {
        --len;
        ++pad;
    }
    if (len % 4 == 1) throw Error("invalid base64url: bad length");
    if (pad > 0 && (len + pad) % 4 != 0) throw Error("invalid base64url: bad padding");

    std::string out;
    out.reserve(len / 4 * 3 + 2);
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; ++i) {
        int v = decode_char(text[i]);
        if (v < 0) throw Error("invalid base64url: unexpected character");
        acc = (acc << 6) | uint32_t(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += char((acc >> bits) & 0xff);
        }
    }
    // Leftover bits must be zero, otherwise two encodings would decode to the
    // same bytes and signature comparisons could be fooled.
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        throw Error("invalid base64url: non-zero trailing bits");
    return out;
}

}  // namespace acme
