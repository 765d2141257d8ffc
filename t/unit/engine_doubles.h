// Doubles for tests of the whole Engine: a logger that can be waited on, a board
// that accepts everything, and configurations and stored certificates that
// need no CA (the directory URL is a closed port).
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "acme/crypto.h"
#include "acme/engine.h"
#include "acme/file_storage.h"

namespace doubles {

using acme::CertificateConfig;
using acme::EngineConfig;
using acme::FileStorage;
using acme::Identifier;
using acme::KeyType;
using acme::PrivateKey;

// Collects log lines and lets the test wait for one.
class RecordingLogger : public acme::Logger {
public:
    void log(acme::LogLevel level, std::string_view message) override {
        std::lock_guard<std::mutex> lk(mutex_);
        lines_.push_back({level, std::string(message)});
        cv_.notify_all();
    }
    // The first line containing `text`, waiting up to `timeout` for it.
    std::optional<std::pair<acme::LogLevel, std::string>> wait_for(
        const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        std::unique_lock<std::mutex> lk(mutex_);
        std::optional<std::pair<acme::LogLevel, std::string>> found;
        cv_.wait_for(lk, timeout, [&] {
            for (const auto& l : lines_) {
                if (l.second.find(text) != std::string::npos) {
                    found = l;
                    return true;
                }
            }
            return false;
        });
        return found;
    }
    std::string all() {
        std::lock_guard<std::mutex> lk(mutex_);
        std::string s;
        for (const auto& l : lines_) s += l.second + "\n";
        return s;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::pair<acme::LogLevel, std::string>> lines_;
};

class NullBoard : public acme::ChallengeBoard {
public:
    bool publish_http01(std::string_view, std::string_view) override { return true; }
    void withdraw_http01(std::string_view) override {}
    void certificate_updated(std::string_view) override {}
};

inline Identifier dns(const std::string& v) { return Identifier{Identifier::Type::dns, v}; }

inline EngineConfig make_config(const std::string& state, std::vector<Identifier> ids) {
    EngineConfig config;
    acme::IssuerConfig issuer;
    issuer.name = "test";
    // Nothing listens on port 1: connections are refused at once.
    issuer.directory_url = "https://127.0.0.1:1/dir";
    issuer.state_path = state;
    config.issuers.push_back(issuer);
    CertificateConfig cert;
    cert.issuer = "test";
    cert.identifiers = std::move(ids);
    cert.key_type = KeyType::ecdsa256;
    config.certificates.push_back(cert);
    config.user_agent = "unit-test";
    return config;
}

// Puts a self-signed certificate for `names` (key from `key`) under the
// files of a certificate configured for `configured`.
inline void store_certificate(const std::string& dir, const std::vector<Identifier>& configured,
                              const std::vector<Identifier>& names, int days,
                              const PrivateKey* other_key = nullptr) {
    PrivateKey key = PrivateKey::generate(KeyType::ecdsa256);
    FileStorage store(dir);
    std::string base = acme::certificate_basename(configured, KeyType::ecdsa256);
    store.store(base + ".crt", acme::make_self_signed(key, names, days), acme::Access::shared);
    store.store(base + ".key", (other_key ? *other_key : key).to_pem(), acme::Access::secret);
}

}  // namespace doubles
