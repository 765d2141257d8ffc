// Unit tests for src/acme/http.cpp: HttpResponse helpers, CurlHttpClient
// against a tiny in-process HTTP/1.1 server, and resolve_host against a tiny
// in-process DNS responder.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>

#include "acme/error.h"
#include "acme/http.h"

namespace acme {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

std::string lower(std::string s) {
    for (char& c : s) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return s;
}

// Binds a socket of the given type to addr:0 and returns it.
int bound_socket(int type, const char* addr, int& port) {
    int fd = socket(AF_INET, type, 0);
    if (fd < 0) {
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = 0;
    inet_pton(AF_INET, addr, &sa.sin_addr);
    socklen_t len = sizeof(sa);
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
        close(fd);
        return -1;
    }
    port = ntohs(sa.sin_port);
    return fd;
}

struct Recorded {
    std::string method;
    std::string target;
    Headers headers;  // names lower-cased
    std::string body;

    std::string header(const std::string& name) const {
        for (const auto& [k, v] : headers) {
            if (k == name) {
                return v;
            }
        }
        return "";
    }
    bool has_header(const std::string& name) const {
        return std::any_of(headers.begin(), headers.end(),
                           [&](const auto& h) { return h.first == name; });
    }
};

struct Reply {
    int status = 200;
    Headers headers;
    std::string body;
    bool hang = false;  // never answer: for timeouts
};

// A blocking, single-threaded HTTP/1.1 server with keep-alive, enough for
// libcurl. poll() over all connections so a client opening a second
// connection cannot deadlock it.
class TestServer {
public:
    using Handler = std::function<Reply(const Recorded&)>;

    explicit TestServer(Handler handler, const char* addr = "127.0.0.1")
        : handler_(std::move(handler)), addr_(addr) {
        listen_fd_ = bound_socket(SOCK_STREAM, addr, port_);
        if (listen_fd_ < 0 || listen(listen_fd_, 16) != 0) {
            throw std::runtime_error("test server cannot listen");
        }
        thread_ = std::thread([this] { run(); });
    }

    ~TestServer() {
        stop_ = true;
        thread_.join();
        for (auto& c : conns_) {
            close(c.fd);
        }
        close(listen_fd_);
    }

    int port() const { return port_; }
    std::string url(const std::string& path) const {
        return "http://" + addr_ + ":" + std::to_string(port_) + path;
    }
    std::vector<Recorded> requests() {
        std::lock_guard<std::mutex> lock(mu_);
        return requests_;
    }
    int connections() const { return accepted_; }

private:
    struct Conn {
        int fd;
        std::string in;
    };

    void run() {
        while (!stop_) {
            std::vector<pollfd> fds;
            fds.push_back({listen_fd_, POLLIN, 0});
            for (auto& c : conns_) {
                fds.push_back({c.fd, POLLIN, 0});
            }
            if (poll(fds.data(), fds.size(), 20) <= 0) {
                continue;
            }
            if (fds[0].revents & POLLIN) {
                int fd = accept(listen_fd_, nullptr, nullptr);
                if (fd >= 0) {
                    conns_.push_back({fd, ""});
                    ++accepted_;
                }
            }
            std::vector<int> dead;
            for (size_t i = 1; i < fds.size(); ++i) {
                if (fds[i].revents == 0) {
                    continue;
                }
                Conn& c = conns_[i - 1];
                char buf[4096];
                ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
                if (n <= 0) {
                    dead.push_back(c.fd);
                    continue;
                }
                c.in.append(buf, static_cast<size_t>(n));
                serve(c);
            }
            for (int fd : dead) {
                close(fd);
                conns_.erase(std::remove_if(conns_.begin(), conns_.end(),
                                            [fd](const Conn& c) { return c.fd == fd; }),
                             conns_.end());
            }
        }
    }

    void serve(Conn& c) {
        for (;;) {
            size_t end = c.in.find("\r\n\r\n");
            if (end == std::string::npos) {
                return;
            }
            Recorded r;
            std::string head = c.in.substr(0, end);
            size_t line_end = head.find("\r\n");
            std::string request_line = head.substr(0, line_end);
            size_t sp1 = request_line.find(' ');
            size_t sp2 = request_line.find(' ', sp1 + 1);
            r.method = request_line.substr(0, sp1);
            r.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
            size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
            size_t content_length = 0;
            while (pos < head.size()) {
                size_t eol = head.find("\r\n", pos);
                if (eol == std::string::npos) {
                    eol = head.size();
                }
                std::string line = head.substr(pos, eol - pos);
                size_t colon = line.find(':');
                std::string name = lower(line.substr(0, colon));
                std::string value = line.substr(colon + 1);
                value.erase(0, value.find_first_not_of(' '));
                r.headers.emplace_back(name, value);
                if (name == "content-length") {
                    content_length = std::stoul(value);
                }
                pos = eol + 2;
            }
            if (c.in.size() < end + 4 + content_length) {
                return;  // body still arriving
            }
            r.body = c.in.substr(end + 4, content_length);
            c.in.erase(0, end + 4 + content_length);
            {
                std::lock_guard<std::mutex> lock(mu_);
                requests_.push_back(r);
            }
            Reply reply = handler_(r);
            if (reply.hang) {
                continue;
            }
            std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " Whatever\r\n";
            for (const auto& [k, v] : reply.headers) {
                out += k + ": " + v + "\r\n";
            }
            out += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n\r\n";
            if (r.method != "HEAD") {
                out += reply.body;
            }
            for (size_t sent = 0; sent < out.size();) {
                ssize_t n = ::send(c.fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
                if (n <= 0) {
                    return;
                }
                sent += static_cast<size_t>(n);
            }
        }
    }

    Handler handler_;
    std::string addr_;
    int listen_fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> accepted_{0};
    std::vector<Conn> conns_;
    std::mutex mu_;
    std::vector<Recorded> requests_;
    std::thread thread_;
};

HttpOptions test_options() {
    HttpOptions o;
    o.user_agent = "ngx_http_acme_module-test/1.0";
    o.connect_timeout_ms = 2000;
    o.timeout_ms = 5000;
    return o;
}

HttpRequest get(const std::string& url) {
    HttpRequest r;
    r.url = url;
    return r;
}

// --- HttpResponse helpers -------------------------------------------------

TEST(HttpResponse, HeaderLookupIsCaseInsensitive) {
    HttpResponse r;
    r.headers = {{"replay-nonce", "n1"}, {"link", "a"}, {"link", "b"}};
    EXPECT_EQ(r.header("Replay-Nonce"), "n1");
    EXPECT_EQ(r.header("replay-nonce"), "n1");
    EXPECT_EQ(r.header("location"), "");
    EXPECT_EQ(r.headers_named("LINK"), (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(r.headers_named("x").empty());
}

TEST(HttpResponse, LinksParsing) {
    HttpResponse r;
    r.effective_url = "https://ca.example/acme/cert/1";
    r.headers = {
        {"link", "<https://ca.example/dir>;rel=\"index\""},
        {"link",
         "<https://ca.example/alt/1>; rel=\"alternate\", <https://ca.example/alt/2>;rel=alternate"},
        {"link", "<https://ca.example/x>; title=\"a, b; c\"; rel=\"up alternate\""},
        {"link", "<https://ca.example/y>; rel=\"other\"; rel=\"alternate\""},  // first rel wins
        {"link", "garbage, <https://ca.example/alt/3> ; REL = Alternate"},
        {"link", "</acme/alt/4>;rel=\"alternate\""},  // relative to the effective URL
    };
    EXPECT_EQ(r.links("index"), (std::vector<std::string>{"https://ca.example/dir"}));
    EXPECT_EQ(r.links("up"), (std::vector<std::string>{"https://ca.example/x"}));
    EXPECT_EQ(r.links("alternate"),
              (std::vector<std::string>{"https://ca.example/alt/1", "https://ca.example/alt/2",
                                        "https://ca.example/x", "https://ca.example/alt/3",
                                        "https://ca.example/acme/alt/4"}));
    EXPECT_TRUE(r.links("next").empty());
}

// --- CurlHttpClient -------------------------------------------------------

TEST(CurlHttpClient, GetCollectsStatusBodyAndHeaders) {
    TestServer server([](const Recorded&) {
        Reply r;
        r.status = 201;
        r.headers = {{"Replay-Nonce", "  abc123  "},
                     {"Content-Type", "application/json"},
                     {"X-Multi", "1"},
                     {"X-Multi", "2"}};
        r.body = R"({"ok":true})";
        return r;
    });
    CurlHttpClient client(test_options());
    HttpResponse resp = client.send(get(server.url("/dir")));
    EXPECT_EQ(resp.status, 201);
    EXPECT_EQ(resp.body, R"({"ok":true})");
    EXPECT_EQ(resp.header("Replay-Nonce"), "abc123");
    EXPECT_EQ(resp.header("content-type"), "application/json");
    EXPECT_EQ(resp.headers_named("x-multi"), (std::vector<std::string>{"1", "2"}));
    EXPECT_EQ(resp.effective_url, server.url("/dir"));
    for (const auto& [name, value] : resp.headers) {
        EXPECT_EQ(name, lower(name));
        EXPECT_TRUE(value.empty() || (value.front() != ' ' && value.back() != ' '));
        EXPECT_TRUE(value.find('\r') == std::string::npos);
    }

    auto reqs = server.requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].method, "GET");
    EXPECT_EQ(reqs[0].target, "/dir");
    EXPECT_EQ(reqs[0].header("user-agent"), "ngx_http_acme_module-test/1.0");
}

TEST(CurlHttpClient, ErrorStatusIsReturnedNotThrown) {
    TestServer server([](const Recorded&) {
        Reply r;
        r.status = 400;
        r.headers = {{"Content-Type", "application/problem+json"}};
        r.body = R"({"type":"urn:ietf:params:acme:error:badNonce"})";
        return r;
    });
    CurlHttpClient client(test_options());
    HttpResponse resp = client.send(get(server.url("/x")));
    EXPECT_EQ(resp.status, 400);
    EXPECT_EQ(resp.body, R"({"type":"urn:ietf:params:acme:error:badNonce"})");
}

TEST(CurlHttpClient, LinkHeadersFromServer) {
    TestServer server([](const Recorded&) {
        Reply r;
        r.headers = {
            {"Link", "<http://ca/dir>;rel=\"index\""},
            {"Link", "<http://ca/alt1>;rel=\"alternate\", <http://ca/alt2>; rel=alternate"},
            {"Link", "<http://ca/up>; rel=\"up\""}};
        return r;
    });
    CurlHttpClient client(test_options());
    HttpResponse resp = client.send(get(server.url("/cert")));
    EXPECT_EQ(resp.headers_named("link").size(), 3u);
    EXPECT_EQ(resp.links("alternate"),
              (std::vector<std::string>{"http://ca/alt1", "http://ca/alt2"}));
    EXPECT_EQ(resp.links("up"), (std::vector<std::string>{"http://ca/up"}));
    EXPECT_EQ(resp.links("index"), (std::vector<std::string>{"http://ca/dir"}));
}

TEST(CurlHttpClient, PostSendsBodyAndHeaders) {
    TestServer server([](const Recorded& req) {
        Reply r;
        r.body = "echo:" + req.body;
        return r;
    });
    CurlHttpClient client(test_options());
    HttpRequest req;
    req.method = "POST";
    req.url = server.url("/new-acct");
    req.headers = {{"Content-Type", "application/jose+json"}};
    req.body = R"({"protected":"p","payload":"","signature":"s"})";
    HttpResponse resp = client.send(req);
    EXPECT_EQ(resp.status, 200);
    EXPECT_EQ(resp.body, "echo:" + req.body);

    auto reqs = server.requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].method, "POST");
    EXPECT_EQ(reqs[0].body, req.body);
    EXPECT_EQ(reqs[0].header("content-type"), "application/jose+json");
    EXPECT_EQ(reqs[0].header("user-agent"), "ngx_http_acme_module-test/1.0");
    EXPECT_FALSE(reqs[0].has_header("expect"));
}

TEST(CurlHttpClient, PostWithEmptyBody) {
    TestServer server([](const Recorded&) { return Reply{}; });
    CurlHttpClient client(test_options());
    HttpRequest req;
    req.method = "POST";
    req.url = server.url("/empty");
    EXPECT_EQ(client.send(req).status, 200);
    auto reqs = server.requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].method, "POST");
    EXPECT_EQ(reqs[0].header("content-length"), "0");
}

TEST(CurlHttpClient, HeadAfterPostOnTheSameHandle) {
    TestServer server([](const Recorded& req) {
        Reply r;
        r.headers = {{"Replay-Nonce", "nonce-" + req.method}};
        r.body = "this body must not be read for HEAD";
        return r;
    });
    CurlHttpClient client(test_options());
    HttpRequest post;
    post.method = "POST";
    post.url = server.url("/a");
    post.body = "x";
    client.send(post);

    HttpRequest head;
    head.method = "HEAD";
    head.url = server.url("/new-nonce");
    HttpResponse resp = client.send(head);
    EXPECT_EQ(resp.status, 200);
    EXPECT_TRUE(resp.body.empty());
    EXPECT_EQ(resp.header("replay-nonce"), "nonce-HEAD");

    HttpResponse again = client.send(get(server.url("/b")));
    EXPECT_EQ(again.header("replay-nonce"), "nonce-GET");

    auto reqs = server.requests();
    ASSERT_EQ(reqs.size(), 3u);
    EXPECT_EQ(reqs[1].method, "HEAD");
    EXPECT_EQ(reqs[2].method, "GET");
    EXPECT_TRUE(reqs[2].body.empty());
    // One easy handle per client: the connection is reused.
    EXPECT_EQ(server.connections(), 1);
}

TEST(CurlHttpClient, RedirectsFollowedOnlyWhenAsked) {
    TestServer server([](const Recorded& req) {
        Reply r;
        if (req.target == "/old") {
            r.status = 301;
            r.headers = {{"Location", "/new"}, {"X-Hop", "first"}};
            r.body = "moved";
        } else {
            r.headers = {{"X-Final", "yes"}};
            r.body = "new";
        }
        return r;
    });

    CurlHttpClient plain(test_options());
    HttpResponse r1 = plain.send(get(server.url("/old")));
    EXPECT_EQ(r1.status, 301);
    EXPECT_EQ(r1.header("location"), "/new");
    EXPECT_EQ(r1.body, "moved");
    EXPECT_EQ(r1.effective_url, server.url("/old"));

    HttpRequest followed = get(server.url("/old"));
    followed.follow_redirects = true;
    HttpResponse r2 = plain.send(followed);
    EXPECT_EQ(r2.status, 200);
    EXPECT_EQ(r2.body, "new");
    EXPECT_EQ(r2.effective_url, server.url("/new"));
    EXPECT_EQ(r2.header("x-final"), "yes");
    EXPECT_EQ(r2.header("x-hop"), "");  // headers of the redirect are not mixed in
    EXPECT_EQ(r2.header("location"), "");
}

// A redirect may point anywhere: from https it must stay https, and
// following ends after 10 hops.
TEST(CurlHttpClient, RedirectsNeverDowngradeAndEnd) {
    TestServer server([](const Recorded& req) {
        Reply r;
        if (req.target == "/to-http") {
            r.status = 302;
            r.headers = {{"Location", "http://127.0.0.1:1/dir"}};
        } else {
            r.status = 302;
            r.headers = {{"Location", "/loop"}};
        }
        return r;
    });
    CurlHttpClient client(test_options());
    HttpRequest r = get(server.url("/to-http"));
    r.follow_redirects = true;
    if (server.url("/").rfind("https:", 0) == 0) {
        try {
            client.send(r);
            FAIL() << "followed a redirect from https to http";
        } catch (const acme::Error& e) {
            EXPECT_NE(std::string(e.what()).find("which is not https"), std::string::npos)
                << e.what();
        }
    }
    HttpRequest loop = get(server.url("/loop"));
    loop.follow_redirects = true;
    try {
        client.send(loop);
        FAIL() << "a redirect loop did not end";
    } catch (const acme::Error& e) {
        EXPECT_NE(std::string(e.what()).find("more than 10 redirects"), std::string::npos)
            << e.what();
    }
}

TEST(CurlHttpClient, ConnectionRefusedThrowsNamingTheUrl) {
    int port = 0;
    int fd = bound_socket(SOCK_STREAM, "127.0.0.1", port);
    ASSERT_GE(fd, 0);
    close(fd);  // nothing listens on port now
    std::string url = "http://127.0.0.1:" + std::to_string(port) + "/dir";

    CurlHttpClient client(test_options());
    try {
        client.send(get(url));
        FAIL() << "no exception";
    } catch (const Error& e) {
        std::string what = e.what();
        EXPECT_EQ(what.rfind("GET " + url + " failed: ", 0), 0u) << what;
        EXPECT_GT(what.size(), ("GET " + url + " failed: ").size()) << what;
    }
}

TEST(CurlHttpClient, TimeoutThrows) {
    TestServer server([](const Recorded&) {
        Reply r;
        r.hang = true;
        return r;
    });
    HttpOptions o = test_options();
    o.timeout_ms = 300;
    CurlHttpClient client(o);
    auto start = std::chrono::steady_clock::now();
    try {
        client.send(get(server.url("/slow")));
        FAIL() << "no exception";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(server.url("/slow")), std::string::npos) << e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST(CurlHttpClient, UnsupportedMethodThrows) {
    CurlHttpClient client(test_options());
    HttpRequest req;
    req.method = "DELETE";
    req.url = "http://127.0.0.1:1/";
    EXPECT_THROW(client.send(req), Error);
}

// --- resolve_host ---------------------------------------------------------

// Answers A queries for "ca.test" with 127.0.0.7 and NXDOMAIN for anything
// else, over UDP on 127.0.0.1.
class DnsResponder {
public:
    DnsResponder() {
        fd_ = bound_socket(SOCK_DGRAM, "127.0.0.1", port_);
        if (fd_ < 0) {
            throw std::runtime_error("test DNS responder cannot bind");
        }
        thread_ = std::thread([this] { run(); });
    }
    ~DnsResponder() {
        stop_ = true;
        thread_.join();
        close(fd_);
    }
    std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
    int queries() const { return queries_; }

private:
    void run() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (poll(&p, 1, 20) <= 0) {
                continue;
            }
            unsigned char q[512];
            sockaddr_in from{};
            socklen_t from_len = sizeof(from);
            ssize_t n =
                recvfrom(fd_, q, sizeof(q), 0, reinterpret_cast<sockaddr*>(&from), &from_len);
            if (n < 12) {
                continue;
            }
            ++queries_;
            // Question: labels up to the root, then QTYPE and QCLASS.
            size_t pos = 12;
            std::string name;
            while (pos < static_cast<size_t>(n) && q[pos] != 0) {
                size_t len = q[pos];
                if (!name.empty()) {
                    name += '.';
                }
                name.append(reinterpret_cast<const char*>(q + pos + 1), len);
                pos += 1 + len;
            }
            size_t question_end = pos + 5;
            if (question_end > static_cast<size_t>(n)) {
                continue;
            }
            int qtype = q[pos + 1] << 8 | q[pos + 2];
            bool known = lower(name) == "ca.test";
            bool answer = known && qtype == 1;

            std::vector<unsigned char> r(q, q + question_end);
            r[2] = static_cast<unsigned char>(0x80 | (q[2] & 0x01));    // QR, echo RD
            r[3] = static_cast<unsigned char>(0x80 | (known ? 0 : 3));  // RA, NXDOMAIN
            r[4] = 0, r[5] = 1;                                         // QDCOUNT
            r[6] = 0, r[7] = answer ? 1 : 0;                            // ANCOUNT
            r[8] = r[9] = r[10] = r[11] = 0;                            // NSCOUNT, ARCOUNT
            if (answer) {
                const unsigned char rr[] = {0xC0, 0x0C, 0, 1, 0,   1, 0, 0,
                                            0,    60,   0, 4, 127, 0, 0, 7};
                r.insert(r.end(), rr, rr + sizeof(rr));
            }
            sendto(fd_, r.data(), r.size(), 0, reinterpret_cast<sockaddr*>(&from), from_len);
        }
    }

    int fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> queries_{0};
    std::thread thread_;
};

TEST(ResolveHost, AnswersFromTheGivenServer) {
    DnsResponder dns;
    EXPECT_EQ(resolve_host("ca.test", {dns.address()}), (std::vector<std::string>{"127.0.0.7"}));
}

TEST(ResolveHost, NxdomainThrowsNamingHostAndServer) {
    DnsResponder dns;
    try {
        resolve_host("nope.test", {dns.address()});
        FAIL() << "no exception";
    } catch (const Error& e) {
        std::string what = e.what();
        EXPECT_EQ(what.rfind("cannot resolve \"nope.test\" via " + dns.address() + ": ", 0), 0u)
            << what;
    }
}

TEST(ResolveHost, BadResolverAddressesThrow) {
    EXPECT_THROW(resolve_host("ca.test", {}), Error);
    EXPECT_THROW(resolve_host("ca.test", {"not-an-ip"}), Error);
    EXPECT_THROW(resolve_host("ca.test", {"127.0.0.1:99999"}), Error);
}

TEST(ResolveHost, CurlClientPinsTheResolvedAddress) {
    DnsResponder dns;
    // 127.0.0.7 is loopback too on Linux; only the DNS answer leads there.
    TestServer server(
        [](const Recorded&) {
            Reply r;
            r.body = "pinned";
            return r;
        },
        "127.0.0.7");
    HttpOptions o = test_options();
    o.resolvers = {dns.address()};
    CurlHttpClient client(o);
    std::string url = "http://ca.test:" + std::to_string(server.port()) + "/dir";
    HttpResponse resp = client.send(get(url));
    EXPECT_EQ(resp.status, 200);
    EXPECT_EQ(resp.body, "pinned");
    auto reqs = server.requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].header("host"), "ca.test:" + std::to_string(server.port()));

    // The answer is cached: a second request does not ask again.
    client.send(get(url));
    EXPECT_EQ(dns.queries(), 1);
}

TEST(ResolveHost, CurlClientReportsResolutionFailure) {
    DnsResponder dns;
    HttpOptions o = test_options();
    o.resolvers = {dns.address()};
    CurlHttpClient client(o);
    try {
        client.send(get("http://nope.test/dir"));
        FAIL() << "no exception";
    } catch (const Error& e) {
        std::string what = e.what();
        EXPECT_EQ(what.rfind("GET http://nope.test/dir failed: cannot resolve \"nope.test\" via " +
                                 dns.address(),
                             0),
                  0u)
            << what;
    }
}

}  // namespace
}  // namespace acme
