// The status area in shared memory: what the engine last knew of each
// certificate and issuer, written by the engine's StatusSink and read by any
// worker for the status page, plus the renew-now requests workers leave for
// the engine. Plain memory with the spin lock of shm_area.h; nothing here
// calls nginx. Sized for the configured certificates and issuers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace acme {

// One certificate as the status page shows it; times are Unix seconds, 0 for
// none. Text fields longer than their slot are cut (documented limits).
struct CertificateStatus {
    std::string id;
    std::string key_type;
    bool has_cert = false;  // a CA-issued certificate is stored
    std::time_t not_before = 0;
    std::time_t not_after = 0;
    std::string serial;
    std::string sha256;
    std::time_t renew_at = 0;
    std::string renew_reason;
    bool has_ari = false;
    std::time_t ari_start = 0;
    std::time_t ari_end = 0;
    std::string ari_explanation_url;
    bool renewing = false;  // an order is running
    std::time_t last_attempt = 0;
    std::time_t next_attempt = 0;
    int attempts = 0;  // failed attempts in a row
    bool has_error = false;
    std::string error_type;
    std::string error_detail;
    std::time_t error_at = 0;
    std::time_t renew_requested = 0;  // renew-now asked at, not yet taken by the engine
};

// A DNS record the operator must add: dns-persist-01's standing record when
// the issuer has no dns_update or dns_hook to publish it.
struct DnsRecord {
    std::string name;  // absolute, no trailing dot
    std::string type;  // "TXT"
    std::string value;
    bool operator==(const DnsRecord& o) const {
        return name == o.name && type == o.type && value == o.value;
    }
};

enum class ChallengeCounter { http01, tls_alpn01, other, count };

struct IssuerStatus {
    std::string name;
    std::string account;  // account URL, "" before registration
    std::string state;    // "ready", "failed", "" (not yet known)
    std::string error;
    std::time_t retry_after = 0;  // the CA's Retry-After, 0: none
    std::uint64_t orders_issued = 0;
    std::uint64_t orders_failed = 0;
    std::uint64_t challenges[static_cast<int>(ChallengeCounter::count)] = {};
    // With acme_storage: "redis", and "connected" or "unreachable" as the
    // node last found it (cluster_node.cpp); empty: the state directory.
    std::string storage;
    std::string storage_state;
    // The dns-persist-01 records this issuer's orders wait for (at most
    // max_dns_persist bytes of them; records that do not fit are left out).
    std::vector<DnsRecord> dns_persist;
};

// The engine side of renew-now: ids asked for since the last call.
class RenewRequests {
public:
    virtual ~RenewRequests() = default;
    // Cheap: changes whenever a request is left.
    virtual std::uint64_t request_sequence() const = 0;
    virtual std::vector<std::string> take_renew_requests() = 0;
};

class StatusBoard : public RenewRequests {
public:
    static constexpr std::size_t max_id = 256;
    static constexpr std::size_t max_issuer = 128;
    static constexpr std::size_t max_url = 512;
    static constexpr std::size_t max_error_type = 128;
    static constexpr std::size_t max_error_detail = 1024;
    static constexpr std::size_t max_dns_persist = 2048;

    // Bytes for this many certificates and issuers.
    static std::size_t size_for(std::size_t certificates, std::size_t issuers);

    StatusBoard(void* base, std::size_t size);

    // Lays out an empty area (the master, once per new memory).
    void format(std::size_t certificates, std::size_t issuers);
    bool formatted() const;
    // A new configuration: forgets every record, keeps the counters of
    // issuers still configured, and starts a new epoch, so that an engine of
    // the old configuration (a helper still ending) writes nothing more.
    void renew_epoch(const std::vector<std::string>& issuers);
    std::uint64_t epoch() const;

    // The engine's writes: `change` edits the record (new ones start empty
    // with the id or name set). False when the epoch is over or no room.
    bool update_certificate(std::uint64_t epoch, std::string_view id,
                            const std::function<void(CertificateStatus&)>& change);
    bool update_issuer(std::uint64_t epoch, std::string_view name,
                       const std::function<void(IssuerStatus&)>& change);

    // The workers' reads.
    std::optional<CertificateStatus> certificate(std::string_view id) const;
    std::optional<IssuerStatus> issuer(std::string_view name) const;

    // A worker's renew-now; false when there is no room for the id.
    bool request_renewal(std::string_view id, std::time_t now);
    std::uint64_t request_sequence() const override;
    std::vector<std::string> take_renew_requests() override;

private:
    struct Header;
    Header* header() const;
    void* base_;
    std::size_t size_;
};

}  // namespace acme
