// Fuzz input as PEM: text that has a BEGIN line is used as it is; anything
// else is taken as DER and wrapped in a PEM block of the given label, so the
// mutations reach the ASN.1 (and the engine's reading of it) instead of
// dying in the base64 layer.
#pragma once

#include <string>
#include <string_view>

namespace fuzz {

inline std::string as_pem(std::string_view input, std::string_view label) {
    if (input.find("-----BEGIN ") != std::string_view::npos) return std::string(input);
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string b64;
    for (std::size_t i = 0; i < input.size(); i += 3) {
        unsigned v = static_cast<unsigned char>(input[i]) << 16;
        if (i + 1 < input.size()) v |= static_cast<unsigned char>(input[i + 1]) << 8;
        if (i + 2 < input.size()) v |= static_cast<unsigned char>(input[i + 2]);
        b64 += alphabet[(v >> 18) & 63];
        b64 += alphabet[(v >> 12) & 63];
        b64 += i + 1 < input.size() ? alphabet[(v >> 6) & 63] : '=';
        b64 += i + 2 < input.size() ? alphabet[v & 63] : '=';
    }
    std::string pem = "-----BEGIN " + std::string(label) + "-----\n";
    for (std::size_t i = 0; i < b64.size(); i += 64) pem += b64.substr(i, 64) + "\n";
    pem += "-----END " + std::string(label) + "-----\n";
    return pem;
}

}  // namespace fuzz
