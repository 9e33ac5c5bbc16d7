// The raw JSON codec on well-formed and malformed input of every kind.
#include <gtest/gtest.h>

#include "raw_json_codec.hpp"

namespace prpc::rawjson {
namespace {

const std::string kId = "6f1c2a4e-9a3b-4c1d-8e2f-0a1b2c3d4e5f";

std::string request(const std::string& extra = "") {
  return R"({"func_name": "hello_world", "func_args": [], "func_kwargs": {}, "message_id": ")" +
         kId + "\"" + extra + "}";
}

Status decode_error(const std::string& text, Message* salvaged = nullptr) {
  RawJsonCodec codec;
  auto r = codec.decode(text, salvaged);
  EXPECT_FALSE(r.is_ok()) << "decoded: " << text;
  return r.is_ok() ? Status::ok() : r.status();
}

TEST(RawJsonCodec, DecodesTheSeedsExample) {
  RawJsonCodec codec;
  auto r = codec.decode(request());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->func_name, "hello_world");
  EXPECT_EQ(r->func_args, "[]");
  EXPECT_EQ(r->func_kwargs, "{}");
  EXPECT_EQ(r->message_id, kId);
  EXPECT_FALSE(r->failed());
}

TEST(RawJsonCodec, DecodesTheSeedsResultExample) {
  RawJsonCodec codec;
  auto r = codec.decode(R"({
  "func_name": "hello_world", "func_args": [], "func_kwargs": {},
  "message_id": ")" + kId +
                        R"(", "result": "hellp_world", "exception_info": null,
  "date_create_message": "2024-11-06T12:00:00.0+03:00",
  "date_done_message": "2024-11-06T12:00:05.0+03:00"})");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->result, "\"hellp_world\"");
  EXPECT_EQ(r->date_create_message, "2024-11-06T12:00:00.0+03:00");
}

TEST(RawJsonCodec, OptionalFieldsDefault) {
  RawJsonCodec codec;
  auto r = codec.decode(R"({"func_name": "f", "message_id": ")" + kId + "\"}");
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->func_args, "[]");
  EXPECT_EQ(r->func_kwargs, "{}");
  EXPECT_EQ(r->result, "null");
}

TEST(RawJsonCodec, ExtensionsAndUnknownFields) {
  RawJsonCodec codec;
  auto r = codec.decode(request(R"(, "reply_to": "r1", "deadline": "2030-01-01T00:00:00Z",
      "attempt": 2, "traceparent": "00-abc", "x_custom": {"ignored": true})"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->reply_to, "r1");
  EXPECT_EQ(r->deadline, "2030-01-01T00:00:00Z");
  EXPECT_EQ(r->attempt, 2u);
  EXPECT_EQ(r->traceparent, "00-abc");
  EXPECT_EQ(r->extensions, R"({"x_custom": {"ignored": true}})");
}

// Fields the codec does not name are kept in Message::extensions, in order and byte for byte,
// and written back after the named ones.
TEST(RawJsonCodec, ExtensionsRoundTrip) {
  RawJsonCodec codec;
  auto r = codec.decode(request(R"(, "server" : "host-42", "time_queued": 1.20e-3,)"
                                R"( "reply_to": "r", "tracestate": "k=v",)"
                                R"( "nested": {"a": [1, {"b": null}]},)"
                                R"( "py/object": "os.system", "caf\u00e9": true)"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->reply_to, "r");
  // A py/ tag is not an extension; keys are written back as UTF-8.
  EXPECT_EQ(r->extensions,
            "{\"server\": \"host-42\", \"time_queued\": 1.20e-3, "
            "\"tracestate\": \"k=v\", \"nested\": {\"a\": [1, {\"b\": null}]}, "
            "\"caf\xc3\xa9\": true}");
  auto e = codec.encode(*r);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ(e->substr(e->find("\"reply_to\"")),
            "\"reply_to\": \"r\", \"server\": \"host-42\", \"time_queued\": 1.20e-3, "
            "\"tracestate\": \"k=v\", \"nested\": {\"a\": [1, {\"b\": null}]}, "
            "\"caf\xc3\xa9\": true}");
  auto back = codec.decode(*e);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->extensions, r->extensions);

  auto plain = codec.decode(request());
  ASSERT_TRUE(plain.is_ok());
  EXPECT_EQ(plain->extensions, "");  // empty when none
}

TEST(RawJsonCodec, EncodeSkipsNamedFieldsTagsAndRepeatsInExtensions) {
  RawJsonCodec codec;
  Message m;
  m.func_name = "f";
  m.message_id = kId;
  m.extensions = R"({"func_name": "evil", "py/object": "x", "a": 1, "a": 2, "b": []})";
  auto e = codec.encode(m);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ(e->substr(e->find("\"date_done_message\"")),
            R"("date_done_message": null, "a": 2, "b": []})");
  auto back = codec.decode(*e);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->func_name, "f");
  EXPECT_EQ(back->extensions, R"({"a": 2, "b": []})");

  m.extensions = "{}";
  ASSERT_TRUE(codec.encode(m).is_ok());
  m.extensions = "[1]";
  auto bad = codec.encode(m);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kEncode);
  EXPECT_EQ(bad.status().message(), "extensions: expected a JSON object, got array");
}

TEST(RawJsonCodec, MessageIdComesBackAsSent) {
  RawJsonCodec codec;
  std::string upper = "6F1C2A4E9A3B4C1D8E2F0A1B2C3D4E5F";
  auto r = codec.decode(R"({"func_name": "f", "message_id": ")" + upper + "\"}");
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->message_id, upper);
  auto encoded = codec.encode(*r);
  ASSERT_TRUE(encoded.is_ok());
  EXPECT_NE(encoded->find("\"message_id\": \"" + upper + "\""), std::string::npos);
}

TEST(RawJsonCodec, ReadsTheOriginalServersHexMessageId) {
  // The original PRPC's servers answered raw requests with message_id as {"hex": ...}.
  RawJsonCodec codec;
  auto r = codec.decode(
      R"({"func_name": "f", "message_id": {"hex": "6f1c2a4e9a3b4c1d8e2f0a1b2c3d4e5f"}, "result": 4})");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->message_id, "6f1c2a4e-9a3b-4c1d-8e2f-0a1b2c3d4e5f");
  EXPECT_EQ(r->result, "4");
}

TEST(RawJsonCodec, EncodesInTheSeedsFieldOrder) {
  RawJsonCodec codec;
  Message m;
  m.func_name = "summ";
  m.func_args = "[1, 2]";
  m.func_kwargs = R"({"z": 1})";
  m.message_id = kId;
  m.result = "4";
  m.date_create_message = "2024-11-06T12:00:00+00:00";
  auto e = codec.encode(m);
  ASSERT_TRUE(e.is_ok());
  EXPECT_EQ(
      *e, R"({"func_name": "summ", "func_args": [1, 2], "func_kwargs": {"z": 1}, )"
          R"("message_id": ")" +
              kId +
              R"(", "result": 4, "exception_info": null, )"
              R"("date_create_message": "2024-11-06T12:00:00+00:00", "date_done_message": null})");
  m.exception_info = "ValueError: \"bad\"\n";
  m.exception_type = "ValueError";
  e = codec.encode(m);
  ASSERT_TRUE(e.is_ok());
  EXPECT_NE(e->find(R"("exception_info": "ValueError: \"bad\"\n")"), std::string::npos);
  EXPECT_NE(e->find(R"("exception_type": "ValueError")"), std::string::npos);
  auto back = codec.decode(*e);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->exception_info, m.exception_info);
}

struct BadCase {
  const char* name;
  std::string input;
  std::string message;  // the exact error, or its prefix when it ends with '*'
};

class RawJsonMalformed : public ::testing::TestWithParam<BadCase> {};

TEST_P(RawJsonMalformed, IsRefusedPrecisely) {
  const BadCase& c = GetParam();
  Status s = decode_error(c.input);
  EXPECT_EQ(s.code(), c.message.find("limit") != std::string::npos ||
                              c.message.find("deeper") != std::string::npos
                          ? StatusCode::kResourceExhausted
                          : StatusCode::kDecode);
  if (!c.message.empty() && c.message.back() == '*') {
    EXPECT_EQ(s.message().rfind(c.message.substr(0, c.message.size() - 1), 0), 0u) << s.message();
  } else {
    EXPECT_EQ(s.message(), c.message);
  }
}

std::string with(const std::string& fields) { return "{" + fields + "}"; }
const std::string kIdField = R"("message_id": ")" + kId + "\"";

INSTANTIATE_TEST_SUITE_P(
    EveryKind, RawJsonMalformed,
    ::testing::Values(
        BadCase{"empty", "", "invalid JSON at offset 0: The document is empty.*"},
        BadCase{"whitespace", "  \n", "invalid JSON at offset 3: The document is empty.*"},
        BadCase{"not_json", "hello", "invalid JSON at offset 0: Invalid value.*"},
        BadCase{"truncated", R"({"func_name": "f", "message_id": ")",
                "invalid JSON at offset 34: Missing a closing quotation mark in string.*"},
        BadCase{"trailing_garbage", request() + " }", "invalid JSON at offset*"},
        BadCase{"trailing_comma", with(R"("func_name": "f", )" + kIdField + ","),
                "invalid JSON at offset*"},
        BadCase{"array_root", "[1, 2]", "expected a JSON object, got array"},
        BadCase{"string_root", R"("text")", "expected a JSON object, got string"},
        BadCase{"null_root", "null", "expected a JSON object, got null"},
        BadCase{"missing_func_name", with(kIdField), "func_name: missing (required)"},
        BadCase{"missing_message_id", with(R"("func_name": "f")"),
                "message_id: missing (required)"},
        BadCase{"func_name_number", with(R"("func_name": 1, )" + kIdField),
                "func_name: expected string, got number"},
        BadCase{"func_name_null", with(R"("func_name": null, )" + kIdField),
                "func_name: expected string, got null"},
        BadCase{"func_args_object", with(R"("func_name": "f", "func_args": {}, )" + kIdField),
                "func_args: expected array, got object"},
        BadCase{"func_args_string", with(R"("func_name": "f", "func_args": "1", )" + kIdField),
                "func_args: expected array, got string"},
        BadCase{"func_kwargs_array", with(R"("func_name": "f", "func_kwargs": [], )" + kIdField),
                "func_kwargs: expected object, got array"},
        BadCase{"message_id_number", with(R"("func_name": "f", "message_id": 7)"),
                "message_id: expected string, got number"},
        BadCase{"message_id_not_uuid", with(R"("func_name": "f", "message_id": "uuid4")"),
                "message_id: 'uuid4' is not a UUID"},
        BadCase{
            "message_id_object_without_hex",
            with(R"("func_name": "f", "message_id": {"uuid": "6f1c2a4e9a3b4c1d8e2f0a1b2c3d4e5f"})"),
            "message_id: expected string, got object"},
        BadCase{"message_id_hex_not_uuid",
                with(R"("func_name": "f", "message_id": {"hex": "6f1c"})"),
                "message_id: expected string, got object"},
        BadCase{"exception_info_number",
                with(R"("func_name": "f", "exception_info": 3, )" + kIdField),
                "exception_info: expected string or null, got number"},
        BadCase{"bad_date",
                with(R"("func_name": "f", "date_create_message": "yesterday", )" + kIdField),
                "date_create_message: 'yesterday' is not an ISO 8601 date-time"},
        BadCase{"date_number",
                with(R"("func_name": "f", "date_done_message": 1700000000, )" + kIdField),
                "date_done_message: expected string or null, got number"},
        BadCase{"attempt_negative", with(R"("func_name": "f", "attempt": -1, )" + kIdField),
                "attempt: expected a non-negative integer, got -1"},
        BadCase{"attempt_text", with(R"("func_name": "f", "attempt": "2", )" + kIdField),
                "attempt: expected a non-negative integer, got \"2\""},
        BadCase{"reply_to_array", with(R"("func_name": "f", "reply_to": [], )" + kIdField),
                "reply_to: expected string or null, got array"},
        BadCase{"duplicate_field", with(R"("func_name": "f", "func_name": "g", )" + kIdField),
                "func_name: appears twice"},
        BadCase{"invalid_utf8", with("\"func_name\": \"\xff\", " + kIdField),
                "invalid JSON at offset 15: Invalid encoding in string.*"},
        BadCase{"lone_surrogate", with(R"("func_name": "\ud800", )" + kIdField),
                "invalid JSON at offset*"},
        BadCase{"nul_byte", std::string("{\"func_name\": \"a\0b\"}", 20),
                "invalid JSON at offset 16: NUL byte"},
        BadCase{"deep_nesting",
                with(R"("func_name": "f", "func_args": )" + std::string(600, '[') +
                     std::string(600, ']') + ", " + kIdField),
                "JSON nesting deeper than 512 levels*"}),
    [](const ::testing::TestParamInfo<BadCase>& p) { return p.param.name; });

TEST(RawJsonCodec, SalvagesWhomToAnswer) {
  Message salvaged;
  (void)decode_error(with(R"("func_name": 5, "reply_to": "r", )" + kIdField), &salvaged);
  EXPECT_EQ(salvaged.message_id, kId);
  EXPECT_EQ(salvaged.reply_to, "r");
  Message none;
  (void)decode_error("not json", &none);
  EXPECT_TRUE(none.message_id.empty());
  Message junk_id;
  (void)decode_error(with(R"("func_name": "f", "message_id": "line\nbreak")"), &junk_id);
  EXPECT_TRUE(junk_id.message_id.empty());  // never used as a key
}

TEST(RawJsonCodec, SizeLimit) {
  Settings s;
  s.limits.max_bytes = 64;
  RawJsonCodec codec(s);
  auto r = codec.decode(request(R"(, "padding": ")" + std::string(100, 'x') + "\""));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  // Refused, but the sender can still be answered.
  Message salvaged;
  auto refused = codec.decode(
      R"({"message_id": ")" + kId + R"(", "padding": ")" + std::string(100, 'x') + "\"}",
      &salvaged);
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(salvaged.message_id, kId);
  Message big;
  big.func_name = "f";
  big.message_id = kId;
  big.result = "\"" + std::string(100, 'x') + "\"";
  EXPECT_EQ(codec.encode(big).status().code(), StatusCode::kResourceExhausted);
}

TEST(RawJsonCodec, UuidCheckCanBeRelaxed) {
  Settings s;
  s.require_uuid = false;
  RawJsonCodec codec(s);
  EXPECT_TRUE(codec.decode(with(R"("func_name": "f", "message_id": "job-42")")).is_ok());
}

}  // namespace
}  // namespace prpc::rawjson
