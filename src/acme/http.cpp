// The libcurl HTTP client of the engine, plus the small DNS client that lets it
// honour nginx's `resolver` (Debian's libcurl has no CURLOPT_DNS_SERVERS).
#include "http.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <curl/curl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>

#include "error.h"

namespace acme {

namespace {

// ACME responses are small (the largest is a certificate chain); a cap keeps
// a misbehaving server from growing the helper thread's memory unboundedly.
constexpr size_t max_body_size = 8 * 1024 * 1024;
constexpr auto dns_cache_ttl = std::chrono::seconds(60);

std::string to_lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_space(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

bool equal_nocase(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i]))) {
            return false;
        }
    }
    return true;
}

struct CurlEasyDeleter {
    void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct CurlSlistDeleter {
    void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
struct CurlUrlDeleter {
    void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct CurlFreeDeleter {
    void operator()(char* p) const { curl_free(p); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistDeleter>;
using CurlUrl = std::unique_ptr<CURLU, CurlUrlDeleter>;
using CurlString = std::unique_ptr<char, CurlFreeDeleter>;

void append(CurlSlist& list, const std::string& line) {
    curl_slist* grown = curl_slist_append(list.get(), line.c_str());
    if (grown == nullptr) {
        throw Error("out of memory building a curl list");
    }
    list.release();
    list.reset(grown);
}

std::string url_part(CURLU* u, CURLUPart part, unsigned flags) {
    char* raw = nullptr;
    if (curl_url_get(u, part, &raw, flags) != CURLUE_OK || raw == nullptr) {
        return "";
    }
    CurlString owned(raw);
    return std::string(owned.get());
}

// A Link target may be relative to the URL of the response (RFC 8288
// section 3.1); libcurl's URL API does the RFC 3986 resolution.
std::string resolve_reference(const std::string& base, const std::string& ref) {
    if (base.empty()) {
        return ref;
    }
    CurlUrl u(curl_url());
    if (!u || curl_url_set(u.get(), CURLUPART_URL, base.c_str(), 0) != CURLUE_OK ||
        curl_url_set(u.get(), CURLUPART_URL, ref.c_str(), 0) != CURLUE_OK) {
        return ref;
    }
    std::string resolved = url_part(u.get(), CURLUPART_URL, 0);
    return resolved.empty() ? ref : resolved;
}

// Tokenizer for one Link header value: `<url>; p=v; p="v", <url2>; ...`.
class LinkParser {
public:
    explicit LinkParser(std::string_view s) : s_(s) {}

    // Calls on_link(url, rels) for each link-value.
    template <typename F>
    void each(F on_link) {
        while (pos_ < s_.size()) {
            skip_ws_and(',');
            if (pos_ >= s_.size()) {
                break;
            }
            if (s_[pos_] != '<') {
                skip_to_next_link();
                continue;
            }
            size_t close = s_.find('>', pos_ + 1);
            if (close == std::string_view::npos) {
                return;
            }
            std::string_view url = s_.substr(pos_ + 1, close - pos_ - 1);
            pos_ = close + 1;
            std::string rel;
            for (;;) {
                skip_ws();
                if (pos_ >= s_.size() || s_[pos_] != ';') {
                    break;
                }
                ++pos_;
                skip_ws();
                std::string name = to_lower(token());
                skip_ws();
                std::string value;
                if (pos_ < s_.size() && s_[pos_] == '=') {
                    ++pos_;
                    skip_ws();
                    value = pos_ < s_.size() && s_[pos_] == '"' ? quoted() : std::string(token());
                }
                // RFC 8288 section 3.3: only the first rel parameter counts.
                if (name == "rel" && rel.empty()) {
                    rel = value;
                }
            }
            on_link(trim(url), rel);
            skip_to_next_link();
        }
    }

private:
    void skip_ws() {
        while (pos_ < s_.size() && is_space(s_[pos_])) {
            ++pos_;
        }
    }
    void skip_ws_and(char c) {
        while (pos_ < s_.size() && (is_space(s_[pos_]) || s_[pos_] == c)) {
            ++pos_;
        }
    }
    std::string_view token() {
        size_t start = pos_;
        while (pos_ < s_.size() && !is_space(s_[pos_]) && s_[pos_] != ';' && s_[pos_] != ',' &&
               s_[pos_] != '=') {
            ++pos_;
        }
        return s_.substr(start, pos_ - start);
    }
    std::string quoted() {
        std::string out;
        ++pos_;  // opening quote
        while (pos_ < s_.size() && s_[pos_] != '"') {
            if (s_[pos_] == '\\' && pos_ + 1 < s_.size()) {
                ++pos_;
            }
            out.push_back(s_[pos_++]);
        }
        if (pos_ < s_.size()) {
            ++pos_;  // closing quote
        }
        return out;
    }
    // Skips garbage up to the next comma that is outside quotes.
    void skip_to_next_link() {
        bool in_quotes = false;
        while (pos_ < s_.size()) {
            char c = s_[pos_];
            if (in_quotes && c == '\\') {
                pos_ += 2;
                continue;
            }
            if (c == '"') {
                in_quotes = !in_quotes;
            } else if (c == ',' && !in_quotes) {
                return;
            }
            ++pos_;
        }
    }

    std::string_view s_;
    size_t pos_ = 0;
};

// rel is a space-separated list of relation types, compared case-insensitively.
bool rel_matches(std::string_view rels, std::string_view wanted) {
    while (!rels.empty()) {
        size_t end = 0;
        while (end < rels.size() && !is_space(rels[end])) {
            ++end;
        }
        if (end > 0 && equal_nocase(rels.substr(0, end), wanted)) {
            return true;
        }
        rels.remove_prefix(end);
        while (!rels.empty() && is_space(rels.front())) {
            rels.remove_prefix(1);
        }
    }
    return false;
}

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] {
        CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (rc != CURLE_OK) {
            throw Error(std::string("curl_global_init failed: ") + curl_easy_strerror(rc));
        }
    });
}

size_t on_body(char* data, size_t size, size_t count, void* userdata) {
    auto* body = static_cast<std::string*>(userdata);
    size_t n = size * count;
    if (body->size() + n > max_body_size) {
        return 0;  // makes curl fail with CURLE_WRITE_ERROR
    }
    body->append(data, n);
    return n;
}

size_t on_header(char* data, size_t size, size_t count, void* userdata) {
    auto* headers = static_cast<std::vector<std::pair<std::string, std::string>>*>(userdata);
    size_t n = size * count;
    std::string_view line(data, n);
    // Each response (a redirect, a 100 Continue, a proxy CONNECT answer)
    // starts with a status line; only the last response's headers count.
    if (line.substr(0, 5) == "HTTP/") {
        headers->clear();
        return n;
    }
    if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
        // obs-fold continuation line
        if (!headers->empty()) {
            std::string& value = headers->back().second;
            std::string_view more = trim(line);
            if (!more.empty()) {
                value += value.empty() ? "" : " ";
                value += more;
            }
        }
        return n;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
        return n;  // the blank line ending the block, or junk
    }
    headers->emplace_back(to_lower(trim(line.substr(0, colon))),
                          std::string(trim(line.substr(colon + 1))));
    return n;
}

bool is_ip_literal(const std::string& host) {
    unsigned char buf[sizeof(struct in6_addr)];
    if (!host.empty() && host.front() == '[') {
        return true;  // curl hands IPv6 literals back bracketed
    }
    return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// "localhost" never reaches DNS (RFC 6761 section 6.3), so leave it to the
// system resolver, which knows it from /etc/hosts.
bool is_localhost(const std::string& host) {
    std::string h = to_lower(host);
    if (!h.empty() && h.back() == '.') {
        h.pop_back();
    }
    static const std::string suffix = ".localhost";
    return h == "localhost" || (h.size() > suffix.size() &&
                                h.compare(h.size() - suffix.size(), suffix.size(), suffix) == 0);
}

struct ResStateCloser {
    void operator()(struct __res_state* st) const { res_nclose(st); }
};

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
        if (equal_nocase(key, name)) {
            return value;
        }
    }
    return "";
}

std::vector<std::string> HttpResponse::headers_named(std::string_view name) const {
    std::vector<std::string> values;
    for (const auto& [key, value] : headers) {
        if (equal_nocase(key, name)) {
            values.push_back(value);
        }
    }
    return values;
}

std::vector<std::string> HttpResponse::links(std::string_view rel) const {
    std::vector<std::string> urls;
    for (const std::string& value : headers_named("link")) {
        LinkParser(value).each([&](std::string_view url, const std::string& rels) {
            if (rel_matches(rels, rel)) {
                urls.push_back(resolve_reference(effective_url, std::string(url)));
            }
        });
    }
    return urls;
}

struct CurlHttpClient::Impl {
    struct CachedAddresses {
        std::vector<std::string> addresses;
        std::chrono::steady_clock::time_point expires;
    };

    HttpOptions options;
    CurlEasy easy;
    char error_buffer[CURL_ERROR_SIZE] = {};
    std::map<std::string, CachedAddresses> dns_cache;
    // curl keeps pointers to these lists until the transfer ends.
    CurlSlist request_headers;
    CurlSlist resolve_list;

    void setopt_failed(CURLcode rc) {
        throw Error(std::string("cannot configure libcurl: ") + curl_easy_strerror(rc));
    }

    template <typename T>
    void set(CURLoption option, T value) {
        CURLcode rc = curl_easy_setopt(easy.get(), option, value);
        if (rc != CURLE_OK) {
            setopt_failed(rc);
        }
    }

    const std::vector<std::string>& addresses_for(const std::string& host) {
        auto now = std::chrono::steady_clock::now();
        auto it = dns_cache.find(host);
        if (it != dns_cache.end() && it->second.expires > now) {
            return it->second.addresses;
        }
        std::vector<std::string> fresh = resolve_host(host, options.resolvers);
        CachedAddresses& entry = dns_cache[host];
        entry = CachedAddresses{std::move(fresh), now + dns_cache_ttl};
        return entry.addresses;
    }

    // Pins the URL's host to what options.resolvers say, so libcurl never
    // asks the system resolver.
    void pin_address(const std::string& url) {
        CurlUrl u(curl_url());
        if (!u) {
            throw Error("out of memory parsing a URL");
        }
        if (curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) {
            throw Error("invalid URL \"" + url + "\"");
        }
        std::string host = url_part(u.get(), CURLUPART_HOST, 0);
        std::string port = url_part(u.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
        if (host.empty() || is_ip_literal(host) || is_localhost(host)) {
            return;
        }
        if (port.empty()) {
            port = "443";
        }
        std::string joined;
        for (const std::string& addr : addresses_for(host)) {
            joined += (joined.empty() ? "" : ",") + addr;
        }
        // A leading "-" entry drops what an earlier request pinned, so a
        // changed answer replaces it instead of being ignored.
        resolve_list.reset();
        append(resolve_list, "-" + host + ":" + port);
        append(resolve_list, host + ":" + port + ":" + joined);
        set(CURLOPT_RESOLVE, resolve_list.get());
    }
};

CurlHttpClient::CurlHttpClient(HttpOptions options) : impl_(std::make_unique<Impl>()) {
    global_init();
    impl_->options = std::move(options);
    impl_->easy.reset(curl_easy_init());
    if (!impl_->easy) {
        throw Error("curl_easy_init failed");
    }
}

CurlHttpClient::~CurlHttpClient() = default;

// Redirects are followed here, not by libcurl, so that every hop gets the
// address from nginx's resolver and none goes from https to http.
HttpResponse CurlHttpClient::send(const HttpRequest& request) {
    constexpr int max_redirects = 10;
    HttpRequest hop = request;
    for (int redirects = 0;; ++redirects) {
        std::string target;
        HttpResponse response = send_once(hop, &target);
        if (!request.follow_redirects || response.status < 300 || response.status > 399 ||
            target.empty()) {
            return response;
        }
        if (redirects == max_redirects) {
            throw Error(request.method + " " + request.url + " failed: more than " +
                        std::to_string(max_redirects) + " redirects");
        }
        if (hop.url.rfind("https:", 0) == 0 && target.rfind("https:", 0) != 0) {
            throw Error(request.method + " " + request.url + " failed: redirected from " + hop.url +
                        " to " + target + ", which is not https");
        }
        hop.url = target;
    }
}

HttpResponse CurlHttpClient::send_once(const HttpRequest& request, std::string* redirect) {
    Impl& im = *impl_;
    const HttpOptions& opt = im.options;
    CURL* h = im.easy.get();
    HttpResponse response;

    // Reset clears every option of the previous request but keeps the
    // connection cache, DNS cache and TLS sessions: reuse is the point of
    // keeping one handle.
    curl_easy_reset(h);
    im.error_buffer[0] = '\0';
    im.request_headers.reset();
    im.resolve_list.reset();

    im.set(CURLOPT_URL, request.url.c_str());
    im.set(CURLOPT_ERRORBUFFER, im.error_buffer);
    im.set(CURLOPT_NOSIGNAL, 1L);  // not the main thread: no SIGALRM for timeouts
#if LIBCURL_VERSION_NUM >= 0x075500
    im.set(CURLOPT_PROTOCOLS_STR, "http,https");
    im.set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    im.set(CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    im.set(CURLOPT_REDIR_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (!opt.user_agent.empty()) {
        im.set(CURLOPT_USERAGENT, opt.user_agent.c_str());
    }
    if (!opt.ca_file.empty()) {
        im.set(CURLOPT_CAINFO, opt.ca_file.c_str());
    }
    im.set(CURLOPT_SSL_VERIFYPEER, opt.verify ? 1L : 0L);
    im.set(CURLOPT_SSL_VERIFYHOST, opt.verify ? 2L : 0L);
    im.set(CURLOPT_CONNECTTIMEOUT_MS, opt.connect_timeout_ms);
    im.set(CURLOPT_TIMEOUT_MS, opt.timeout_ms);

    if (request.method == "GET") {
        im.set(CURLOPT_HTTPGET, 1L);
    } else if (request.method == "HEAD") {
        im.set(CURLOPT_NOBODY, 1L);
    } else if (request.method == "POST") {
        im.set(CURLOPT_POST, 1L);
        im.set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
        im.set(CURLOPT_POSTFIELDS, request.body.data());
    } else {
        throw Error("unsupported HTTP method \"" + request.method + "\" for " + request.url);
    }

    for (const auto& [name, value] : request.headers) {
        append(im.request_headers, name + ": " + value);
    }
    if (request.method == "POST") {
        // JWS bodies are small; waiting for 100 Continue only adds a round trip.
        append(im.request_headers, "Expect:");
    }
    if (im.request_headers) {
        im.set(CURLOPT_HTTPHEADER, im.request_headers.get());
    }

    im.set(CURLOPT_WRITEFUNCTION, &on_body);
    im.set(CURLOPT_WRITEDATA, &response.body);
    im.set(CURLOPT_HEADERFUNCTION, &on_header);
    im.set(CURLOPT_HEADERDATA, &response.headers);

    if (!opt.resolvers.empty()) {
        try {
            im.pin_address(request.url);
        } catch (const Error& e) {
            throw Error(request.method + " " + request.url + " failed: " + e.what());
        }
    }

    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        std::string reason = im.error_buffer[0] != '\0' ? im.error_buffer : curl_easy_strerror(rc);
        if (rc == CURLE_WRITE_ERROR && response.body.size() + CURL_MAX_WRITE_SIZE > max_body_size) {
            reason = "response body larger than " + std::to_string(max_body_size) + " bytes";
        }
        throw Error(request.method + " " + request.url + " failed: " + std::string(trim(reason)));
    }

    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
    char* effective = nullptr;
    if (curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &effective) == CURLE_OK &&
        effective != nullptr) {
        response.effective_url = effective;
    } else {
        response.effective_url = request.url;
    }
    char* location = nullptr;
    if (curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &location) == CURLE_OK && location != nullptr) {
        *redirect = location;
    }
    return response;
}

std::vector<std::string> resolve_host(const std::string& host,
                                      const std::vector<std::string>& servers) {
    std::string via;
    for (const std::string& s : servers) {
        via += (via.empty() ? "" : ", ") + s;
    }
    auto fail = [&](const std::string& why) -> Error {
        return Error("cannot resolve \"" + host + "\" via " +
                     (via.empty() ? "(no resolver)" : via) + ": " + why);
    };

    std::vector<struct sockaddr_in> addrs;
    for (const std::string& s : servers) {
        std::string ip = s;
        unsigned long port = 53;
        size_t colon = s.find(':');
        if (colon != std::string::npos && s.find(':', colon + 1) == std::string::npos) {
            ip = s.substr(0, colon);
            std::string p = s.substr(colon + 1);
            char* end = nullptr;
            port = p.empty() ? 0 : std::strtoul(p.c_str(), &end, 10);
            if (port == 0 || port > 65535 || *end != '\0') {
                throw fail("invalid resolver port in \"" + s + "\"");
            }
        }
        struct sockaddr_in sa;
        std::memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons(static_cast<uint16_t>(port));
        if (inet_pton(AF_INET, ip.c_str(), &sa.sin_addr) != 1) {
            continue;  // IPv6 resolvers: the res_state API only takes IPv4 here
        }
        if (addrs.size() < MAXNS) {
            addrs.push_back(sa);
        }
    }
    if (addrs.empty()) {
        throw fail("no usable IPv4 resolver address");
    }

    // A private resolver state: thread-safe, and our name servers replace the
    // ones from /etc/resolv.conf for this lookup only.
    struct __res_state state;
    std::memset(&state, 0, sizeof(state));
    if (res_ninit(&state) != 0) {
        throw fail("res_ninit failed");
    }
    std::unique_ptr<struct __res_state, ResStateCloser> closer(&state);
    state.nscount = static_cast<int>(addrs.size());
    for (size_t i = 0; i < addrs.size(); ++i) {
        state.nsaddr_list[i] = addrs[i];
    }
    state.retrans = 2;  // seconds per try; the helper thread should not stall long
    state.retry = 2;

    unsigned char answer[4096];
    int len = res_nquery(&state, host.c_str(), ns_c_in, ns_t_a, answer, sizeof(answer));
    if (len < 0) {
        switch (state.res_h_errno) {
            case HOST_NOT_FOUND:
                throw fail("host not found");
            case NO_DATA:
                throw fail("no A record");
            case TRY_AGAIN:
                throw fail("no answer (timed out or server failure)");
            default:
                throw fail("DNS query failed");
        }
    }
    // res_nquery reports the full length even when the answer was truncated.
    len = std::min(len, static_cast<int>(sizeof(answer)));

    ns_msg msg;
    if (ns_initparse(answer, len, &msg) != 0) {
        throw fail("malformed DNS answer");
    }
    std::vector<std::string> result;
    int count = ns_msg_count(msg, ns_s_an);
    for (int i = 0; i < count; ++i) {
        ns_rr rr;
        if (ns_parserr(&msg, ns_s_an, i, &rr) != 0) {
            break;
        }
        // CNAME records of a chain come first; the A records follow them.
        if (ns_rr_type(rr) != ns_t_a || ns_rr_class(rr) != ns_c_in || ns_rr_rdlen(rr) != 4) {
            continue;
        }
        char text[INET_ADDRSTRLEN];
        if (inet_ntop(AF_INET, ns_rr_rdata(rr), text, sizeof(text)) != nullptr) {
            result.emplace_back(text);
        }
    }
    if (result.empty()) {
        throw fail("no A record");
    }
    return result;
}

}  // namespace acme
