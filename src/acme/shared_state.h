// The shared-memory area through which the engine talks to nginx workers:
// pending http-01 and tls-alpn-01 answers and a generation counter per
// certificate. Plain
// memory with a spin lock made of atomics, so it works across processes and
// from the engine thread; nothing here calls nginx.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace acme {

// A pending tls-alpn-01 challenge as a worker needs it to make the
// challenge certificate.
struct TlsAlpnAnswer {
    std::string identifier;  // DNS name or IP address (the certificate's SAN)
    std::string digest;      // SHA-256 of the key authorization, 32 bytes
};

// What the engine needs from whoever serves challenges and certificates.
class ChallengeBoard {
public:
    virtual ~ChallengeBoard() = default;
    // False when there is no room left.
    virtual bool publish_http01(std::string_view token, std::string_view key_authorization) = 0;
    virtual void withdraw_http01(std::string_view token) = 0;
    // tls-alpn-01, keyed by the SNI a validator sends (tls_alpn_server_name).
    // A board that cannot serve it refuses.
    virtual bool publish_tls_alpn01(std::string_view server_name, std::string_view identifier,
                                    std::string_view digest) {
        (void)server_name, (void)identifier, (void)digest;
        return false;
    }
    // Removes only the answer with this digest: another order may have
    // published a newer one for the same name.
    virtual void withdraw_tls_alpn01(std::string_view server_name, std::string_view digest) {
        (void)server_name, (void)digest;
    }
    // A new certificate for this store basename has been written.
    virtual void certificate_updated(std::string_view cert_id) = 0;
    // Removes every published answer; returns how many there were. For a
    // new engine: answers left by a helper that was killed are stale.
    virtual std::size_t withdraw_all_challenges() { return 0; }
};

// Whether the last segment of /.well-known/acme-challenge/<token> can be a
// token: 1 to SharedState::max_token characters of the base64url alphabet
// (RFC 8555 section 8.1). Workers check a request path with it before they
// take the zone's lock.
bool is_http01_token(std::string_view token);

class SharedState : public ChallengeBoard {
public:
    static constexpr std::size_t max_token = 128;
    static constexpr std::size_t max_key_authorization = 256;
    static constexpr std::size_t max_cert_id = 256;
    static constexpr std::size_t max_server_name = 256;   // a DNS name is at most 253
    static constexpr std::size_t max_ip_identifier = 48;  // textual IPv6 is at most 45
    static constexpr std::size_t default_size = 2 * 1024 * 1024;
    // Smallest usable area (header plus a few slots of each kind).
    static std::size_t min_size();
    // Slots that fit in `size` bytes: a third of the space each for http-01
    // challenges, tls-alpn-01 challenges and certificates.
    static std::size_t challenge_slots(std::size_t size);
    static std::size_t tls_alpn_slots(std::size_t size);
    static std::size_t certificate_slots(std::size_t size);
    // The smallest area whose certificate table holds `certificates` with
    // room to spare (lookups stay short).
    static std::size_t size_for(std::size_t certificates);

    // Attaches to memory of `size` bytes (shared between processes).
    SharedState(void* base, std::size_t size);

    // Lays out an empty area (the master does this once per new zone).
    void format();
    // True if the area was formatted with this layout and size.
    bool formatted() const;

    bool publish_http01(std::string_view token, std::string_view key_authorization) override;
    void withdraw_http01(std::string_view token) override;
    std::optional<std::string> find_http01(std::string_view token) const;

    bool publish_tls_alpn01(std::string_view server_name, std::string_view identifier,
                            std::string_view digest) override;
    void withdraw_tls_alpn01(std::string_view server_name, std::string_view digest) override;
    // The most recently published answer for a (lower-case) server name.
    std::optional<TlsAlpnAnswer> find_tls_alpn01(std::string_view server_name) const;

    std::size_t withdraw_all_challenges() override;

    void certificate_updated(std::string_view cert_id) override;
    // 0 for a certificate never updated since the zone was created.
    std::uint64_t generation(std::string_view cert_id) const;
    // Bumped by every certificate_updated(): one cheap load tells a worker
    // whether anything changed at all.
    std::uint64_t global_generation() const;
    // The ids of certificates updated after global generation `since` (a
    // renewed one may be listed twice), so that a worker's swap costs what
    // changed, not what is configured. False when the zone's journal of
    // recent updates no longer reaches back that far: then every
    // certificate's generation() must be compared.
    bool updated_since(std::uint64_t since, std::vector<std::string>* ids) const;
    // Frees the slots of certificates not in `configured` (the zone outlives
    // reloads, and names change); returns how many.
    std::size_t retain_certificates(const std::vector<std::string>& configured);

private:
    struct Header;
    Header* header() const;
    void* base_;
    std::size_t size_;
};

}  // namespace acme
