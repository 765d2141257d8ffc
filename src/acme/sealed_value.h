// Private keys sealed for a shared store (acme_storage encrypt_key_file=):
// AES-256-GCM with a random 96-bit nonce per write and the item's name as
// additional authenticated data, so that a sealed key moved to another
// name (another certificate's key) fails to open. A sealed value is text:
//   "acme-sealed-v1:" base64url(nonce[12] || ciphertext || tag[16])
// Anything without that prefix is a plain value (written before a key was
// configured).
#pragma once

#include <string>
#include <string_view>

#include "error.h"

namespace acme {

inline constexpr std::size_t sealing_key_size = 32;
inline constexpr const char* sealed_prefix = "acme-sealed-v1:";

// A sealed value that does not open: another key, tampered or moved.
struct SealError : Error {
    using Error::Error;
};

// The 32-byte key from a key file's text: 64 hex digits (as
// `openssl rand -hex 32` writes them), surrounding white space ignored.
// Throws Error with the reason.
std::string parse_sealing_key(std::string_view text);

bool is_sealed(std::string_view value);
// `key` is sealing_key_size bytes; `name` is the item's name.
std::string seal_value(std::string_view key, std::string_view name, std::string_view plain);
// Throws SealError when the value does not open with this key and name.
std::string open_sealed(std::string_view key, std::string_view name, std::string_view sealed);

}  // namespace acme
