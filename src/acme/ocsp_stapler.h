// Keeps an OCSP response next to every stored certificate of a server with
// ssl_stapling on: a thread of the engine (in the helper) fetches it when a
// new certificate is stored and again before half of its validity is gone,
// checks it (with ssl_stapling_verify, against the issuer), stores it as
// <id>.ocsp and tells workers, which staple it without network access.
#pragma once

#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cert_state.h"
#include "http.h"

namespace acme {

class OcspStapler {
public:
    using HttpFactory = std::function<std::unique_ptr<HttpClient>(const HttpOptions&)>;

    // Retries after a failed fetch: first_retry, doubled each time, at most
    // max_retry (and never later than the stored response's refresh time).
    static constexpr std::time_t first_retry = 5;
    static constexpr std::time_t max_retry = 1800;

    OcspStapler(const EngineContext& ctx, const std::vector<std::unique_ptr<CertState>>& certs,
                HttpFactory make_http);
    ~OcspStapler();  // joins the thread; the context's stop signal ends it
    OcspStapler(const OcspStapler&) = delete;
    OcspStapler& operator=(const OcspStapler&) = delete;

    // Starts the thread when a certificate wants stapling.
    void start();
    // One pass over the certificates at `now` (the thread calls it every
    // second; tests call it directly).
    void check(std::time_t now);

private:
    struct Entry {
        CertState* cert = nullptr;
        std::string version;  // of the certificate the response is for
        std::time_t due = 0;  // next fetch; 0: at once
        int failures = 0;
    };

    void run();
    bool still_current(Entry& e, const std::string& chain, std::time_t now);
    void fetch(Entry& e, const std::string& chain, std::time_t now);

    const EngineContext& ctx_;
    HttpFactory make_http_;
    std::vector<Entry> entries_;
    std::unique_ptr<HttpClient> http_;  // the first issuer's options
    std::thread thread_;
};

}  // namespace acme
