// AES-256-GCM sealing of stored private keys (OpenSSL EVP).
#include "sealed_value.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <memory>

#include "base64url.h"

namespace acme {

namespace {

constexpr int nonce_size = 12;
constexpr int tag_size = 16;

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

CipherCtx new_ctx() {
    CipherCtx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
    if (!ctx) throw Error("EVP_CIPHER_CTX_new failed");
    return ctx;
}

const unsigned char* bytes(std::string_view s) {
    return reinterpret_cast<const unsigned char*>(s.data());
}

void check_key(std::string_view key) {
    if (key.size() != sealing_key_size) throw Error("sealing key is not 32 bytes");
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::string parse_sealing_key(std::string_view text) {
    const char* space = " \t\r\n";
    std::size_t first = text.find_first_not_of(space);
    std::size_t last = text.find_last_not_of(space);
    std::string_view digits =
        first == std::string_view::npos ? std::string_view() : text.substr(first, last - first + 1);
    if (digits.size() != 2 * sealing_key_size) {
        throw Error("not a key of 64 hex digits (make one with \"openssl rand -hex 32\")");
    }
    std::string key;
    for (std::size_t i = 0; i < digits.size(); i += 2) {
        int hi = hex_digit(digits[i]);
        int lo = hex_digit(digits[i + 1]);
        if (hi < 0 || lo < 0) {
            throw Error("not a key of 64 hex digits (make one with \"openssl rand -hex 32\")");
        }
        key += static_cast<char>(hi * 16 + lo);
    }
    return key;
}

bool is_sealed(std::string_view value) {
    return value.substr(0, std::strlen(sealed_prefix)) == sealed_prefix;
}

std::string seal_value(std::string_view key, std::string_view name, std::string_view plain) {
    check_key(key);
    unsigned char nonce[nonce_size];
    if (RAND_bytes(nonce, nonce_size) != 1) throw Error("RAND_bytes failed");
    CipherCtx ctx = new_ctx();
    std::string out(reinterpret_cast<const char*>(nonce), nonce_size);
    out.resize(nonce_size + plain.size() + tag_size);
    auto* cipher = reinterpret_cast<unsigned char*>(&out[nonce_size]);
    int len = 0;
    int total = 0;
    if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, nonce_size, nullptr) != 1 ||
        EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, bytes(key), nonce) != 1 ||
        EVP_EncryptUpdate(ctx.get(), nullptr, &len, bytes(name), static_cast<int>(name.size())) !=
            1 ||
        EVP_EncryptUpdate(ctx.get(), cipher, &len, bytes(plain), static_cast<int>(plain.size())) !=
            1) {
        throw Error("AES-256-GCM encryption failed");
    }
    total = len;
    if (EVP_EncryptFinal_ex(ctx.get(), cipher + total, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, tag_size, cipher + plain.size()) !=
            1) {
        throw Error("AES-256-GCM encryption failed");
    }
    return sealed_prefix + base64url_encode(out);
}

std::string open_sealed(std::string_view key, std::string_view name, std::string_view sealed) {
    check_key(key);
    if (!is_sealed(sealed)) throw SealError("not a sealed value");
    std::string raw;
    try {
        raw = base64url_decode(sealed.substr(std::strlen(sealed_prefix)));
    } catch (const Error&) {
        throw SealError("sealed value is not base64url");
    }
    if (raw.size() < static_cast<std::size_t>(nonce_size + tag_size)) {
        throw SealError("sealed value is too short");
    }
    std::size_t cipher_len = raw.size() - nonce_size - tag_size;
    const auto* nonce = bytes(raw);
    const auto* cipher = nonce + nonce_size;
    std::string tag = raw.substr(nonce_size + cipher_len);
    std::string plain(cipher_len, '\0');
    auto* out = reinterpret_cast<unsigned char*>(plain.data());
    CipherCtx ctx = new_ctx();
    int len = 0;
    if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, nonce_size, nullptr) != 1 ||
        EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, bytes(key), nonce) != 1 ||
        EVP_DecryptUpdate(ctx.get(), nullptr, &len, bytes(name), static_cast<int>(name.size())) !=
            1 ||
        EVP_DecryptUpdate(ctx.get(), out, &len, cipher, static_cast<int>(cipher_len)) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, tag_size, tag.data()) != 1) {
        throw SealError("AES-256-GCM decryption failed");
    }
    int total = len;
    // The tag is checked here: another key, a changed byte or another name.
    if (EVP_DecryptFinal_ex(ctx.get(), out + total, &len) != 1) {
        throw SealError(
            "does not open with the configured encrypt_key_file (another key, or "
            "changed or moved from another name)");
    }
    plain.resize(total + len);
    return plain;
}

}  // namespace acme
