// Small text helpers for the engine's messages.
#pragma once

#include <string>

namespace acme {

// "value" with double quotes, as nginx quotes names in its log lines.
inline std::string quoted(const std::string& s) { return "\"" + s + "\""; }

}  // namespace acme
