// The engine's logging interface; the nginx glue implements it by writing
// nginx-format lines to the error log (the engine thread must not call nginx).
#pragma once

#include <string_view>

namespace acme {

// Same order and meaning as nginx's levels.
enum class LogLevel { emerg = 1, alert, crit, error, warn, notice, info, debug };

class Logger {
public:
    virtual ~Logger() = default;
    virtual void log(LogLevel level, std::string_view message) = 0;
};

// Discards everything (unit tests, nginx -t).
class NullLogger : public Logger {
public:
    void log(LogLevel, std::string_view) override {}
};

}  // namespace acme
