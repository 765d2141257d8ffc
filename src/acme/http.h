// The engine's HTTP interface. The ACME client talks only to HttpClient, so
// unit tests can put a scripted double behind it; CurlHttpClient is the real
// one (libcurl, blocking, one connection cache per instance: use one instance
// per thread).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace acme {

struct HttpRequest {
    std::string method = "GET";  // "GET", "HEAD" or "POST"
    std::string url;
    std::vector<std::pair<std::string, std::string>>
        headers;  // e.g. {"Content-Type", "application/jose+json"}
    std::string body;
    // Only the directory fetch follows redirects (at most 10, never from
    // https to http); a redirected POST would lose its body and signature.
    bool follow_redirects = false;
};

struct HttpResponse {
    long status = 0;
    std::vector<std::pair<std::string, std::string>>
        headers;  // names lower-cased, values trimmed, in order
    std::string body;
    std::string effective_url;  // after redirects

    // First value of a header (name compared case-insensitively), or "".
    std::string header(std::string_view name) const;
    // Every value of a header, e.g. several Link headers.
    std::vector<std::string> headers_named(std::string_view name) const;
    // URLs of `Link: <url>;rel="<rel>"` headers (RFC 8288), in order.
    std::vector<std::string> links(std::string_view rel) const;
};

class HttpClient {
public:
    virtual ~HttpClient() = default;
    // Throws acme::Error on transport failure (DNS, connect, TLS, timeout).
    // HTTP error statuses are returned, not thrown.
    virtual HttpResponse send(const HttpRequest& request) = 0;
};

struct HttpOptions {
    std::string user_agent;              // required by RFC 8555 section 6.1
    std::string ca_file;                 // PEM bundle; empty: libcurl's default (system bundle)
    bool verify = true;                  // peer and host name verification
    std::vector<std::string> resolvers;  // "ip" or "ip:port"; empty: system resolver
    long connect_timeout_ms = 10000;
    long timeout_ms = 30000;
};

class CurlHttpClient : public HttpClient {
public:
    explicit CurlHttpClient(HttpOptions options);
    ~CurlHttpClient() override;
    CurlHttpClient(const CurlHttpClient&) = delete;
    CurlHttpClient& operator=(const CurlHttpClient&) = delete;

    HttpResponse send(const HttpRequest& request) override;

private:
    // One request, no redirect followed; *redirect gets the absolute
    // target of a 3xx answer.
    HttpResponse send_once(const HttpRequest& request, std::string* redirect);

    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Looks up host (A records) by asking the given DNS servers directly, for
// nginx's `resolver`; throws acme::Error when no address is found. Used by
// CurlHttpClient to pin the CA's address with CURLOPT_RESOLVE.
std::vector<std::string> resolve_host(const std::string& host,
                                      const std::vector<std::string>& servers);

}  // namespace acme
