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
