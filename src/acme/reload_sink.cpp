// acme_reload's event sink: issued certificates become one paced reload
// request. The request itself (a message to the master's reload process)
// is the glue's; see ngx_http_acme_reload.cpp.
#include "reload_sink.h"

#include <algorithm>
#include <variant>

namespace acme {

ReloadSink::ReloadSink(std::chrono::milliseconds delay, Logger& log, Request request)
    : delay_(delay), log_(log), request_(std::move(request)) {
    thread_ = std::thread([this] { thread_main(); });
}

ReloadSink::~ReloadSink() {
    {
        std::lock_guard<std::mutex> lk(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

void ReloadSink::on_event(const Event& event) {
    auto* issued = std::get_if<events::Issued>(&event);
    if (issued == nullptr) return;
    std::lock_guard<std::mutex> lk(mutex_);
    if (std::find(names_.begin(), names_.end(), issued->cert.name) == names_.end()) {
        names_.push_back(issued->cert.name);
    }
    if (due_) return;  // that reload will have it
    Clock::time_point at = Clock::now() + delay_;
    if (last_) at = std::max(at, *last_ + delay_);
    due_ = at;
    wake_.notify_all();
}

int ReloadSink::requests() const {
    std::lock_guard<std::mutex> lk(mutex_);
    return requests_;
}

void ReloadSink::thread_main() {
    std::unique_lock<std::mutex> lk(mutex_);
    while (!stop_) {
        if (!due_) {
            wake_.wait(lk);
            continue;
        }
        if (Clock::now() < *due_) {
            wake_.wait_until(lk, *due_);
            continue;
        }
        std::string names;
        for (const std::string& n : names_) names += (names.empty() ? "\"" : ", \"") + n + "\"";
        names_.clear();
        due_.reset();
        last_ = Clock::now();
        requests_++;
        lk.unlock();
        log_.log(LogLevel::notice,
                 "acme: asking nginx for a graceful reload: new certificate for " + names +
                     " (acme_reload)");
        std::string error;
        if (!request_(error)) {
            log_.log(LogLevel::error, "acme: cannot ask nginx for a reload: " + error);
        }
        lk.lock();
    }
}

}  // namespace acme
