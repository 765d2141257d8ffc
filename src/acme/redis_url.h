// Where a Redis store is: acme_storage's URL and parameters, parsed once
// (nginx -t reports what is wrong) and handed to the engine as values.
#pragma once

#include <string>
#include <string_view>

namespace acme {

struct RedisTarget {
    std::string host;
    int port = 6379;
    int db = 0;
    std::string user;      // empty: AUTH with the password alone (or no AUTH)
    std::string password;  // from the URL or password_file=; never logged
    bool tls = false;      // rediss://
    std::string prefix = "acme";
    // encrypt_key_file=: 32 bytes that seal the private keys stored in
    // Redis (sealed_storage.h); empty: they are stored as in files.
    std::string sealing_key;

    // "redis://host:port/db prefix=..." without the credentials, for log lines.
    std::string describe() const;
};

// Whether rediss:// (TLS) can be used: not in this version (redis_url.cpp).
bool redis_tls_supported();

// redis://[user:password@]HOST:PORT[/DB] or rediss://...; throws Error with
// the reason. HOST may be a bracketed IPv6 address; user and password are
// percent-decoded.
RedisTarget parse_redis_url(std::string_view url);

// A prefix names keys and channels: no spaces, braces or glob characters.
bool valid_redis_prefix(std::string_view prefix);

}  // namespace acme
