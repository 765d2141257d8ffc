// The first event sink: every engine event as one line of the error log,
// at the level an operator expects for it.
#pragma once

#include <ctime>
#include <string>

#include "events.h"
#include "log.h"

namespace acme {

class LogSink : public EventSink {
public:
    explicit LogSink(Logger& logger) : logger_(logger) {}
    void on_event(const Event& event) override;

private:
    Logger& logger_;
};

// "2026-12-01 09:00:00 UTC", as the engine's log lines show times.
std::string format_time(std::time_t t);

}  // namespace acme
