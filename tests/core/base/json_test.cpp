#include <gtest/gtest.h>

#include <vector>

#include "prpc/json.hpp"

namespace prpc::json {
namespace {

void scan(std::string_view text, Status* status) {
  *status = scan_object(text, {}, [](const Member&) { return Status::ok(); });
}

TEST(Json, ScanReturnsExactValueText) {
  std::string text =
      R"( { "a" : [1, 2.50 ,{"x":null}] ,"b":"h\u00e9\n", "c":  -1e3 , "d":true,"e":{} } )";
  std::vector<std::string> raws;
  std::vector<Type> types;
  std::string b_text;
  Status s = scan_object(text, {}, [&](const Member& m) {
    raws.emplace_back(m.raw);
    types.push_back(m.type);
    if (m.key == "b") b_text = m.text;
    return Status::ok();
  });
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  ASSERT_EQ(raws.size(), 5u);
  EXPECT_EQ(raws[0], R"([1, 2.50 ,{"x":null}])");
  EXPECT_EQ(raws[1], R"("h\u00e9\n")");
  EXPECT_EQ(b_text, "h\xc3\xa9\n");
  EXPECT_EQ(raws[2], "-1e3");
  EXPECT_EQ(raws[3], "true");
  EXPECT_EQ(raws[4], "{}");
  EXPECT_EQ(types, (std::vector<Type>{Type::kArray, Type::kString, Type::kNumber, Type::kBool,
                                      Type::kObject}));
}

TEST(Json, ScanArrayReturnsEachElementsExactText) {
  std::string text = R"( [ 1 ,"t\u00e9", [2, [3]] ,{"id": "a"},null, -0.5e1 ] )";
  std::vector<std::string> raws;
  std::vector<Type> types;
  Status s = scan_array(text, {}, [&](const Member& m) {
    EXPECT_TRUE(m.key.empty());
    raws.emplace_back(m.raw);
    types.push_back(m.type);
    return Status::ok();
  });
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(raws, (std::vector<std::string>{"1", R"("t\u00e9")", "[2, [3]]", R"({"id": "a"})",
                                            "null", "-0.5e1"}));
  EXPECT_EQ(types, (std::vector<Type>{Type::kNumber, Type::kString, Type::kArray, Type::kObject,
                                      Type::kNull, Type::kNumber}));
  int calls = 0;
  EXPECT_TRUE(scan_array("[]", {}, [&](const Member&) {
                ++calls;
                return Status::ok();
              }).is_ok());
  EXPECT_EQ(calls, 0);
  Status not_array = scan_array(R"({"a": 1})", {}, [](const Member&) { return Status::ok(); });
  EXPECT_EQ(not_array.message(), "expected a JSON array, got object");
}

// The helpers for one member of an object (Message::extensions).
TEST(Json, GetMemberReturnsTheValuesTextOrNothing) {
  std::string ext = R"({"server": "host-42", "time_queued": 0.0012, "nested": {"a": [1, 2]}})";
  EXPECT_EQ(get_member(ext, "server"), R"("host-42")");
  EXPECT_EQ(get_member(ext, "time_queued"), "0.0012");
  EXPECT_EQ(get_member(ext, "nested"), R"({"a": [1, 2]})");
  EXPECT_EQ(get_member(ext, "a"), std::nullopt);  // only top-level members
  EXPECT_EQ(get_member(ext, "absent"), std::nullopt);
  EXPECT_EQ(get_member("", "server"), std::nullopt);
  EXPECT_EQ(get_member("  ", "server"), std::nullopt);
  EXPECT_EQ(get_member("[1]", "server"), std::nullopt);
  EXPECT_EQ(get_member(R"({"server": )", "server"), std::nullopt);
  EXPECT_EQ(get_member(R"({"k": 1, "k": 2})", "k"), "2");  // the last, as Python keeps it
  EXPECT_EQ(get_string_member(ext, "server"), "host-42");
  EXPECT_EQ(get_string_member(R"({"s": "caf\u00e9 \"x\""})", "s"), "caf\xc3\xa9 \"x\"");
  EXPECT_EQ(get_string_member(ext, "time_queued"), std::nullopt);  // not a string
  EXPECT_EQ(get_string_member(R"({"k": "a", "k": 2})", "k"), std::nullopt);
}

TEST(Json, SetMemberReplacesInPlaceOrAppends) {
  auto set = [](std::string_view text, std::string_view key, std::string_view raw) {
    auto r = set_member(text, key, raw);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : std::string("<error>");
  };
  EXPECT_EQ(set("", "server", R"("host-42")"), R"({"server": "host-42"})");
  EXPECT_EQ(set("{}", "n", " 1.50 "), R"({"n": 1.50})");  // the value keeps its spelling
  EXPECT_EQ(set(R"({"a":1,"b" : [1,2] ,"c":3})", "b", R"({"x": null})"),
            R"({"a": 1, "b": {"x": null}, "c": 3})");
  EXPECT_EQ(set(R"({"a": 1})", "quote\"d", "true"), R"({"a": 1, "quote\"d": true})");
  EXPECT_EQ(set(R"({"k": 1, "j": 0, "k": 2})", "k", "3"), R"({"k": 3, "j": 0})");
  EXPECT_EQ(set(R"({"k": 1, "j": 0, "k": 2})", "i", "3"), R"({"k": 2, "j": 0, "i": 3})");
  std::string built;
  built = set(built, "tracestate", R"("k=v")");
  built = set(built, "time_executing", "0.0004");
  EXPECT_EQ(get_string_member(built, "tracestate"), "k=v");
  EXPECT_EQ(get_member(built, "time_executing"), "0.0004");

  auto bad_value = set_member("{}", "k", "{oops");
  ASSERT_FALSE(bad_value.is_ok());
  EXPECT_EQ(bad_value.status().code(), StatusCode::kDecode);
  EXPECT_EQ(bad_value.status().message().rfind("the value of 'k': invalid JSON at offset 1", 0), 0u)
      << bad_value.status().message();
  EXPECT_FALSE(set_member("{}", "k", "").is_ok());
  EXPECT_FALSE(set_member("{}", "k", "1 2").is_ok());
  EXPECT_FALSE(set_member("[1]", "k", "1").is_ok());
  EXPECT_FALSE(set_member(R"({"a": )", "k", "1").is_ok());
}

TEST(Json, ObjectMembersReadLikeAPythonDict) {
  auto m = object_members(R"({"b": 1, "a": [2], "b": 3})");
  ASSERT_TRUE(m.is_ok());
  ASSERT_EQ(m->size(), 2u);
  EXPECT_EQ((*m)[0].first, "b");
  EXPECT_EQ((*m)[0].second, "3");
  EXPECT_EQ((*m)[1].first, "a");
  EXPECT_EQ((*m)[1].second, "[2]");
  EXPECT_TRUE(object_members("")->empty());
  EXPECT_FALSE(object_members("[]").is_ok());
}

TEST(Json, EraseMemberLeavesEmptyTextWhenNothingIsLeft) {
  EXPECT_EQ(*erase_member(R"({"a": 1, "b": 2, "a": 3})", "a"), R"({"b": 2})");
  EXPECT_EQ(*erase_member(R"({"b": 2})", "b"), "");
  EXPECT_EQ(*erase_member(R"({"b": 2})", "absent"), R"({"b": 2})");
  EXPECT_EQ(*erase_member("", "b"), "");
  EXPECT_FALSE(erase_member("nonsense", "b").is_ok());
}

TEST(Json, ScanRefusesNonObjects) {
  Status s;
  scan("[1, 2]", &s);
  EXPECT_EQ(s.message(), "expected a JSON object, got array");
  scan("\"text\"", &s);
  EXPECT_EQ(s.message(), "expected a JSON object, got string");
  scan("42", &s);
  EXPECT_EQ(s.message(), "expected a JSON object, got number");
}

TEST(Json, SyntaxErrorsNameTheOffset) {
  Status s;
  scan(R"({"a": 1,})", &s);
  EXPECT_EQ(s.code(), StatusCode::kDecode);
  EXPECT_EQ(s.message().rfind("invalid JSON at offset 8: ", 0), 0u) << s.message();
  scan(R"({"a": 1} trailing)", &s);
  EXPECT_EQ(s.message().rfind("invalid JSON at offset 9: ", 0), 0u) << s.message();
  scan(R"({"a": )", &s);
  EXPECT_FALSE(s.is_ok());
  scan("", &s);
  EXPECT_FALSE(s.is_ok());
  scan(std::string("{\"a\": \"x\0y\"}", 12), &s);
  EXPECT_EQ(s.message(), "invalid JSON at offset 8: NUL byte");
}

TEST(Json, InvalidUtf8IsRefused) {
  Status s = validate("\"\xc3\x28\"", {});
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("Invalid encoding"), std::string::npos) << s.message();
  EXPECT_TRUE(validate("\"\xe2\x98\x83\"", {}).is_ok());
}

TEST(Json, DepthAndSizeLimits) {
  Limits limits;
  limits.max_depth = 10;
  std::string deep(11, '[');
  deep += std::string(11, ']');
  Status s = validate(deep, limits);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("deeper than 10 levels"), std::string::npos) << s.message();
  EXPECT_TRUE(validate(std::string(10, '[') + std::string(10, ']'), limits).is_ok());

  // A million levels never touch the C stack: refused at the limit.
  std::string million(1'000'000, '[');
  EXPECT_EQ(validate(million, {}).code(), StatusCode::kResourceExhausted);

  limits.max_bytes = 16;
  s = validate(R"("0123456789abcdefghij")", limits);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("exceeds the limit of 16 bytes"), std::string::npos);
}

TEST(Json, PythonNanAndInfinityAreAccepted) {
  EXPECT_TRUE(validate("[NaN, Infinity, -Infinity]", {}).is_ok());
}

TEST(Json, QuoteEscapesControlsAndKeepsUtf8) {
  EXPECT_EQ(quote("a\"b\\c\n\t\x01/\xc3\xa9"), "\"a\\\"b\\\\c\\n\\t\\u0001/\xc3\xa9\"");
  EXPECT_TRUE(validate(quote(std::string("\x00\x1f", 2)), {}).is_ok());
}

TEST(Json, PeekType) {
  EXPECT_EQ(peek_type("  {"), Type::kObject);
  EXPECT_EQ(peek_type("[1]"), Type::kArray);
  EXPECT_EQ(peek_type("\"s\""), Type::kString);
  EXPECT_EQ(peek_type("-1"), Type::kNumber);
  EXPECT_EQ(peek_type("false"), Type::kBool);
  EXPECT_EQ(peek_type("null"), Type::kNull);
}

}  // namespace
}  // namespace prpc::json
