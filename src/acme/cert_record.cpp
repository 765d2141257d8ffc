// The formats of <basename>.json and <basename>.order.json (cert_record.h).
#include "cert_record.h"

#include <algorithm>

#include "error.h"
#include "json.h"

namespace acme {

namespace {

Json time_or_null(const std::optional<std::time_t>& t) {
    return t ? Json::integer(static_cast<std::int64_t>(*t)) : Json();
}

std::optional<std::time_t> get_time(const Json& j, std::string_view key) {
    if (auto v = j.get_int(key)) return static_cast<std::time_t>(*v);
    return std::nullopt;
}

}  // namespace

std::string format_cert_record(const CertRecord& r) {
    Json j = Json::object();
    Json names = Json::array();
    for (const std::string& name : r.names) names.push(Json::string(name));
    j.set("names", names);
    j.set("key_type", r.key_type);
    j.set("issuer", r.issuer);
    j.set("profile", r.profile.empty() ? Json() : Json::string(r.profile));
    j.set("not_before", time_or_null(r.not_before));
    j.set("not_after", time_or_null(r.not_after));
    j.set("serial", r.serial ? Json::string(*r.serial) : Json());
    j.set("renewal_at", time_or_null(r.renewal_at));
    if (r.ari_window) {
        Json ari = Json::object();
        ari.set("start", static_cast<std::int64_t>(r.ari_window->start));
        ari.set("end", static_cast<std::int64_t>(r.ari_window->end));
        j.set("ari_window", ari);
    } else {
        j.set("ari_window", Json());
    }
    j.set("next_attempt", time_or_null(r.next_attempt));
    j.set("retry_after_until", time_or_null(r.retry_after_until));
    j.set("failures", static_cast<std::int64_t>(r.failures));
    j.set("challenge_failures", r.challenge_failures.to_json());
    if (r.last_error) {
        Json e = Json::object();
        e.set("type", r.last_error->type.empty() ? Json() : Json::string(r.last_error->type));
        e.set("detail", r.last_error->detail);
        e.set("at", static_cast<std::int64_t>(r.last_error->at));
        j.set("last_error", e);
    } else {
        j.set("last_error", Json());
    }
    j.set("updated_at", static_cast<std::int64_t>(r.updated_at));
    return j.dump_pretty() + "\n";
}

CertRecord parse_cert_record(std::string_view text) {
    Json j = Json::parse(text);
    CertRecord r;
    for (const Json& name : j.get("names").items()) {
        if (name.is_string()) r.names.push_back(name.as_string());
    }
    r.key_type = j.get_string("key_type").value_or("");
    r.issuer = j.get_string("issuer").value_or("");
    r.profile = j.get_string("profile").value_or("");
    r.not_before = get_time(j, "not_before");
    r.not_after = get_time(j, "not_after");
    r.serial = j.get_string("serial");
    r.renewal_at = get_time(j, "renewal_at");
    Json ari = j.get("ari_window");
    if (ari.is_object()) {
        r.ari_window = Window{ari.get_int("start").value_or(0), ari.get_int("end").value_or(0)};
    }
    r.next_attempt = get_time(j, "next_attempt");
    r.retry_after_until = get_time(j, "retry_after_until");
    if (auto f = j.get_int("failures")) {
        r.failures = static_cast<int>(std::clamp<std::int64_t>(*f, 0, 1000));
    }
    r.challenge_failures.load(j.get("challenge_failures"));
    Json e = j.get("last_error");
    if (e.is_object()) {
        r.last_error = LastError{e.get_string("type").value_or(""),
                                 e.get_string("detail").value_or(""), e.get_int("at").value_or(0)};
    }
    r.updated_at = j.get_int("updated_at").value_or(0);
    return r;
}

std::string format_saved_order(const SavedOrder& o) {
    Json j = Json::object();
    j.set("url", o.url);
    if (o.key) j.set("key", o.key->to_pem());
    j.set("updated_at", static_cast<std::int64_t>(o.updated_at));
    return j.dump_pretty() + "\n";
}

SavedOrder parse_saved_order(std::string_view text) {
    Json j = Json::parse(text);
    SavedOrder o;
    o.url = j.get_string("url").value_or("");
    if (o.url.empty()) throw Error("no order URL");
    if (auto pem = j.get_string("key")) o.key = PrivateKey::from_pem(*pem);
    o.updated_at = j.get_int("updated_at").value_or(0);
    return o;
}

}  // namespace acme
