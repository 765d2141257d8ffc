// The reload process's loop: poll the socket, pace, reload.
#include "reload_gate.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace acme {

void ReloadPacer::requested(Clock::time_point now) {
    if (due_) return;
    due_ = last_ ? std::max(now, *last_ + delay_) : now;
}

void ReloadPacer::reloaded(Clock::time_point now) {
    due_.reset();
    last_ = now;
}

int run_reload_gate(int fd, std::chrono::milliseconds delay, const std::function<void()>& reload) {
    ReloadPacer pacer(delay);
    int reloads = 0;
    for (;;) {
        auto now = ReloadPacer::Clock::now();
        if (auto due = pacer.due(); due && *due <= now) {
            reload();
            reloads++;
            pacer.reloaded(now);
            continue;
        }
        int timeout = -1;
        if (auto due = pacer.due()) {
            auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*due - now).count();
            timeout = static_cast<int>(std::clamp<long long>(ms + 1, 1, 60 * 1000));
        }
        pollfd p{fd, POLLIN, 0};
        int n = ::poll(&p, 1, timeout);
        if (n < 0 && errno != EINTR) return reloads;
        if (n <= 0) continue;
        char buf[64];
        ssize_t got = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (got == 0) return reloads;  // the master and the helper are gone
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            return reloads;
        }
        if (static_cast<std::size_t>(got) == std::strlen(reload_request) &&
            std::memcmp(buf, reload_request, got) == 0) {
            pacer.requested(ReloadPacer::Clock::now());
        }
    }
}

}  // namespace acme
