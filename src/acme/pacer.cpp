// The per-issuer rate of background requests (pacer.h).
#include "pacer.h"

#include <algorithm>

namespace acme {

void Pacer::set_rate(double per_second) {
    std::lock_guard<std::mutex> lk(mutex_);
    interval_ = per_second > 0 ? 1 / per_second : 0;
}

std::time_t Pacer::claim(std::time_t now) {
    std::lock_guard<std::mutex> lk(mutex_);
    // A quiet period leaves no credit: no burst beyond one second's rate.
    double at = std::max(static_cast<double>(now), next_);
    next_ = at + interval_;
    return static_cast<std::time_t>(at);
}

}  // namespace acme
