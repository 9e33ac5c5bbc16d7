#include "prpc/jsonpickle/document.hpp"

#include <gtest/gtest.h>

#include <string>

namespace prpc::jsonpickle {
namespace {

std::string roundtrip(std::string_view in) {
  auto doc = Document::parse(in, Limits{});
  EXPECT_TRUE(doc.is_ok()) << doc.status().to_string();
  if (!doc.is_ok()) return {};
  std::string out;
  write_node(*doc, doc->root(), out);
  return out;
}

TEST(Document, WritesPythonJsonLayout) {
  EXPECT_EQ(roundtrip(R"({"a":1,"b":[1,2,{"c":null}],"d":true,"e":false})"),
            R"({"a": 1, "b": [1, 2, {"c": null}], "d": true, "e": false})");
  EXPECT_EQ(roundtrip("[]"), "[]");
  EXPECT_EQ(roundtrip("{}"), "{}");
  EXPECT_EQ(roundtrip(" [ [ ] , { } ] "), "[[], {}]");
}

TEST(Document, KeepsNumberTextAndNonFiniteLiterals) {
  EXPECT_EQ(roundtrip("[1180591620717411303424, -0.0, 1e+100, 5e-324, NaN, Infinity, -Infinity]"),
            "[1180591620717411303424, -0.0, 1e+100, 5e-324, NaN, Infinity, -Infinity]");
}

TEST(Document, EscapesLikeEnsureAscii) {
  EXPECT_EQ(roundtrip("\"h\xc3\xa9llo \xe2\x98\x83\""), R"("h\u00e9llo \u2603")");
  EXPECT_EQ(roundtrip("\"\xf0\x9f\x98\x80\""), R"("\ud83d\ude00")");
  EXPECT_EQ(roundtrip(R"("q\"\\\n\t\u0001/")"), R"("q\"\\\n\t\u0001/")");
  EXPECT_EQ(roundtrip(R"("\u0000\b\f\r\u001f\u007f\u2028")"),
            R"("\u0000\b\f\r\u001f\u007f\u2028")");
  EXPECT_EQ(roundtrip(R"("\/")"), R"("/")");
  // A lone surrogate survives (Python's json accepts it).
  EXPECT_EQ(roundtrip(R"("\ud800x")"), R"("\ud800x")");
  EXPECT_EQ(roundtrip(R"("\uD83D\uDE00")"), R"("\ud83d\ude00")");
}

TEST(Document, RejectsMalformedInputWithOffsets) {
  for (std::string_view bad :
       {"", "[", "[1,", "{\"a\"", "{\"a\":}", "[1 2]", "nul", "01", "1.", "-", "\"abc", "\"\x01\"",
        "[1]x", "{'a': 1}", "\"\\x\"", "\"\\u12\"", "tru", "[,]", "{,}"}) {
    auto doc = Document::parse(bad, Limits{});
    ASSERT_FALSE(doc.is_ok()) << bad;
    EXPECT_EQ(doc.status().code(), StatusCode::kDecode) << bad;
    EXPECT_NE(doc.status().message().find("offset"), std::string::npos) << doc.status().message();
  }
}

TEST(Document, RejectsInvalidUtf8) {
  for (std::string_view bad :
       {"\"\xff\"", "\"\xc3\"", "\"\xed\xa0\x80\"", "\"\xc0\xaf\"", "\"\xf4\x90\x80\x80\""}) {
    auto doc = Document::parse(bad, Limits{});
    ASSERT_FALSE(doc.is_ok());
    EXPECT_NE(doc.status().message().find("UTF-8"), std::string::npos);
  }
}

TEST(Document, MillionLevelsAreRefusedWithoutRecursion) {
  std::string deep(1'000'000, '[');
  auto doc = Document::parse(deep, Limits{});
  ASSERT_FALSE(doc.is_ok());
  EXPECT_EQ(doc.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(doc.status().message().find("nesting deeper than 512"), std::string::npos);

  // And a very deep document that is allowed is parsed and written without recursion.
  Limits lax;
  lax.max_depth = 200'000;
  std::string ok = std::string(100'000, '[') + std::string(100'000, ']');
  auto d2 = Document::parse(ok, lax);
  ASSERT_TRUE(d2.is_ok());
  std::string out;
  write_node(*d2, d2->root(), out);
  EXPECT_EQ(out, ok);
}

TEST(Document, EnforcesSizeAndDigitLimits) {
  Limits l;
  l.max_bytes = 10;
  auto big = Document::parse("[1,2,3,4,5,6]", l);
  ASSERT_FALSE(big.is_ok());
  EXPECT_EQ(big.status().code(), StatusCode::kResourceExhausted);

  Limits d;
  d.max_int_digits = 5;
  EXPECT_TRUE(Document::parse("[12345, 1.23456789, 1e999]", d).is_ok());
  auto many = Document::parse("[123456]", d);
  ASSERT_FALSE(many.is_ok());
  EXPECT_NE(many.status().message().find("6 digits"), std::string::npos);
}

TEST(Document, MemberLookupTakesTheLastDuplicate) {
  auto doc = Document::parse(R"({"a": 1, "b": 2, "a": 3})", Limits{});
  ASSERT_TRUE(doc.is_ok());
  EXPECT_EQ((*doc)[doc->member(doc->root(), "a")].text, "3");
  EXPECT_EQ(doc->member(doc->root(), "zz"), kNoNode);
}

TEST(Base64, MatchesPython) {
  EXPECT_EQ(base64_encode(std::string("\x00\x01"
                                      "abc\xff",
                                      6)),
            "AAFhYmP/");
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("ab"), "YWI=");
  EXPECT_EQ(base64_encode("a"), "YQ==");
  std::string out;
  ASSERT_TRUE(base64_decode("AAFhYmP/", out));
  EXPECT_EQ(out, std::string("\x00\x01"
                             "abc\xff",
                             6));
  ASSERT_TRUE(base64_decode("YWI=", out));
  EXPECT_EQ(out, "ab");
  EXPECT_FALSE(base64_decode("YWI", out));
  EXPECT_FALSE(base64_decode("Y", out));
}

}  // namespace
}  // namespace prpc::jsonpickle

namespace prpc::jsonpickle {
namespace {

bool canonical(std::string_view text) {
  auto doc = Document::parse(text, Limits{});
  EXPECT_TRUE(doc.is_ok()) << text;
  return doc.is_ok() && doc->canonical();
}

TEST(Document, KnowsWhenItIsInJsonDumpsLayout) {
  EXPECT_TRUE(canonical(R"({"a": [1, 2.5, "x\n\u00e9\ud83d\ude00"], "b": {}})"));
  EXPECT_TRUE(canonical("[]"));
  EXPECT_FALSE(canonical(R"({"a":1})"));
  EXPECT_FALSE(canonical(R"([1,2])"));
  EXPECT_FALSE(canonical(" [1]"));
  EXPECT_FALSE(canonical("[1, \n2]"));
  EXPECT_FALSE(canonical("[ ]"));
  EXPECT_FALSE(canonical("\"\xc3\xa9\""));
  EXPECT_FALSE(canonical(R"("\/")"));
  EXPECT_FALSE(canonical(R"("\u0041")"));
  EXPECT_FALSE(canonical(R"("\u000a")"));
  EXPECT_FALSE(canonical(R"("\u00E9")"));
}

TEST(Document, KeepsEachNodesSourceRange) {
  std::string_view text = R"({"a": [1, {"b": "c"}], "d": null})";
  auto doc = Document::parse(text, Limits{});
  ASSERT_TRUE(doc.is_ok());
  EXPECT_EQ(doc->source(doc->root()), text);
  EXPECT_EQ(doc->source(doc->member(doc->root(), "a")), R"([1, {"b": "c"}])");
  EXPECT_EQ(doc->source(doc->member(doc->root(), "d")), "null");
}

}  // namespace
}  // namespace prpc::jsonpickle
