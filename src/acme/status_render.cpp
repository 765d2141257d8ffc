// JSON and Prometheus renderings of the status. Times are Unix seconds
// everywhere (null in JSON when unknown), as Prometheus wants them.
#include "status_render.h"

#include "json.h"

namespace acme {

namespace {

std::string number(long long v) { return std::to_string(v); }

// A time, or null when unknown.
std::string json_time(std::time_t t) { return t == 0 ? "null" : number(t); }

// Buffers small pieces into chunks of about 16 KiB.
class Chunker {
public:
    explicit Chunker(const StatusOutput& out) : out_(out) {}
    ~Chunker() { flush(); }
    Chunker& operator<<(std::string_view s) {
        buf_.append(s.data(), s.size());
        if (buf_.size() >= 16384) flush();
        return *this;
    }
    void flush() {
        if (buf_.empty()) return;
        out_(buf_);
        buf_.clear();
    }

private:
    const StatusOutput& out_;
    std::string buf_;
};

void json_certificate(Chunker& o, const CertificateView& c, std::time_t now) {
    o << "{\"id\": " << json_quote(c.id) << ", \"names\": [";
    for (std::size_t i = 0; i < c.names.size(); i++) {
        o << (i ? ", " : "") << json_quote(c.names[i]);
    }
    o << "], \"issuer\": " << json_quote(c.issuer) << ", \"keys\": [";
    const CertificateStatus* s = c.status ? &*c.status : nullptr;
    if (s && s->has_cert) {
        o << "{\"type\": " << json_quote(c.key_type) << ", \"serial\": " << json_quote(s->serial)
          << ", \"sha256\": " << json_quote(s->sha256)
          << ", \"not_before\": " << json_time(s->not_before)
          << ", \"not_after\": " << json_time(s->not_after) << "}";
    }
    o << "], \"key_type\": " << json_quote(c.key_type)
      << ", \"state\": " << json_quote(certificate_state(c, now));
    if (s == nullptr) {
        o << ", \"renew_at\": null, \"renew_reason\": null, \"ari\": null, \"last_attempt\": null"
             ", \"next_attempt\": null, \"attempts\": 0, \"error\": null, \"renew_requested\": "
             "null}";
        return;
    }
    o << ", \"renew_at\": " << json_time(s->renew_at)
      << ", \"renew_reason\": " << json_quote(s->renew_reason) << ", \"ari\": ";
    if (s->has_ari) {
        o << "{\"start\": " << json_time(s->ari_start) << ", \"end\": " << json_time(s->ari_end)
          << ", \"explanation_url\": "
          << (s->ari_explanation_url.empty() ? "null" : json_quote(s->ari_explanation_url)) << "}";
    } else {
        o << "null";
    }
    o << ", \"last_attempt\": " << json_time(s->last_attempt)
      << ", \"next_attempt\": " << json_time(s->next_attempt)
      << ", \"attempts\": " << number(s->attempts) << ", \"error\": ";
    if (s->has_error) {
        o << "{\"type\": " << (s->error_type.empty() ? "null" : json_quote(s->error_type))
          << ", \"detail\": " << json_quote(s->error_detail)
          << ", \"at\": " << json_time(s->error_at) << ", \"status\": null, \"subproblems\": []}";
    } else {
        o << "null";
    }
    o << ", \"renew_requested\": " << json_time(s->renew_requested) << "}";
}

std::string label_value(std::string_view s) {
    std::string out;
    for (char ch : s) {
        if (ch == '\\' || ch == '"') {
            out += '\\';
            out += ch;
        } else if (ch == '\n') {
            out += "\\n";
        } else {
            out += ch;
        }
    }
    return out;
}

std::string cert_labels(const CertificateView& c, bool serial) {
    std::string l = "certificate=\"" + label_value(c.id) + "\",name=\"" +
                    label_value(c.names.empty() ? "" : c.names.front()) + "\",issuer=\"" +
                    label_value(c.issuer) + "\",key=\"" + label_value(c.key_type) + "\"";
    if (serial) {
        l += ",serial=\"" + label_value(c.status ? c.status->serial : "") + "\"";
    }
    return l;
}

void family(Chunker& o, const char* name, const char* type, const char* help) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
}

// One gauge per certificate; `value` returns false to leave a certificate out.
template <typename F>
void gauge(Chunker& o, const std::vector<CertificateView>& certs, const char* name,
           const char* help, bool serial, F value) {
    family(o, name, "gauge", help);
    for (const CertificateView& c : certs) {
        long long v = 0;
        if (!value(c, v)) continue;
        o << name << "{" << cert_labels(c, serial) << "} " << number(v) << "\n";
    }
}

bool has_cert(const CertificateView& c) { return c.status && c.status->has_cert; }

}  // namespace

std::string certificate_state(const CertificateView& c, std::time_t now) {
    if (!c.status) return "pending";
    const CertificateStatus& s = *c.status;
    if (s.renewing) return "renewing";
    if (s.has_cert && s.not_after <= now) return "expired";
    if (s.attempts > 0) return "failed";
    if (!s.has_cert) return "pending";
    return "valid";
}

void render_status_json(std::string_view version, std::time_t now,
                        const std::vector<CertificateView>& certificates,
                        const std::vector<IssuerView>& issuers, const StatusOutput& out) {
    Chunker o(out);
    o << "{\"version\": " << json_quote(version) << ", \"generated\": " << number(now)
      << ", \"certificates\": [";
    for (std::size_t i = 0; i < certificates.size(); i++) {
        o << (i ? ",\n  " : "\n  ");
        json_certificate(o, certificates[i], now);
    }
    o << "\n], \"issuers\": [";
    for (std::size_t i = 0; i < issuers.size(); i++) {
        const IssuerView& is = issuers[i];
        const IssuerStatus* s = is.status ? &*is.status : nullptr;
        std::string state = s && !s->state.empty() ? s->state : "unknown";
        o << (i ? ",\n  " : "\n  ") << "{\"name\": " << json_quote(is.name)
          << ", \"directory\": " << json_quote(is.directory)
          << ", \"account\": " << (s && !s->account.empty() ? json_quote(s->account) : "null")
          << ", \"state\": " << json_quote(state)
          << ", \"error\": " << (s && !s->error.empty() ? json_quote(s->error) : "null")
          << ", \"retry_after\": " << json_time(s && s->retry_after > now ? s->retry_after : 0)
          << ", \"orders\": {\"issued\": " << number(s ? s->orders_issued : 0)
          << ", \"failed\": " << number(s ? s->orders_failed : 0) << "}";
        o << ", \"dns_persist\": [";
        for (std::size_t r = 0; s && r < s->dns_persist.size(); r++) {
            const DnsRecord& d = s->dns_persist[r];
            o << (r ? ", " : "") << "{\"name\": " << json_quote(d.name)
              << ", \"type\": " << json_quote(d.type) << ", \"value\": " << json_quote(d.value)
              << "}";
        }
        o << "]";
        if (s && !s->storage.empty()) {
            o << ", \"storage\": {\"type\": " << json_quote(s->storage)
              << ", \"state\": " << json_quote(s->storage_state) << "}";
        }
        o << "}";
    }
    o << "\n]}\n";
}

void render_status_prometheus(std::time_t now, const std::vector<CertificateView>& certs,
                              const std::vector<IssuerView>& issuers, const StatusOutput& out) {
    Chunker o(out);
    gauge(o, certs, "nginx_acme_certificate_not_after_timestamp_seconds",
          "End of the served certificate's validity.", true,
          [](const CertificateView& c, long long& v) {
              if (!has_cert(c)) return false;
              v = c.status->not_after;
              return true;
          });
    gauge(o, certs, "nginx_acme_certificate_not_before_timestamp_seconds",
          "Start of the served certificate's validity.", true,
          [](const CertificateView& c, long long& v) {
              if (!has_cert(c)) return false;
              v = c.status->not_before;
              return true;
          });
    gauge(o, certs, "nginx_acme_certificate_renewal_timestamp_seconds",
          "When the certificate is renewed next (or ordered, when missing or failing).", false,
          [](const CertificateView& c, long long& v) {
              if (!c.status || c.status->renew_at == 0) return false;
              v = c.status->renew_at;
              return true;
          });
    gauge(o, certs, "nginx_acme_certificate_ready",
          "1 when a CA-issued, unexpired certificate is served.", false,
          [now](const CertificateView& c, long long& v) {
              v = has_cert(c) && c.status->not_after > now ? 1 : 0;
              return true;
          });
    gauge(o, certs, "nginx_acme_certificate_attempts",
          "Failed order attempts in a row (0 once an order succeeds).", false,
          [](const CertificateView& c, long long& v) {
              v = c.status ? c.status->attempts : 0;
              return true;
          });
    family(o, "nginx_acme_orders_total", "counter", "Orders finished, by result.");
    for (const IssuerView& is : issuers) {
        std::string l = "issuer=\"" + label_value(is.name) + "\",result=";
        o << "nginx_acme_orders_total{" << l << "\"issued\"} "
          << number(is.status ? is.status->orders_issued : 0) << "\n";
        o << "nginx_acme_orders_total{" << l << "\"failed\"} "
          << number(is.status ? is.status->orders_failed : 0) << "\n";
    }
    family(o, "nginx_acme_challenges_answered_total", "counter",
           "Authorizations validated through a challenge, by type.");
    static const char* types[] = {"http-01", "tls-alpn-01", "other"};
    for (const IssuerView& is : issuers) {
        for (int t = 0; t < static_cast<int>(ChallengeCounter::count); t++) {
            o << "nginx_acme_challenges_answered_total{issuer=\"" << label_value(is.name)
              << "\",type=\"" << types[t] << "\"} "
              << number(is.status ? static_cast<long long>(is.status->challenges[t]) : 0) << "\n";
        }
    }
}

}  // namespace acme
