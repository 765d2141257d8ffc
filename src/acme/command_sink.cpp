// Running the event command (through run_command.h) for the events of the
// engine, in a thread of its own.
#include "command_sink.h"

#include <algorithm>
#include <variant>

namespace acme {

namespace {

constexpr std::time_t expiring_interval = 24 * 3600;
// Workers look for a new certificate every 100 ms.
constexpr std::chrono::milliseconds install_delay{1000};

std::string path_in(const std::string& dir, const std::string& file) {
    return dir.empty() || dir.back() == '/' ? dir + file : dir + "/" + file;
}

std::string joined(const std::vector<std::string>& names) {
    std::string s;
    for (const std::string& n : names) s += (s.empty() ? "" : " ") + n;
    return s;
}

}  // namespace

CommandSink::CommandSink(const EngineConfig& config, EventSink& report, Clock clock)
    : report_(report),
      clock_(std::move(clock)),
      timeout_(config.event_timeout),
      warn_window_(config.warn_window) {
    if (!clock_) clock_ = [] { return std::time(nullptr); };
    for (const CertificateConfig& cc : config.certificates) {
        auto is = std::find_if(config.issuers.begin(), config.issuers.end(),
                               [&](const IssuerConfig& i) { return i.name == cc.issuer; });
        if (is == config.issuers.end()) continue;
        Certificate c;
        for (const Identifier& id : cc.identifiers) c.names.push_back(id.value);
        c.issuer = cc.issuer;
        c.command = is->event_command.empty() ? &config.event_command : &is->event_command;
        std::string id = cc.basename();
        c.cert_file = path_in(is->state_path, id + ".crt");
        c.key_file = path_in(is->state_path, id + ".key");
        enabled_ = enabled_ || !c.command->empty();
        certs_.emplace(id, std::move(c));
    }
    if (enabled_) thread_ = std::thread([this] { thread_main(); });
}

CommandSink::~CommandSink() {
    {
        std::lock_guard<std::mutex> lk(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void CommandSink::on_event(const Event& event) {
    if (!enabled_) return;
    std::time_t now = clock_();
    if (auto* e = std::get_if<events::CertificateState>(&event)) {
        std::lock_guard<std::mutex> lk(mutex_);
        auto it = certs_.find(e->cert.id);
        if (it == certs_.end()) return;
        it->second.not_before = e->has_cert ? e->not_before : 0;
        it->second.not_after = e->has_cert ? e->not_after : 0;
        check_expiring(now);
        wake_.notify_all();
    } else if (auto* e = std::get_if<events::Issued>(&event)) {
        {
            std::lock_guard<std::mutex> lk(mutex_);
            auto it = certs_.find(e->cert.id);
            if (it != certs_.end()) it->second.not_after = e->not_after;
        }
        queue({"issued", e->cert.id, "", ""});
        queue({"installed", e->cert.id, "", ""});
    } else if (auto* e = std::get_if<events::Failed>(&event)) {
        queue({"failed", e->cert.id, e->problem_type, e->detail});
    }
}

void CommandSink::queue(Call call) {
    std::lock_guard<std::mutex> lk(mutex_);
    calls_.push_back(std::move(call));
    wake_.notify_all();
}

// "expiring" once a day per certificate while less than the warn window
// of its lifetime remains: a renewal that succeeded would have a new one.
void CommandSink::check_expiring(std::time_t now) {
    for (auto& [id, c] : certs_) {
        if (c.not_after == 0 || c.command->empty()) continue;
        std::time_t lifetime = c.not_after - c.not_before;
        std::time_t window =
            warn_window_.seconds > 0 ? warn_window_.seconds : lifetime * warn_window_.percent / 100;
        if (now < c.not_after - window) continue;
        if (c.expiring_sent != 0 && now < c.expiring_sent + expiring_interval) continue;
        c.expiring_sent = now;
        calls_.push_back({"expiring", id, "", ""});
    }
}

void CommandSink::thread_main() {
    std::unique_lock<std::mutex> lk(mutex_);
    while (!stop_) {
        if (calls_.empty()) {
            check_expiring(clock_());
        }
        if (calls_.empty()) {
            wake_.wait_for(lk, std::chrono::minutes(1));
            continue;
        }
        Call c = std::move(calls_.front());
        calls_.pop_front();
        Certificate cert = certs_.at(c.id);
        lk.unlock();
        if (c.event == "installed") {
            std::this_thread::sleep_for(install_delay);
        }
        call(c, cert);
        lk.lock();
    }
}

CommandResult CommandSink::call(const Call& c, const Certificate& cert) {
    std::vector<std::string> argv = *cert.command;
    argv.push_back(c.event);
    argv.push_back(c.id);
    std::vector<std::string> env = {
        "ACME_EVENT=" + c.event,
        "ACME_CERTIFICATE=" + c.id,
        "ACME_NAMES=" + joined(cert.names),
        "ACME_ISSUER=" + cert.issuer,
        "ACME_CERT_FILE=" + cert.cert_file,
        "ACME_KEY_FILE=" + cert.key_file,
        "ACME_NOT_AFTER=" + (cert.not_after ? std::to_string(cert.not_after) : std::string()),
        "ACME_ERROR_TYPE=" + c.error_type,
        "ACME_ERROR_DETAIL=" + c.error_detail,
    };
    CommandResult r = run_command(argv, env, timeout_);
    std::size_t start = 0;
    while (start < r.output.size()) {
        std::size_t end = r.output.find('\n', start);
        if (end == std::string::npos) end = r.output.size();
        if (end > start) {
            report_.on_event(
                events::CommandOutput{c.event, c.id, r.output.substr(start, end - start), false});
        }
        start = end + 1;
    }
    if (!r.ok()) {
        std::string how = !r.started ? "could not be started"
                          : r.timed_out
                              ? "timed out after " + std::to_string(timeout_.count() / 1000) + " s"
                          : r.exit_code < 0 ? "ended without an exit status"
                                            : "exited with " + std::to_string(r.exit_code);
        report_.on_event(events::CommandOutput{c.event, c.id, how, true});
    }
    return r;
}

bool CommandSink::before_order(const CertRef& ref, const std::string&, std::string& why) {
    Certificate cert;
    {
        std::lock_guard<std::mutex> lk(mutex_);
        auto it = certs_.find(ref.id);
        if (it == certs_.end() || it->second.command->empty()) return true;
        cert = it->second;
    }
    CommandResult r = call({"renewing", ref.id, "", ""}, cert);
    if (r.ok()) return true;
    why = r.timed_out ? "the event command timed out"
                      : "the event command exited with " + std::to_string(r.exit_code);
    return false;
}

}  // namespace acme
