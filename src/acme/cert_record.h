// The per-certificate files the engine keeps in the state directory:
// <basename>.json (what is known about the certificate, for the engine after
// a restart and for people and scripts) and <basename>.order.json (an order
// in progress). Only the file formats live here; what to record and when is
// the engine's business.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "challenge.h"
#include "crypto.h"
#include "schedule.h"

namespace acme {

struct LastError {
    std::string type;  // ACME problem type; "" for a local failure (null in the file)
    std::string detail;
    std::time_t at = 0;
};

// <basename>.json. Every key is always written, an unset optional as null,
// so that scripts reading the file find the same keys every time.
struct CertRecord {
    std::vector<std::string> names;
    std::string key_type;
    std::string issuer;
    std::string profile;  // "" (null in the file): none asked for
    std::optional<std::time_t> not_before;
    std::optional<std::time_t> not_after;
    std::optional<std::string> serial;
    std::optional<std::time_t> renewal_at;
    std::optional<Window> ari_window;
    std::optional<std::time_t> next_attempt;
    std::optional<std::time_t> retry_after_until;
    int failures = 0;
    ChallengeHistory challenge_failures;
    std::optional<LastError> last_error;
    std::time_t updated_at = 0;
};

// Pretty-printed with sorted keys and a trailing newline: people read it.
std::string format_cert_record(const CertRecord& r);
// Throws acme::Error when the text is not JSON. Missing or mistyped members
// keep their defaults, so a file of an older version or edited by hand
// still gives what it can; failures is clamped to 0..1000 so that a
// damaged count is neither negative nor too large for an int.
CertRecord parse_cert_record(std::string_view text);

// <basename>.order.json. It holds the certificate's new private key once
// the CSR is sent, so the engine writes it with mode 0600.
struct SavedOrder {
    std::string url;
    std::optional<PrivateKey> key;  // set once the CSR was sent
    std::time_t updated_at = 0;
};

std::string format_saved_order(const SavedOrder& o);
// Throws acme::Error when the text is not JSON, has no order URL or an
// unreadable key.
SavedOrder parse_saved_order(std::string_view text);

}  // namespace acme
