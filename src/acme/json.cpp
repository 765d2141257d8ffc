// acme::Json over jansson: a reference-counted handle, so copying a Json is
// cheap and shares the value, exactly as json_incref() would.
#include "json.h"

#include <jansson.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "error.h"

namespace acme {

namespace {

// jansson reports allocation failure and invalid UTF-8 alike by returning
// NULL; callers of the factories cannot tell which, so say both.
json_t* checked(json_t* value, const char* what) {
    if (value == nullptr) {
        throw Error(std::string("cannot create JSON ") + what +
                    " (invalid UTF-8 or out of memory)");
    }
    return value;
}

std::string dump_with(const json_t* value, size_t flags) {
    std::unique_ptr<char, decltype(&std::free)> text(json_dumps(value, flags | JSON_ENCODE_ANY),
                                                     &std::free);
    if (!text) {
        throw Error("cannot serialize JSON");
    }
    return std::string(text.get());
}

const char* type_name(const json_t* value) {
    switch (json_typeof(value)) {
        case JSON_OBJECT:
            return "an object";
        case JSON_ARRAY:
            return "an array";
        case JSON_STRING:
            return "a string";
        case JSON_INTEGER:
            return "an integer";
        case JSON_REAL:
            return "a real number";
        case JSON_TRUE:
        case JSON_FALSE:
            return "a boolean";
        case JSON_NULL:
            return "null";
    }
    return "unknown";
}

}  // namespace

Json::Json() : j_(json_null()) {}

Json::~Json() { json_decref(j_); }

Json::Json(const Json& other) : j_(json_incref(other.j_)) {}

Json& Json::operator=(const Json& other) {
    // Incref first so self-assignment cannot free the value.
    json_t* incoming = json_incref(other.j_);
    json_decref(j_);
    j_ = incoming;
    return *this;
}

// The moved-from object keeps a valid (null) value so every member stays safe
// to call; json_null() is a static singleton and does not allocate.
Json::Json(Json&& other) noexcept : j_(other.j_) { other.j_ = json_null(); }

Json& Json::operator=(Json&& other) noexcept {
    if (this != &other) {
        json_decref(j_);
        j_ = other.j_;
        other.j_ = json_null();
    }
    return *this;
}

Json Json::parse(std::string_view text) {
    json_error_t err;
    json_t* value = json_loadb(text.data(), text.size(), JSON_DECODE_ANY, &err);
    if (value == nullptr) {
        throw Error("invalid JSON at line " + std::to_string(err.line) + " column " +
                    std::to_string(err.column) + ": " + err.text);
    }
    return Json(value);
}

Json Json::object() { return Json(checked(json_object(), "object")); }

Json Json::array() { return Json(checked(json_array(), "array")); }

Json Json::string(std::string_view s) {
    return Json(checked(json_stringn(s.data(), s.size()), "string"));
}

Json Json::integer(std::int64_t v) { return Json(checked(json_integer(v), "integer")); }

Json Json::boolean(bool v) { return Json(json_boolean(v)); }

bool Json::is_null() const { return json_is_null(j_); }
bool Json::is_object() const { return json_is_object(j_); }
bool Json::is_array() const { return json_is_array(j_); }
bool Json::is_string() const { return json_is_string(j_); }

Json Json::get(std::string_view key) const {
    json_t* member = json_is_object(j_) ? json_object_getn(j_, key.data(), key.size()) : nullptr;
    return member != nullptr ? Json(json_incref(member)) : Json();
}

std::optional<std::string> Json::get_string(std::string_view key) const {
    Json member = get(key);
    if (!member.is_string()) {
        return std::nullopt;
    }
    return member.as_string();
}

std::optional<std::int64_t> Json::get_int(std::string_view key) const {
    Json member = get(key);
    if (!json_is_integer(member.j_)) {
        return std::nullopt;
    }
    return member.as_int();
}

std::optional<bool> Json::get_bool(std::string_view key) const {
    Json member = get(key);
    if (!json_is_boolean(member.j_)) {
        return std::nullopt;
    }
    return json_is_true(member.j_);
}

std::vector<std::string> Json::keys() const {
    std::vector<std::string> names;
    if (!json_is_object(j_)) {
        return names;
    }
    // Iterate with explicit key lengths: object keys may contain NUL.
    for (void* it = json_object_iter(j_); it != nullptr; it = json_object_iter_next(j_, it)) {
        names.emplace_back(json_object_iter_key(it), json_object_iter_key_len(it));
    }
    std::sort(names.begin(), names.end());
    return names;
}

std::string Json::as_string() const {
    if (!json_is_string(j_)) {
        throw Error(std::string("JSON value is ") + type_name(j_) + ", not a string");
    }
    return std::string(json_string_value(j_), json_string_length(j_));
}

std::int64_t Json::as_int() const {
    if (!json_is_integer(j_)) {
        throw Error(std::string("JSON value is ") + type_name(j_) + ", not an integer");
    }
    return json_integer_value(j_);
}

std::vector<Json> Json::items() const {
    std::vector<Json> out;
    if (!json_is_array(j_)) {
        return out;
    }
    size_t n = json_array_size(j_);
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        out.push_back(Json(json_incref(json_array_get(j_, i))));
    }
    return out;
}

Json& Json::set(std::string_view key, const Json& value) {
    if (!json_is_object(j_)) {
        throw Error("cannot set member \"" + std::string(key) + "\" of JSON " + type_name(j_));
    }
    if (json_object_setn(j_, key.data(), key.size(), value.j_) != 0) {
        throw Error("cannot set JSON member \"" + std::string(key) + "\"");
    }
    return *this;
}

Json& Json::set(std::string_view key, std::string_view value) {
    return set(key, Json::string(value));
}

Json& Json::set(std::string_view key, std::int64_t value) { return set(key, Json::integer(value)); }

Json& Json::set(std::string_view key, bool value) { return set(key, Json::boolean(value)); }

Json& Json::push(const Json& value) {
    if (!json_is_array(j_)) {
        throw Error(std::string("cannot append to JSON ") + type_name(j_));
    }
    if (json_array_append(j_, value.j_) != 0) {
        throw Error("cannot append to JSON array");
    }
    return *this;
}

// jansson >= 2.8 always keeps insertion order; the flag documents intent.
std::string Json::dump() const { return dump_with(j_, JSON_COMPACT | JSON_PRESERVE_ORDER); }

std::string Json::dump_pretty() const { return dump_with(j_, JSON_INDENT(2) | JSON_SORT_KEYS); }

// A JSON string literal for text (RFC 8259 section 7).
std::string json_quote(std::string_view text) {
    std::string out = "\"";
    for (char c : text) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
                    out += buf;
                } else {
                    out += c;
                }
        }
    }
    out += '"';
    return out;
}

}  // namespace acme
