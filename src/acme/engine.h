// The ACME engine: keeps every configured certificate issued and current.
// It runs in its own thread (in nginx's helper process), talks to the CA over
// HTTP, writes the storage, and tells workers through a ChallengeBoard. It
// never calls nginx. What happens is reported to event sinks; the Logger
// given to the constructor gets it as log lines.
#pragma once

#include <functional>
#include <memory>

#include "engine_config.h"
#include "events.h"
#include "log.h"
#include "order_hook.h"
#include "shared_state.h"
#include "status_board.h"
#include "storage.h"

namespace acme {

// Makes the storage of a state path (FileStorage when not given).
using StorageFactory = std::function<std::unique_ptr<Storage>(const std::string& state_path)>;

class Engine {
public:
    Engine(EngineConfig config, ChallengeBoard& board, Logger& log, StorageFactory storage = {});
    ~Engine();  // stop() and join
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Starts the engine thread (signals blocked in it) and returns at once.
    void start();
    // Asks the thread to stop and waits for it; in-flight HTTP requests are
    // abandoned at their next check.
    void stop();
    bool running() const;
    // Another sink for the engine's events; before start() only.
    void add_sink(EventSink& sink);
    // The engine's sinks, for a sink that reports events of its own (the
    // event command's output) from its own thread.
    EventSink& events();
    // Asked before every order (the event command's "renewing"); before start() only.
    void set_order_hook(OrderHook& hook);
    // Where renew-now requests come from (the status area); before start() only.
    void set_renew_requests(RenewRequests& requests);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace acme
