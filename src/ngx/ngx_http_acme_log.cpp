// The engine's log lines reach nginx's error log through the process's main
// thread: the engine's threads must not call nginx, so they queue lines, and
// a timer of the main thread (the helper's, or the single process's) writes
// them with ngx_log_error. That reaches every error_log target (files,
// stderr, syslog:, memory:) and never races a log reopen.
#include <deque>
#include <mutex>
#include <string>
#include <utility>

#include "ngx/ngx_http_acme.h"

namespace {

constexpr ngx_msec_t drain_interval = 100;
constexpr size_t max_queued = 10000;  // lines; more are counted and dropped

class QueuedLog : public acme::Logger {
public:
    void log(acme::LogLevel level, std::string_view message) override {
        std::lock_guard<std::mutex> lk(mutex_);
        if (lines_.size() >= max_queued) {
            dropped_++;
            return;
        }
        lines_.emplace_back(static_cast<ngx_uint_t>(level), std::string(message));
    }

    void drain(ngx_log_t *log) {
        std::deque<std::pair<ngx_uint_t, std::string>> lines;
        size_t dropped;
        {
            std::lock_guard<std::mutex> lk(mutex_);
            lines.swap(lines_);
            dropped = dropped_;
            dropped_ = 0;
        }
        if (dropped != 0) {
            ngx_log_error(NGX_LOG_WARN, log, 0, "acme: %uz engine log lines were dropped", dropped);
        }
        for (const auto &[level, text] : lines) {
            ngx_log_error(level, log, 0, "%*s", text.size(), text.data());
        }
    }

private:
    std::mutex mutex_;
    std::deque<std::pair<ngx_uint_t, std::string>> lines_;
    size_t dropped_ = 0;
};

QueuedLog *queued_log;
ngx_event_t drain_event;

void drain_handler(ngx_event_t *ev) {
    ngx_http_acme_drain_engine_log();
    if (!ngx_exiting && !ngx_terminate && !ngx_quit) {
        ngx_add_timer(ev, drain_interval);
    }
}

}  // namespace

acme::Logger *ngx_http_acme_engine_log(ngx_cycle_t *cycle) {
    if (queued_log == nullptr) {
        queued_log = new QueuedLog();  // lives as long as the process
        drain_event.handler = drain_handler;
        drain_event.log = cycle->log;
        drain_event.data = &drain_event;
        drain_event.cancelable = 1;  // a quitting process does not wait for it
        ngx_add_timer(&drain_event, drain_interval);
    }
    return queued_log;
}

void ngx_http_acme_drain_engine_log() {
    if (queued_log == nullptr) {
        return;
    }
    // The http block's error_log (the main one when it has none), as for
    // everything else of the http module. With master_process off a reload
    // replaces the cycle: use the current one's.
    ngx_log_t *log = ngx_cycle->log;
    auto **ctx = reinterpret_cast<void **>(ngx_cycle->conf_ctx[ngx_http_module.index]);
    if (ctx != nullptr) {
        auto *http = reinterpret_cast<ngx_http_conf_ctx_t *>(ctx);
        auto *clcf =
            static_cast<ngx_http_core_loc_conf_t *>(http->loc_conf[ngx_http_core_module.ctx_index]);
        if (clcf != nullptr && clcf->error_log != nullptr) {
            log = clcf->error_log;
        }
    }
    queued_log->drain(log);
}
