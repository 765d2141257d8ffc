// acme_reload's event sink: after certificates were issued and stored, asks
// nginx for one graceful reload, so that whatever else reads the stored
// files (another module, a stream server's ssl_certificate) sees them too.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "events.h"
#include "log.h"

namespace acme {

class ReloadSink : public EventSink {
public:
    using Clock = std::chrono::steady_clock;
    // Sends the request; false with `error` set when it could not.
    using Request = std::function<bool(std::string& error)>;

    // A reload is asked for `delay` after the first issuance that is not in
    // one yet, and never sooner than `delay` after the previous request:
    // every certificate issued meanwhile is in that one reload.
    ReloadSink(std::chrono::milliseconds delay, Logger& log, Request request);
    ~ReloadSink() override;
    ReloadSink(const ReloadSink&) = delete;
    ReloadSink& operator=(const ReloadSink&) = delete;

    void on_event(const Event& event) override;
    // How many requests were sent (tests).
    int requests() const;

private:
    void thread_main();

    const std::chrono::milliseconds delay_;
    Logger& log_;
    Request request_;

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::optional<Clock::time_point> due_;   // a reload waits
    std::optional<Clock::time_point> last_;  // the previous request
    std::vector<std::string> names_;         // of the certificates waiting
    int requests_ = 0;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace acme
