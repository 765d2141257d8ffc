// A small value wrapper around jansson. Copies share the underlying json_t
// (reference counted), like jansson itself.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

struct json_t;

namespace acme {

class Json {
public:
    Json();  // JSON null
    ~Json();
    Json(const Json& other);
    Json& operator=(const Json& other);
    Json(Json&& other) noexcept;
    Json& operator=(Json&& other) noexcept;

    static Json parse(std::string_view text);  // throws acme::Error with jansson's message
    static Json object();
    static Json array();
    static Json string(std::string_view s);
    static Json integer(std::int64_t v);
    static Json boolean(bool v);

    bool is_null() const;
    bool is_object() const;
    bool is_array() const;
    bool is_string() const;

    // Object access: get() yields JSON null when the member is absent.
    Json get(std::string_view key) const;
    std::optional<std::string> get_string(std::string_view key) const;
    std::optional<std::int64_t> get_int(std::string_view key) const;
    std::optional<bool> get_bool(std::string_view key) const;
    std::vector<std::string> keys() const;  // object member names, sorted

    // Scalar access; throws acme::Error on type mismatch.
    std::string as_string() const;
    std::int64_t as_int() const;

    // Array access; items() is empty for anything but an array.
    std::vector<Json> items() const;

    Json& set(std::string_view key, const Json& value);  // objects only
    Json& set(std::string_view key, std::string_view value);
    Json& set(std::string_view key, const char* value) { return set(key, std::string_view(value)); }
    Json& set(std::string_view key, std::int64_t value);
    Json& set(std::string_view key, bool value);
    // Other integer types (int, size_t, ...) would be ambiguous between the
    // std::int64_t and bool overloads.
    template <typename T,
              typename = std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>>
    Json& set(std::string_view key, T value) {
        return set(key, static_cast<std::int64_t>(value));
    }
    Json& push(const Json& value);  // arrays only

    // Compact text; keys in insertion order; no trailing newline.
    std::string dump() const;
    // Indented text with sorted keys, for files people read (store, status).
    std::string dump_pretty() const;

private:
    explicit Json(json_t* owned) : j_(owned) {}
    json_t* j_;
};

// A JSON string literal for text (RFC 8259 section 7), quotes included:
// for JSON written by hand (JWS, the status page).
std::string json_quote(std::string_view text);

}  // namespace acme
