// Unit tests for acme::Json (src/acme/json.cpp).
#include <gtest/gtest.h>

#include "acme/error.h"
#include "acme/json.h"

namespace acme {
namespace {

TEST(Json, DefaultIsNull) {
    Json j;
    EXPECT_TRUE(j.is_null());
    EXPECT_FALSE(j.is_object());
    EXPECT_EQ(j.dump(), "null");
    EXPECT_TRUE(j.get("x").is_null());
    EXPECT_TRUE(j.items().empty());
    EXPECT_TRUE(j.keys().empty());
}

TEST(Json, ParseObjectAndAccessors) {
    Json j = Json::parse(R"({"s":"v","i":42,"b":true,"n":null,"a":[1,"two"],"o":{"x":-7}})");
    ASSERT_TRUE(j.is_object());
    EXPECT_EQ(j.get_string("s"), "v");
    EXPECT_EQ(j.get_int("i"), 42);
    EXPECT_EQ(j.get_bool("b"), true);
    EXPECT_TRUE(j.get("n").is_null());
    EXPECT_TRUE(j.get("missing").is_null());
    EXPECT_EQ(j.get_string("missing"), std::nullopt);
    // Type mismatches are "absent", not errors.
    EXPECT_EQ(j.get_string("i"), std::nullopt);
    EXPECT_EQ(j.get_int("s"), std::nullopt);
    EXPECT_EQ(j.get_bool("i"), std::nullopt);
    EXPECT_EQ(j.get("o").get_int("x"), -7);

    auto items = j.get("a").items();
    ASSERT_EQ(items.size(), 2u);
    EXPECT_EQ(items[0].as_int(), 1);
    EXPECT_EQ(items[1].as_string(), "two");
    EXPECT_TRUE(j.get("s").items().empty());

    EXPECT_EQ(j.keys(), (std::vector<std::string>{"a", "b", "i", "n", "o", "s"}));
}

TEST(Json, ParseScalarsAtTopLevel) {
    EXPECT_EQ(Json::parse("\"x\"").as_string(), "x");
    EXPECT_EQ(Json::parse("12").as_int(), 12);
    EXPECT_TRUE(Json::parse("null").is_null());
}

TEST(Json, ParseErrorNamesLineAndColumn) {
    try {
        Json::parse("{\n  \"a\": 1,\n  oops\n}");
        FAIL() << "no exception";
    } catch (const Error& e) {
        std::string what = e.what();
        EXPECT_EQ(what.rfind("invalid JSON at line 3 column ", 0), 0u) << what;
    }
    EXPECT_THROW(Json::parse(""), Error);
    EXPECT_THROW(Json::parse("{\"a\":1} trailing"), Error);
}

TEST(Json, AsThrowsOnTypeMismatch) {
    EXPECT_THROW(Json::integer(1).as_string(), Error);
    EXPECT_THROW(Json::string("1").as_int(), Error);
    EXPECT_THROW(Json().as_string(), Error);
    EXPECT_THROW(Json::parse("1.5").as_int(), Error);
}

TEST(Json, BuildAndDumpKeepsInsertionOrder) {
    Json j = Json::object();
    j.set("protected", "p").set("payload", "").set("signature", "s");
    j.set("n", std::int64_t{5}).set("small", 3).set("flag", false);
    EXPECT_EQ(j.dump(),
              R"({"protected":"p","payload":"","signature":"s","n":5,"small":3,"flag":false})");
}

TEST(Json, DumpPrettySortsAndIndents) {
    Json j = Json::object();
    j.set("b", 1).set("a", Json::array().push(Json::string("x")));
    EXPECT_EQ(j.dump_pretty(), "{\n  \"a\": [\n    \"x\"\n  ],\n  \"b\": 1\n}");
}

TEST(Json, StringsEscapeAndRoundTrip) {
    std::string tricky = "quote\" backslash\\ nl\n tab\t unicode \xc3\xa9 ctl\x01";
    Json j = Json::object().set("k", tricky);
    Json back = Json::parse(j.dump());
    EXPECT_EQ(back.get_string("k"), tricky);
    EXPECT_EQ(Json::string("a/b").dump(), "\"a/b\"");  // no escaped slashes in URLs
}

TEST(Json, InvalidUtf8Throws) {
    EXPECT_THROW(Json::string("\xff\xfe"), Error);
    EXPECT_THROW(Json::object().set("k", std::string_view("\xc3")), Error);
}

TEST(Json, CopiesShareMovesLeaveNull) {
    Json a = Json::object();
    Json b = a;  // shares the underlying value, like json_incref()
    b.set("x", 1);
    EXPECT_EQ(a.get_int("x"), 1);

    Json c = std::move(a);
    EXPECT_EQ(c.get_int("x"), 1);
    EXPECT_TRUE(a.is_null());  // NOLINT(bugprone-use-after-move): defined state

    Json d;
    d = c;
    d = d;  // self-assignment must not free the value
    EXPECT_EQ(d.get_int("x"), 1);
    d = std::move(c);
    EXPECT_EQ(d.get_int("x"), 1);
}

TEST(Json, NestedValuesOutliveTheirParent) {
    Json inner;
    {
        Json outer = Json::parse(R"({"inner":{"v":"kept"}})");
        inner = outer.get("inner");
    }
    EXPECT_EQ(inner.get_string("v"), "kept");
}

TEST(Json, SetOnNonObjectAndPushOnNonArrayThrow) {
    EXPECT_THROW(Json::array().set("k", 1), Error);
    EXPECT_THROW(Json().set("k", "v"), Error);
    EXPECT_THROW(Json::object().push(Json::integer(1)), Error);
}

TEST(Json, ArrayPush) {
    Json a = Json::array();
    a.push(Json::integer(1)).push(Json::boolean(true)).push(Json::object().set("k", "v"));
    EXPECT_EQ(a.dump(), R"([1,true,{"k":"v"}])");
    EXPECT_TRUE(a.is_array());
}

TEST(Json, ReplacingAMemberKeepsOrderOfOthers) {
    Json j = Json::object().set("a", 1).set("b", 2);
    j.set("a", 3);
    EXPECT_EQ(j.get_int("a"), 3);
    EXPECT_EQ(j.keys().size(), 2u);
}

}  // namespace
}  // namespace acme
