// What the dns-01 and dns-persist-01 solvers need from DNS, behind two small
// interfaces so that the solvers can be tested with doubles: a publisher
// that adds and removes TXT records (an RFC 2136 update, or a hook command),
// and a lookup that says which TXT values a name has (for the propagation
// wait). The real ones are made from the issuer's DnsConfig.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine_config.h"

namespace acme {

// One TXT value to publish: `name` as add_txt() takes it, `domain` the
// identifier it is for.
struct TxtRecord {
    std::string domain;
    std::string name;
    std::string value;
};

class DnsPublisher {
public:
    virtual ~DnsPublisher() = default;
    // Adds `value` to the TXT records of `name` (absolute, no trailing dot:
    // "_acme-challenge.example.com"); `domain` is the identifier it is for
    // (without "*."). Throws Error with the reason.
    virtual void add_txt(const std::string& domain, const std::string& name,
                         const std::string& value) = 0;
    // Removes that one value again; failures are only reported through
    // `error` (empty when it worked).
    virtual void remove_txt(const std::string& domain, const std::string& name,
                            const std::string& value, std::string& error) noexcept = 0;
    // The records of one order at once: dns_update sends one message per
    // zone. By default one by one (dns_hook), the ones added withdrawn again
    // when one fails, so that a throw leaves none of them behind.
    virtual void add_txts(const std::vector<TxtRecord>& records) {
        std::size_t added = 0;
        try {
            for (; added < records.size(); added++) {
                add_txt(records[added].domain, records[added].name, records[added].value);
            }
        } catch (...) {
            std::string ignored;
            for (std::size_t i = 0; i < added; i++) {
                remove_txt(records[i].domain, records[i].name, records[i].value, ignored);
            }
            throw;
        }
    }
    // Removes them all; the failures joined in `error`.
    virtual void remove_txts(const std::vector<TxtRecord>& records, std::string& error) noexcept {
        for (const TxtRecord& r : records) {
            std::string one;
            remove_txt(r.domain, r.name, r.value, one);
            if (!one.empty()) error += (error.empty() ? "" : "; ") + one;
        }
    }
};

class DnsLookup {
public:
    virtual ~DnsLookup() = default;
    // For each server asked (a label such as "127.0.0.1:53"), whether it
    // answers `name` with a TXT record holding one of `values`. Throws Error
    // when no server to ask can be found.
    struct Answer {
        std::string server;
        bool has_value = false;
        std::string detail;  // what it answered, for the log
    };
    virtual std::vector<Answer> check_txt(const std::string& name,
                                          const std::vector<std::string>& values) = 0;
};

// The propagation wait of dns-01 and dns-persist-01 (dns_propagation.cpp):
// polls `lookup` with backoff until every server has one of `values`,
// saying once through `note` what it waits for; throws Error after
// `timeout`, naming the servers that lag and adding `hint`.
void wait_for_txt(DnsLookup& lookup, const std::string& name,
                  const std::vector<std::string>& values, std::chrono::seconds timeout,
                  const std::function<void(std::chrono::milliseconds)>& pause,
                  const std::function<void(const std::string&, bool)>& note,
                  const std::string& hint = "");

// "host", "host:port", "[v6]:port", "v6" -> host and port (53 by default);
// nullopt when malformed.
struct DnsServer {
    std::string host;
    unsigned port = 53;
    std::string label() const;  // "host:port" ("[v6]:port")
};
std::optional<DnsServer> parse_dns_server(std::string_view text);

// A key file in BIND's form, as tsig-keygen writes it:
//   key "name" { algorithm hmac-sha256; secret "base64"; };
// Throws Error naming what is wrong. Only hmac-sha256, -sha384 and -sha512.
TsigKey parse_tsig_key(std::string_view text);

// Publishes through `dns_update` (dns_ldns.cpp) or `dns_hook` (dns_hook.cpp);
// nullptr when the issuer has neither.
std::unique_ptr<DnsPublisher> make_dns_publisher(const DnsConfig& config);
std::unique_ptr<DnsPublisher> make_dns_update(const DnsConfig& config);
std::unique_ptr<DnsPublisher> make_dns_hook(const DnsConfig& config);
// Asks `dns_resolver` when set, else the zone's authoritative servers (and
// the update server when they cannot be found).
std::unique_ptr<DnsLookup> make_dns_lookup(const DnsConfig& config);

}  // namespace acme
