// Parsing of RFC 7807 problem documents and Retry-After values. Both are
// tolerant: an error response must always become something loggable.
#include "problem.h"

#include <cctype>
#include <cstdint>

#include "error.h"
#include "json.h"

namespace acme {

namespace {

constexpr std::string_view acme_error_prefix = "urn:ietf:params:acme:error:";
constexpr size_t max_detail_from_body = 200;

// A non-JSON body (an HTML error page from a proxy, say) goes into the log on
// one line, so control characters become spaces, and it is cut on a UTF-8
// character boundary.
std::string body_excerpt(std::string_view body) {
    size_t begin = 0;
    while (begin < body.size() && std::isspace(static_cast<unsigned char>(body[begin]))) {
        ++begin;
    }
    body.remove_prefix(begin);
    if (body.size() > max_detail_from_body) {
        size_t cut = max_detail_from_body;
        while (cut > 0 && (static_cast<unsigned char>(body[cut]) & 0xC0) == 0x80) {
            --cut;
        }
        body = body.substr(0, cut);
    }
    std::string out;
    out.reserve(body.size());
    for (char c : body) {
        unsigned char u = static_cast<unsigned char>(c);
        out.push_back(u < 0x20 || u == 0x7F ? ' ' : c);
    }
    while (!out.empty() && out.back() == ' ') {
        out.pop_back();
    }
    return out;
}

Problem from_json(const Json& doc, int http_status) {
    Problem p;
    p.type = doc.get_string("type").value_or("");
    p.detail = doc.get_string("detail").value_or("");
    p.status = static_cast<int>(doc.get_int("status").value_or(http_status));
    Json id = doc.get("identifier");
    if (id.is_object()) {
        auto id_type = id.get_string("type");
        auto id_value = id.get_string("value");
        if (id_type && id_value) {
            p.identifier = *id_type + ":" + *id_value;
        }
    }
    for (const Json& sub : doc.get("subproblems").items()) {
        if (sub.is_object()) {
            p.subproblems.push_back(from_json(sub, p.status));
        }
    }
    return p;
}

// HTTP-date parsing (RFC 9110 section 5.6.7) by hand: strptime() depends on
// the locale and the process may not run in the C locale.
class DateCursor {
public:
    explicit DateCursor(std::string_view s) : s_(s) {}

    bool done() const { return pos_ == s_.size(); }

    bool literal(std::string_view lit) {
        if (s_.substr(pos_, lit.size()) != lit) {
            return false;
        }
        pos_ += lit.size();
        return true;
    }

    // Exactly min..max digits.
    bool digits(size_t min, size_t max, int& out) {
        size_t n = 0;
        int v = 0;
        while (n < max && pos_ + n < s_.size() &&
               std::isdigit(static_cast<unsigned char>(s_[pos_ + n]))) {
            v = v * 10 + (s_[pos_ + n] - '0');
            ++n;
        }
        if (n < min) {
            return false;
        }
        pos_ += n;
        out = v;
        return true;
    }

    // One of names, compared case-insensitively; yields its index.
    template <size_t N>
    bool name(const std::string_view (&names)[N], int& index) {
        for (size_t i = 0; i < N; ++i) {
            std::string_view candidate = s_.substr(pos_, names[i].size());
            if (candidate.size() == names[i].size() && equal_nocase(candidate, names[i])) {
                pos_ += names[i].size();
                index = static_cast<int>(i);
                return true;
            }
        }
        return false;
    }

private:
    static bool equal_nocase(std::string_view a, std::string_view b) {
        for (size_t i = 0; i < a.size(); ++i) {
            if (std::tolower(static_cast<unsigned char>(a[i])) !=
                std::tolower(static_cast<unsigned char>(b[i]))) {
                return false;
            }
        }
        return true;
    }

    std::string_view s_;
    size_t pos_ = 0;
};

constexpr std::string_view short_days[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::string_view long_days[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                          "Friday", "Saturday", "Sunday"};
constexpr std::string_view months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

struct DateTime {
    int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
};

bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

bool valid(const DateTime& d) {
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (d.month < 1 || d.month > 12 || d.day < 1 || d.hour > 23 || d.minute > 59 || d.second > 60) {
        return false;
    }
    int last = month_days[d.month - 1] + (d.month == 2 && is_leap(d.year) ? 1 : 0);
    return d.day <= last;
}

// Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's
// days_from_civil); avoids timegm() and the process time zone entirely.
std::int64_t days_from_civil(std::int64_t y, std::int64_t m, std::int64_t d) {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const std::int64_t yoe = y - era * 400;
    const std::int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

std::int64_t to_epoch(const DateTime& d) {
    return days_from_civil(d.year, d.month, d.day) * 86400 + d.hour * 3600 + d.minute * 60 +
           d.second;
}

bool time_of_day(DateCursor& c, DateTime& d) {
    return c.digits(2, 2, d.hour) && c.literal(":") && c.digits(2, 2, d.minute) && c.literal(":") &&
           c.digits(2, 2, d.second);
}

// Sun, 06 Nov 1994 08:49:37 GMT
bool parse_imf_fixdate(std::string_view s, DateTime& d) {
    d = DateTime{};
    DateCursor c(s);
    int ignored;
    if (!(c.name(short_days, ignored) && c.literal(", ") && c.digits(1, 2, d.day) &&
          c.literal(" ") && c.name(months, d.month) && c.literal(" ") && c.digits(4, 4, d.year) &&
          c.literal(" ") && time_of_day(c, d) && c.literal(" GMT") && c.done())) {
        return false;
    }
    d.month += 1;
    return true;
}

// Sunday, 06-Nov-94 08:49:37 GMT
bool parse_rfc850(std::string_view s, std::time_t now, DateTime& d) {
    d = DateTime{};
    DateCursor c(s);
    int ignored;
    if (!(c.name(long_days, ignored) && c.literal(", ") && c.digits(2, 2, d.day) &&
          c.literal("-") && c.name(months, d.month) && c.literal("-") && c.digits(2, 2, d.year) &&
          c.literal(" ") && time_of_day(c, d) && c.literal(" GMT") && c.done())) {
        return false;
    }
    d.month += 1;
    // RFC 9110: a two-digit year more than 50 years in the future means the
    // most recent past year with those digits.
    int this_year = static_cast<int>(1970 + now / 31556952);  // good enough for a century
    int year = this_year / 100 * 100 + d.year;
    if (year > this_year + 50) {
        year -= 100;
    }
    d.year = year;
    return true;
}

// Sun Nov  6 08:49:37 1994
bool parse_asctime(std::string_view s, DateTime& d) {
    d = DateTime{};
    DateCursor c(s);
    int ignored;
    if (!(c.name(short_days, ignored) && c.literal(" ") && c.name(months, d.month) &&
          c.literal(" "))) {
        return false;
    }
    c.literal(" ");  // a one-digit day is space-padded
    if (!(c.digits(1, 2, d.day) && c.literal(" ") && time_of_day(c, d) && c.literal(" ") &&
          c.digits(4, 4, d.year) && c.done())) {
        return false;
    }
    d.month += 1;
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) {
        s.remove_prefix(1);
    }
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
        s.remove_suffix(1);
    }
    return s;
}

}  // namespace

Problem Problem::parse(std::string_view body, int http_status) {
    try {
        Json doc = Json::parse(body);
        if (doc.is_object() && (doc.get("type").is_string() || doc.get("detail").is_string())) {
            return from_json(doc, http_status);
        }
    } catch (const Error&) {
        // Not JSON: fall through to the excerpt.
    }
    Problem p;
    p.detail = body_excerpt(body);
    p.status = http_status;
    return p;
}

std::string Problem::short_type() const {
    std::string_view t = type;
    if (t.substr(0, acme_error_prefix.size()) == acme_error_prefix) {
        return std::string(t.substr(acme_error_prefix.size()));
    }
    return type;
}

std::string Problem::describe() const {
    // Without a type the status is the most useful label ("HTTP 502: <html>...").
    std::string out = type.empty() ? "HTTP " + std::to_string(status) : type;
    if (!detail.empty()) {
        out += ": " + detail;
    }
    for (const Problem& sub : subproblems) {
        out += "; ";
        out += sub.identifier.empty() ? sub.short_type() : sub.identifier;
        const std::string& what = sub.detail.empty() ? sub.short_type() : sub.detail;
        if (!what.empty()) {
            out += ": " + what;
        }
    }
    return out;
}

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value, std::time_t now) {
    value = trim(value);
    if (value.empty()) {
        return std::nullopt;
    }

    bool all_digits = true;
    for (char c : value) {
        all_digits = all_digits && std::isdigit(static_cast<unsigned char>(c));
    }
    if (all_digits) {
        // Anything past ten years is nonsense; refuse rather than overflow.
        constexpr std::int64_t limit = 10LL * 366 * 86400;
        std::int64_t v = 0;
        for (char c : value) {
            v = v * 10 + (c - '0');
            if (v > limit) {
                return std::nullopt;
            }
        }
        return std::chrono::seconds(v);
    }

    DateTime d;
    if (!(parse_imf_fixdate(value, d) || parse_rfc850(value, now, d) || parse_asctime(value, d)) ||
        !valid(d)) {
        return std::nullopt;
    }
    std::int64_t delta = to_epoch(d) - static_cast<std::int64_t>(now);
    return std::chrono::seconds(delta > 0 ? delta : 0);
}

}  // namespace acme
