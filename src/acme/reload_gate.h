// The reload process's rules (acme_reload): it reads requests from the
// helper on a socket and turns them into at most one reload per delay.
// Nothing but a reload can be asked of it: the only message is "reload".
#pragma once

#include <chrono>
#include <functional>
#include <optional>

namespace acme {

// When reloads happen: a request is served at once unless the previous
// reload was less than `delay` ago; then one reload at the end of the
// delay serves every request that came meanwhile.
class ReloadPacer {
public:
    using Clock = std::chrono::steady_clock;
    explicit ReloadPacer(std::chrono::milliseconds delay) : delay_(delay) {}

    void requested(Clock::time_point now);
    // When the next reload is due; none while nothing was asked.
    std::optional<Clock::time_point> due() const { return due_; }
    void reloaded(Clock::time_point now);

private:
    std::chrono::milliseconds delay_;
    std::optional<Clock::time_point> due_;
    std::optional<Clock::time_point> last_;
};

// The message the helper sends.
inline constexpr char reload_request[] = "reload";

// Serves the requests on the connected SOCK_SEQPACKET socket `fd` until
// its peers are all gone (end of file), calling `reload` when one is due.
// Any other message is ignored. Returns the number of reloads.
int run_reload_gate(int fd, std::chrono::milliseconds delay, const std::function<void()>& reload);

}  // namespace acme
