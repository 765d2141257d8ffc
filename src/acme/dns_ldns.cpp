// dns_update (RFC 2136 dynamic updates signed with TSIG, RFC 8945) and the
// TXT lookups of the propagation wait, through ldns: no DNS wire format is
// written here.
#include "dns.h"

#include <ldns/ldns.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>

#include "error.h"
#include "text.h"

namespace acme {

namespace {

struct ResolverFree {
    void operator()(ldns_resolver* r) const { ldns_resolver_deep_free(r); }
};
struct PktFree {
    void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};
struct RdfFree {
    void operator()(ldns_rdf* r) const { ldns_rdf_deep_free(r); }
};
struct RrListFree {
    void operator()(ldns_rr_list* l) const { ldns_rr_list_deep_free(l); }
};
struct CharFree {
    void operator()(char* s) const { free(s); }
};
using Resolver = std::unique_ptr<ldns_resolver, ResolverFree>;
using Pkt = std::unique_ptr<ldns_pkt, PktFree>;
using Rdf = std::unique_ptr<ldns_rdf, RdfFree>;
using RrList = std::unique_ptr<ldns_rr_list, RrListFree>;

std::string absolute(const std::string& name) {
    return !name.empty() && name.back() == '.' ? name : name + ".";
}

Rdf dname(const std::string& name) {
    Rdf r(ldns_dname_new_frm_str(absolute(name).c_str()));
    if (!r) throw Error("invalid DNS name " + quoted(name));
    return r;
}

std::string to_text(const ldns_rdf* rdf) {
    std::unique_ptr<char, CharFree> s(ldns_rdf2str(rdf));
    return s ? std::string(s.get()) : std::string();
}

std::string rcode_name(ldns_pkt_rcode rcode) {
    ldns_lookup_table* lt = ldns_lookup_by_id(ldns_rcodes, int(rcode));
    return lt ? lt->name : "rcode " + std::to_string(int(rcode));
}

// A resolver that asks the one server (by address; a host name is looked up
// with the system's resolver first).
Resolver resolver_for(const DnsServer& server, bool recursive) {
    Resolver r(ldns_resolver_new());
    if (!r) throw Error("out of memory");
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(server.host.c_str(), "53", &hints, &res);
    if (rc != 0) {
        throw Error("cannot resolve DNS server " + quoted(server.host) + ": " + gai_strerror(rc));
    }
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        char host[NI_MAXHOST];
        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof host, nullptr, 0,
                        NI_NUMERICHOST) != 0) {
            continue;
        }
        Rdf addr(ldns_rdf_new_frm_str(
            ai->ai_family == AF_INET6 ? LDNS_RDF_TYPE_AAAA : LDNS_RDF_TYPE_A, host));
        if (addr) ldns_resolver_push_nameserver(r.get(), addr.get());
        break;  // one address: the answers must come from this server
    }
    freeaddrinfo(res);
    if (ldns_resolver_nameserver_count(r.get()) == 0) {
        throw Error("no address for DNS server " + quoted(server.host));
    }
    ldns_resolver_set_port(r.get(), uint16_t(server.port));
    ldns_resolver_set_recursive(r.get(), recursive);
    ldns_resolver_set_timeout(r.get(), timeval{3, 0});
    ldns_resolver_set_retry(r.get(), 2);
    ldns_resolver_set_dnssec(r.get(), false);
    return r;
}

// The TXT strings of `name` in an answer, each record's strings joined.
std::vector<std::string> txt_values(const ldns_pkt* pkt, const ldns_rdf* name) {
    std::vector<std::string> values;
    ldns_rr_list* answer = ldns_pkt_answer(pkt);
    for (size_t i = 0; answer && i < ldns_rr_list_rr_count(answer); i++) {
        ldns_rr* rr = ldns_rr_list_rr(answer, i);
        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_TXT ||
            ldns_dname_compare(ldns_rr_owner(rr), name) != 0) {
            continue;
        }
        std::string value;
        for (size_t k = 0; k < ldns_rr_rd_count(rr); k++) {
            const ldns_rdf* s = ldns_rr_rdf(rr, k);
            const uint8_t* data = ldns_rdf_data(s);
            size_t size = ldns_rdf_size(s);
            if (size > 0) value.append(reinterpret_cast<const char*>(data) + 1, size - 1);
        }
        values.push_back(std::move(value));
    }
    return values;
}

// The zone `name` is in: the owner of the SOA in the answer (the name is a
// zone apex) or in the authority section (a name inside the zone).
std::string find_zone(const ldns_resolver* r, const std::string& name, const std::string& where) {
    Rdf n = dname(name);
    for (;;) {
        Pkt p(ldns_resolver_query(r, n.get(), LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN,
                                  ldns_resolver_recursive(r) ? LDNS_RD : 0));
        if (!p) throw Error("no answer from " + where + " to the SOA query for " + quoted(name));
        for (ldns_rr_list* section : {ldns_pkt_answer(p.get()), ldns_pkt_authority(p.get())}) {
            for (size_t i = 0; section && i < ldns_rr_list_rr_count(section); i++) {
                ldns_rr* rr = ldns_rr_list_rr(section, i);
                if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA) return to_text(ldns_rr_owner(rr));
            }
        }
        if (ldns_pkt_get_rcode(p.get()) != LDNS_RCODE_NOERROR &&
            ldns_pkt_get_rcode(p.get()) != LDNS_RCODE_NXDOMAIN) {
            throw Error(where + " answered the SOA query for " + quoted(name) + " with " +
                        rcode_name(ldns_pkt_get_rcode(p.get())));
        }
        if (ldns_dname_label_count(n.get()) <= 1) break;
        n.reset(ldns_dname_left_chop(n.get()));
        if (!n) break;
    }
    throw Error(where + " knows no zone for " + quoted(name) + " (no SOA record)");
}

// One TXT record, built field by field (the value may hold any character);
// a value longer than a TXT string (255 bytes, a long dns-persist-01
// account URL) is split into several, which resolvers and CAs join.
ldns_rr* txt_rr(const std::string& name, const std::string& value, ldns_rr_class cls,
                uint32_t ttl) {
    if (value.size() > 4000) throw Error("TXT value longer than 4000 bytes");
    Rdf owner = dname(name);
    ldns_rr* rr = ldns_rr_new();
    if (!rr) throw Error("out of memory");
    ldns_rr_set_owner(rr, owner.release());
    ldns_rr_set_type(rr, LDNS_RR_TYPE_TXT);
    ldns_rr_set_class(rr, cls);
    ldns_rr_set_ttl(rr, ttl);
    for (size_t at = 0; at == 0 || at < value.size(); at += 255) {
        std::string part = value.substr(at, 255);
        std::string wire(1, char(static_cast<unsigned char>(part.size())));
        wire += part;
        ldns_rr_push_rdf(rr, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, wire.size(), wire.data()));
    }
    return rr;
}

class DnsUpdate : public DnsPublisher {
public:
    explicit DnsUpdate(const DnsConfig& config) : config_(config) {
        auto server = parse_dns_server(config.update_server);
        if (!server) throw Error("invalid dns_update server " + quoted(config.update_server));
        server_ = *server;
    }

    void add_txt(const std::string& domain, const std::string& name,
                 const std::string& value) override {
        add_txts({{domain, name, value}});
    }

    void remove_txt(const std::string& domain, const std::string& name, const std::string& value,
                    std::string& error) noexcept override {
        remove_txts({{domain, name, value}}, error);
    }

    // One update message per zone (RFC 2136 applies each atomically); when
    // a later zone's fails, the earlier zones' records are removed again.
    void add_txts(const std::vector<TxtRecord>& records) override {
        std::vector<ZoneRecords> zones = by_zone(records);
        for (std::size_t i = 0; i < zones.size(); i++) {
            try {
                // RFC 2136 section 2.5.1: add to an RRset.
                send(zones[i], LDNS_RR_CLASS_IN, 60, "adding");
            } catch (...) {
                for (std::size_t k = 0; k < i; k++) {
                    try {
                        send(zones[k], LDNS_RR_CLASS_NONE, 0, "removing");
                    } catch (const std::exception&) {
                    }
                }
                throw;
            }
        }
    }

    void remove_txts(const std::vector<TxtRecord>& records, std::string& error) noexcept override {
        try {
            for (const ZoneRecords& zone : by_zone(records)) {
                try {
                    // Section 2.5.4: delete an RR from an RRset (class NONE, TTL 0).
                    send(zone, LDNS_RR_CLASS_NONE, 0, "removing");
                } catch (const std::exception& e) {
                    error += (error.empty() ? "" : "; ") + std::string(e.what());
                }
            }
        } catch (const std::exception& e) {
            error += (error.empty() ? "" : "; ") + std::string(e.what());
        }
    }

private:
    // The zone of each record (dns_update's zone=, else from the SOA); the
    // records grouped by zone, in their order. Throws when a zone cannot be
    // found.
    struct ZoneRecords {
        std::string zone;
        std::vector<TxtRecord> records;
    };
    std::vector<ZoneRecords> by_zone(const std::vector<TxtRecord>& records) {
        std::vector<ZoneRecords> zones;
        for (const TxtRecord& record : records) {
            std::string zone = zone_of(record.name);
            auto it = std::find_if(zones.begin(), zones.end(),
                                   [&](const ZoneRecords& z) { return z.zone == zone; });
            if (it == zones.end()) it = zones.insert(zones.end(), {zone, {}});
            it->records.push_back(record);
        }
        return zones;
    }

    std::string zone_of(const std::string& name) {
        if (!config_.zone.empty()) return absolute(config_.zone);
        Resolver r = resolver_for(server_, false);
        return find_zone(r.get(), name, "DNS server " + server_.label());
    }

    // All records of one zone in one update message.
    void send(const ZoneRecords& zone_records, ldns_rr_class cls, uint32_t ttl, const char* what) {
        const std::string& zone = zone_records.zone;
        RrList updates(ldns_rr_list_new());
        if (!updates) throw Error("out of memory");
        std::string names;
        for (const TxtRecord& record : zone_records.records) {
            ldns_rr_list_push_rr(updates.get(), txt_rr(record.name, record.value, cls, ttl));
            std::string name = quoted(absolute(record.name));
            if (names.find(name) == std::string::npos) {
                names += (names.empty() ? "" : ", ") + name;
            }
        }
        Resolver r = resolver_for(server_, false);
        std::string context = std::string(what) + " TXT " + names + " in zone " + quoted(zone) +
                              " at " + server_.label();
        Pkt update(ldns_update_pkt_new(dname(zone).release(), LDNS_RR_CLASS_IN, nullptr,
                                       updates.get(), nullptr));
        if (!update) throw Error(context + " failed: cannot make the update message");
        if (!config_.key.name.empty()) {
            ldns_resolver_set_tsig_keyname(r.get(), config_.key.name.c_str());
            ldns_resolver_set_tsig_algorithm(r.get(), config_.key.algorithm.c_str());
            ldns_resolver_set_tsig_keydata(r.get(), config_.key.secret.c_str());
            ldns_status s = ldns_update_pkt_tsig_add(update.get(), r.get());
            if (s != LDNS_STATUS_OK) {
                throw Error(context + " failed: cannot sign with key " + quoted(config_.key.name) +
                            ": " + ldns_get_errorstr_by_id(s));
            }
        }
        ldns_pkt* raw = nullptr;
        ldns_status s = ldns_resolver_send_pkt(&raw, r.get(), update.get());
        Pkt answer(raw);
        ldns_pkt_rcode rcode = answer ? ldns_pkt_get_rcode(answer.get()) : LDNS_RCODE_SERVFAIL;
        std::string key_hint =
            config_.key.name.empty()
                ? " (no key= is set: does the zone allow unsigned updates?)"
                : " (is key " + quoted(config_.key.name) + " the zone's, with the right secret?)";
        if (answer && rcode != LDNS_RCODE_NOERROR) {
            bool refused = rcode == LDNS_RCODE_NOTAUTH || rcode == LDNS_RCODE_REFUSED;
            throw Error(context + " failed: the server answered " + rcode_name(rcode) +
                        (refused ? key_hint : ""));
        }
        if (s != LDNS_STATUS_OK) {
            bool tsig = s == LDNS_STATUS_CRYPTO_TSIG_BOGUS || s == LDNS_STATUS_CRYPTO_TSIG_ERR;
            throw Error(context + " failed: " + ldns_get_errorstr_by_id(s) +
                        (tsig ? key_hint : ""));
        }
        if (!answer) throw Error(context + " failed: no answer");
    }

    DnsConfig config_;
    DnsServer server_;
};

// The addresses of the zone's name servers, from the system's resolver.
std::vector<DnsServer> authoritative_servers(const std::string& name) {
    ldns_resolver* raw = nullptr;
    if (ldns_resolver_new_frm_file(&raw, nullptr) != LDNS_STATUS_OK || !raw) return {};
    Resolver sys(raw);
    ldns_resolver_set_timeout(sys.get(), timeval{3, 0});
    ldns_resolver_set_retry(sys.get(), 1);
    std::string zone;
    try {
        zone = find_zone(sys.get(), name, "the system's resolver");
    } catch (const Error&) {
        return {};
    }
    Rdf z = dname(zone);
    Pkt p(ldns_resolver_query(sys.get(), z.get(), LDNS_RR_TYPE_NS, LDNS_RR_CLASS_IN, LDNS_RD));
    std::vector<DnsServer> servers;
    ldns_rr_list* answer = p ? ldns_pkt_answer(p.get()) : nullptr;
    for (size_t i = 0; answer && i < ldns_rr_list_rr_count(answer); i++) {
        ldns_rr* rr = ldns_rr_list_rr(answer, i);
        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_NS || ldns_rr_rd_count(rr) < 1) continue;
        std::string ns = to_text(ldns_rr_rdf(rr, 0));
        if (!ns.empty() && ns.back() == '.') ns.pop_back();
        servers.push_back(DnsServer{ns, 53});
    }
    return servers;
}

class Lookup : public DnsLookup {
public:
    explicit Lookup(const DnsConfig& config) : config_(config) {}

    std::vector<Answer> check_txt(const std::string& name,
                                  const std::vector<std::string>& wanted) override {
        std::vector<DnsServer> servers;
        bool recursive = !config_.resolvers.empty();
        for (const std::string& text : config_.resolvers) {
            if (auto s = parse_dns_server(text)) servers.push_back(*s);
        }
        if (servers.empty()) servers = authoritative_servers(name);
        if (servers.empty() && !config_.update_server.empty()) {
            if (auto s = parse_dns_server(config_.update_server)) servers.push_back(*s);
        }
        if (servers.empty()) {
            throw Error("cannot find the authoritative servers of " + quoted(name) +
                        " (set dns_resolver, or dns_propagation_check off)");
        }
        std::vector<Answer> answers;
        Rdf n = dname(name);
        for (const DnsServer& server : servers) {
            Answer a;
            a.server = server.label();
            try {
                Resolver r = resolver_for(server, recursive);
                Pkt p(ldns_resolver_query(r.get(), n.get(), LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN,
                                          recursive ? LDNS_RD : 0));
                if (!p) {
                    a.detail = "no answer";
                } else {
                    std::vector<std::string> values = txt_values(p.get(), n.get());
                    a.has_value = std::any_of(values.begin(), values.end(), [&](const auto& v) {
                        return std::find(wanted.begin(), wanted.end(), v) != wanted.end();
                    });
                    if (!a.has_value) {
                        a.detail =
                            values.empty()
                                ? rcode_name(ldns_pkt_get_rcode(p.get())) + ", no TXT record"
                                : std::to_string(values.size()) + " TXT record(s), not this one";
                    }
                }
            } catch (const Error& e) {
                a.detail = e.what();
            }
            answers.push_back(std::move(a));
        }
        return answers;
    }

private:
    DnsConfig config_;
};

}  // namespace

std::unique_ptr<DnsPublisher> make_dns_update(const DnsConfig& config) {
    return std::make_unique<DnsUpdate>(config);
}

std::unique_ptr<DnsLookup> make_dns_lookup(const DnsConfig& config) {
    return std::make_unique<Lookup>(config);
}

}  // namespace acme
