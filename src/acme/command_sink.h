// The event command (acme_event_command): a program run for the events an
// operator acts on, called as `PATH ARG... <event> <certificate>` (as
// mod_md's MDMessageCmd) with ACME_* variables. It runs in a thread of its
// own, one call at a time with a timeout, so orders never wait for it; only
// "renewing" is asked in the order's own thread (OrderHook), where a
// non-zero exit postpones that order.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine_config.h"
#include "events.h"
#include "order_hook.h"
#include "run_command.h"

namespace acme {

class CommandSink : public EventSink, public OrderHook {
public:
    using Clock = std::function<std::time_t()>;
    // Commands and certificates from the configuration (the issuer's
    // event_command, else the engine's); `report` gets the CommandOutput
    // events (the engine's sinks: its log).
    CommandSink(const EngineConfig& config, EventSink& report, Clock clock = {});
    ~CommandSink() override;  // waits for a running call (at most its timeout)
    CommandSink(const CommandSink&) = delete;
    CommandSink& operator=(const CommandSink&) = delete;

    // Whether any command is configured at all.
    bool enabled() const { return enabled_; }

    void on_event(const Event& event) override;
    bool before_order(const CertRef& cert, const std::string& issuer, std::string& why) override;

private:
    struct Certificate {
        std::vector<std::string> names;
        std::string issuer;
        const std::vector<std::string>* command = nullptr;  // empty: none
        std::string cert_file, key_file;
        std::time_t not_before = 0, not_after = 0;
        std::time_t expiring_sent = 0;
    };
    struct Call {
        std::string event;
        std::string id;
        std::string error_type, error_detail;
    };

    void queue(Call call);
    void thread_main();
    void check_expiring(std::time_t now);  // with mutex_ held
    CommandResult call(const Call& c, const Certificate& cert);

    EventSink& report_;
    Clock clock_;
    bool enabled_ = false;
    std::chrono::milliseconds timeout_;
    RenewBefore warn_window_;

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Call> calls_;
    std::map<std::string, Certificate> certs_;  // by id
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace acme
