// Spreads an issuer's background traffic to the CA (ARI checks and
// renewals of valid certificates): a start or reload with 10,000 stored
// certificates must not send 10,000 requests at once.
#pragma once

#include <ctime>
#include <mutex>

namespace acme {

class Pacer {
public:
    explicit Pacer(double per_second = default_rate) { set_rate(per_second); }
    static constexpr double default_rate = 4;

    void set_rate(double per_second);
    // When the caller may send: `now` while the rate allows it, else the
    // first later second with room. Each call takes one place.
    std::time_t claim(std::time_t now);

private:
    std::mutex mutex_;
    double interval_ = 0;  // seconds between two requests
    double next_ = 0;      // first free time
};

}  // namespace acme
