// What the engine is told to manage: issuers and certificates, as the glue
// translates them from nginx's configuration.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "crypto.h"
#include "identifier.h"
#include "schedule.h"

namespace acme {

// dns-01 and dns-persist-01: how TXT records are published and when they
// count as visible.
struct TsigKey {
    std::string name;       // "keyname." (absolute)
    std::string algorithm;  // "hmac-sha256." (as ldns names it)
    std::string secret;     // base64, never logged
};

struct DnsConfig {
    std::string update_server;      // dns_update "host[:port]"; empty: none
    TsigKey key;                    // empty name: unsigned updates
    std::string zone;               // empty: found from the SOA
    std::vector<std::string> hook;  // dns_hook path and arguments; empty: none
    std::chrono::milliseconds hook_timeout{30000};
    std::vector<std::string> resolvers;  // dns_resolver; empty: the authoritative servers
    bool propagation_check = true;
    std::chrono::seconds propagation_timeout{120};
};

struct IssuerConfig {
    std::string name;
    std::string directory_url;
    std::vector<std::string> contacts;  // full URIs ("mailto:...")
    bool accept_terms = false;
    // "ecdsa:256" (etc.) to generate account.key in the store when missing,
    // or the path of a PEM key file to use as it is.
    std::string account_key = "ecdsa:256";
    std::vector<std::string> challenges{"http-01"};  // in order of preference
    std::string state_path;
    std::string ca_file;  // empty: system bundle
    bool verify = true;
    std::vector<std::string> resolvers;  // from nginx's `resolver`; empty: system
    // External Account Binding; empty kid: none. The MAC key is raw bytes
    // and is never logged or stored.
    std::string eab_kid;
    std::string eab_mac_key;
    std::string eab_alg = "HS256";
    // ACME profile for newOrder (a certificate's own profile wins). Without
    // profile_required a profile the CA does not offer is dropped with a
    // notice; with it the order is not attempted.
    std::string profile;
    bool profile_required = false;
    // Issuer CN of the topmost certificate of the chain to store when the
    // CA offers alternates; empty: the CA's default chain.
    std::string preferred_chain;
    bool common_name_in_csr = false;         // never for IP identifiers
    RenewBefore renew_before;                // renew_before_expiry; unset: the default rule
    std::vector<std::string> event_command;  // path and arguments; empty: the engine's
    DnsConfig dns;
    // Background requests to the CA (ARI checks, renewals of valid
    // certificates) per second, and jobs at once for this issuer; 0: the
    // engine's max_concurrent_orders.
    double background_rate = 4;
    int max_concurrent_orders = 0;
};

struct CertificateConfig {
    std::string issuer;                   // IssuerConfig::name
    std::vector<Identifier> identifiers;  // as configured, first one names the files
    KeyType key_type = KeyType::ecdsa256;
    std::string profile;       // empty: the issuer's
    RenewBefore renew_before;  // renew=; unset: the issuer's
    // ssl_stapling and ssl_stapling_verify of a server that serves it:
    // the engine keeps an OCSP response next to it (OcspStapler).
    bool ocsp_stapling = false;
    bool ocsp_verify = false;

    std::string basename() const;  // certificate_basename(identifiers, key_type)
};

struct EngineConfig {
    std::vector<IssuerConfig> issuers;
    std::vector<CertificateConfig> certificates;  // unique by (issuer, basename)
    int max_concurrent_orders = 16;
    // After the engine failed as a whole it starts again after this delay,
    // doubled with every failure in a row, at most 10 minutes.
    std::chrono::milliseconds restart_delay{5000};
    // acme_event_command (path and arguments), its timeout, and how much of
    // the lifetime left makes "expiring" (default 10 %).
    std::vector<std::string> event_command;
    std::chrono::milliseconds event_timeout{30000};
    RenewBefore warn_window{0, 10};
    // An order the OrderHook postponed is asked about again after this.
    std::chrono::seconds postpone_delay{600};
    std::string user_agent;  // "ngx_http_acme_module/<version> nginx/<version>"
};

}  // namespace acme
