// The engine's one question to the outside before an order: may it start
// now? The event command's "renewing" call answers it (mod_md's
// MDMessageCmd: a non-zero exit postpones the renewal).
#pragma once

#include <string>

#include "events.h"

namespace acme {

class OrderHook {
public:
    virtual ~OrderHook() = default;
    // Called in the order's thread before it starts; may block that order
    // (never the others). False postpones it, saying why in `why`.
    virtual bool before_order(const CertRef& cert, const std::string& issuer, std::string& why) = 0;
};

}  // namespace acme
