#include "prpc/jsonpickle/codec.hpp"

#include <gtest/gtest.h>

#include <string>

namespace prpc::jsonpickle {
namespace {

// Bytes written by Python's jsonpickle 4.1 for the same PRPCMessage state (see the comments).
// PRPCMessage('summ', [1, [2, 3]], {'z': 0.5}, UUID('1b4e28ba-...'), None, None,
//             datetime(2024, 11, 6, 9, 0, 5, 123456, tzinfo=utc), None)
constexpr std::string_view kSumm =
    R"({"py/object": "prpc.prpcmessage.PRPCMessage", "func_name": "summ", "func_args": [1, [2, 3]], "func_kwargs": {"z": 0.5}, "message_id": {"py/object": "uuid.UUID", "hex": "1b4e28ba2fa141d2883f0016d3cca427"}, "date_create_message": {"py/object": "datetime.datetime", "__reduce__": [{"py/type": "datetime.datetime"}, ["B+gLBgkABQHiQA==", {"py/reduce": [{"py/type": "datetime.timezone"}, {"py/tuple": [{"py/reduce": [{"py/type": "datetime.timedelta"}, {"py/tuple": [0, 0, 0]}]}]}]}]]}, "result": null, "exception_info": null, "date_done_message": null})";

// func_args holds a UTC datetime, so timezone.utc is first met there (id 4) and both dates' and
// the result's timezones are references to it. Extensions follow the eight fields, which are in
// the original PRPC's order (date_create_message before result).
constexpr std::string_view kSharedUtc =
    R"({"py/object": "prpc.prpcmessage.PRPCMessage", "func_name": "echo", "func_args": [[1], {"py/object": "datetime.datetime", "__reduce__": [{"py/type": "datetime.datetime"}, ["B+gBAgAAAAAAAA==", {"py/reduce": [{"py/type": "datetime.timezone"}, {"py/tuple": [{"py/reduce": [{"py/type": "datetime.timedelta"}, {"py/tuple": [0, 0, 0]}]}]}]}]]}], "func_kwargs": {}, "message_id": {"py/object": "uuid.UUID", "hex": "1b4e28ba2fa141d2883f0016d3cca427"}, "date_create_message": {"py/object": "datetime.datetime", "__reduce__": [{"py/type": "datetime.datetime"}, ["B+gLBgkABQHiQA==", {"py/id": 4}]]}, "result": {"v": [1], "w": {"py/object": "datetime.datetime", "__reduce__": [{"py/type": "datetime.datetime"}, ["B+gBAwAAAAAAAA==", {"py/id": 4}]]}}, "exception_info": "ValueError: bad", "date_done_message": {"py/object": "datetime.datetime", "__reduce__": [{"py/type": "datetime.datetime"}, ["B+gLBgkABgAAAA==", {"py/id": 4}]]}, "reply_to": "r1", "attempt": 2})";

constexpr std::string_view kUtcFragment =
    R"({"py/object": "datetime.datetime", "__reduce__": [{"py/type": "datetime.datetime"}, ["B+gBAgAAAAAAAA==", {"py/reduce": [{"py/type": "datetime.timezone"}, {"py/tuple": [{"py/reduce": [{"py/type": "datetime.timedelta"}, {"py/tuple": [0, 0, 0]}]}]}]}]]})";

Message summ_message() {
  Message m;
  m.func_name = "summ";
  m.func_args = "[1,[2,3]]";
  m.func_kwargs = R"({"z": 0.5})";
  m.message_id = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";
  m.date_create_message = "2024-11-06T09:00:05.123456+00:00";
  return m;
}

Message shared_utc_message() {
  Message m;
  m.func_name = "echo";
  m.func_args = "[[1], " + std::string(kUtcFragment) + "]";
  m.func_kwargs = "{}";
  m.message_id = "1B4E28BA2FA141D2883F0016D3CCA427";
  std::string w(kUtcFragment);
  w.replace(w.find("B+gBAgAAAAAAAA=="), 16, "B+gBAwAAAAAAAA==");
  m.result = R"({"v": [1], "w": )" + w + "}";
  m.exception_info = "ValueError: bad";
  m.date_create_message = "2024-11-06T09:00:05.123456+00:00";
  m.date_done_message = "2024-11-06T09:00:06Z";
  m.reply_to = "r1";
  m.attempt = 2;
  return m;
}

TEST(JsonpickleCodec, EncodesLikePythonJsonpickle) {
  JsonpickleCodec codec;
  auto bytes = codec.encode(summ_message());
  ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
  EXPECT_EQ(*bytes, kSumm);
}

TEST(JsonpickleCodec, SharesTimezoneUtcAcrossFragmentsAndDates) {
  JsonpickleCodec codec;
  auto bytes = codec.encode(shared_utc_message());
  ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
  EXPECT_EQ(*bytes, kSharedUtc);
}

TEST(JsonpickleCodec, DecodesPythonBytes) {
  JsonpickleCodec codec;
  auto m = codec.decode(kSumm);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ(m->func_name, "summ");
  EXPECT_EQ(m->func_args, "[1, [2, 3]]");
  EXPECT_EQ(m->func_kwargs, R"({"z": 0.5})");
  EXPECT_EQ(m->message_id, "1b4e28ba-2fa1-41d2-883f-0016d3cca427");
  EXPECT_EQ(m->result, "null");
  EXPECT_FALSE(m->exception_info.has_value());
  EXPECT_EQ(m->date_create_message, "2024-11-06T09:00:05.123456+00:00");
  EXPECT_EQ(m->date_done_message, "");
}

TEST(JsonpickleCodec, DecodeRebasesFragmentsAndFollowsSharedTimezones) {
  JsonpickleCodec codec;
  auto m = codec.decode(kSharedUtc);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  // Inside result, the timezone reference pointed into func_args: it is inlined.
  EXPECT_EQ(m->result, shared_utc_message().result);
  EXPECT_EQ(m->date_create_message, "2024-11-06T09:00:05.123456+00:00");
  EXPECT_EQ(m->date_done_message, "2024-11-06T09:00:06+00:00");
  EXPECT_EQ(m->reply_to, "r1");
  EXPECT_EQ(m->attempt, 2u);
  ASSERT_TRUE(m->exception_info.has_value());
  EXPECT_EQ(*m->exception_info, "ValueError: bad");
  // And it encodes back to the same bytes.
  auto again = codec.encode(*m);
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(*again, kSharedUtc);
}

TEST(JsonpickleCodec, DecodesSharedObjectsAsCopies) {
  // Python: x = [1]; PRPCMessage('echo', [x], {}, ..., result={'v': x}, ...)
  constexpr std::string_view kShared =
      R"({"py/object": "prpc.prpcmessage.PRPCMessage", "func_name": "echo", "func_args": [[1]], "func_kwargs": {}, "message_id": "id-1", "date_create_message": null, "result": {"v": {"py/id": 2}, "w": {"py/id": 2}}, "exception_info": null, "date_done_message": null})";
  auto m = JsonpickleCodec().decode(kShared);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ(m->result, R"({"v": [1], "w": {"py/id": 1}})");
  EXPECT_EQ(m->message_id, "id-1");
}

TEST(JsonpickleCodec, AcceptsTupleArgsStringIdsIsoDatesAndOffsets) {
  // Python: PRPCMessage('f', (1,), {}, 'plain-id', [1], None,
  //   datetime(2024,1,2,3,4,5,tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
  //   datetime(2024,1,2,3,4,5))
  constexpr std::string_view kVariants =
      R"({"py/object": "prpc.prpcmessage.PRPCMessage", "func_name": "f", "func_args": {"py/tuple": [1]}, "func_kwargs": {}, "message_id": "plain-id", "date_create_message": {"py/object": "datetime.datetime", "__reduce__": [{"py/type": "datetime.datetime"}, ["B+gBAgMEBQAAAA==", {"py/reduce": [{"py/type": "datetime.timezone"}, {"py/tuple": [{"py/reduce": [{"py/type": "datetime.timedelta"}, {"py/tuple": [-1, 73800, 0]}]}]}]}]]}, "result": [1], "exception_info": null, "date_done_message": {"py/object": "datetime.datetime", "__reduce__": [{"py/type": "datetime.datetime"}, ["B+gBAgMEBQAAAA=="]]}})";
  JsonpickleCodec codec;
  auto m = codec.decode(kVariants);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ(m->func_args, "[1]");
  EXPECT_EQ(m->message_id, "plain-id");
  EXPECT_EQ(m->date_create_message, "2024-01-02T03:04:05-03:30");
  EXPECT_EQ(m->date_done_message, "2024-01-02T03:04:05");

  // The same offsets encode back to the same datetime objects.
  Message back = *m;
  back.func_args = R"({"py/tuple": [1]})";
  auto bytes = codec.encode(back);
  ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
  EXPECT_EQ(*bytes, kVariants);

  // ISO text dates (an older writer) are kept as they are.
  std::string iso(kVariants);
  auto p = iso.find(R"("date_done_message": )");
  iso = iso.substr(0, p) + R"("date_done_message": "2024-01-02T03:04:05+03:00"})";
  auto m2 = codec.decode(iso);
  ASSERT_TRUE(m2.is_ok()) << m2.status().to_string();
  EXPECT_EQ(m2->date_done_message, "2024-01-02T03:04:05+03:00");
}

TEST(JsonpickleCodec, KeepsPlainUnknownAttributesAsExtensions) {
  std::string text(kSumm);
  text.insert(text.size() - 1, R"(, "something_new": [1, {"py/id": 1}], "signature": "abc")");
  auto m = JsonpickleCodec().decode(text);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ(m->func_name, "summ");
  EXPECT_EQ(m->extensions, R"({"signature": "abc"})");  // a tagged value is dropped
}

// Python's jsonpickle 4.1 for kSumm's PRPCMessage with reply_to = "r1" and then the attributes
// server, time_queued, time_executing, tracestate and labels set in that order.
constexpr std::string_view kWithExtensions =
    R"({"py/object": "prpc.prpcmessage.PRPCMessage", "func_name": "summ", "func_args": [1, [2, 3]], "func_kwargs": {"z": 0.5}, "message_id": {"py/object": "uuid.UUID", "hex": "1b4e28ba2fa141d2883f0016d3cca427"}, "date_create_message": {"py/object": "datetime.datetime", "__reduce__": [{"py/type": "datetime.datetime"}, ["B+gLBgkABQHiQA==", {"py/reduce": [{"py/type": "datetime.timezone"}, {"py/tuple": [{"py/reduce": [{"py/type": "datetime.timedelta"}, {"py/tuple": [0, 0, 0]}]}]}]}]]}, "result": null, "exception_info": null, "date_done_message": null, "reply_to": "r1", "server": "host-42", "time_queued": 0.0012, "time_executing": 0.0004, "tracestate": "k=v", "labels": {"zone": "eu\u00e9", "ids": [1, 2, {"x": null}], "empty": {}}})";

constexpr std::string_view kExtensions =
    R"({"server": "host-42", "time_queued": 0.0012, "time_executing": 0.0004, "tracestate": "k=v", "labels": {"zone": "eu\u00e9", "ids": [1, 2, {"x": null}], "empty": {}}})";

TEST(JsonpickleCodec, ExtensionsEncodeLikePythonJsonpickle) {
  Message m = summ_message();
  m.reply_to = "r1";
  m.extensions = kExtensions;
  auto bytes = JsonpickleCodec().encode(m);
  ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
  EXPECT_EQ(*bytes, kWithExtensions);
  // Any JSON layout of the same values gives the same bytes: they are written as json.dumps
  // writes them.
  m.extensions =
      "{\"server\":\"host-42\", \"time_queued\" :0.0012,\"time_executing\":0.0004,"
      "\"tracestate\":\"k=v\",\n\"labels\":{\"zone\":\"eu\xc3\xa9\",\"ids\":[1,2,{\"x\":null}],"
      "\"empty\":{}}}";
  bytes = JsonpickleCodec().encode(m);
  ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
  EXPECT_EQ(*bytes, kWithExtensions);
}

TEST(JsonpickleCodec, ExtensionsDecodeInOrder) {
  auto m = JsonpickleCodec().decode(kWithExtensions);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ(m->reply_to, "r1");
  EXPECT_EQ(m->extensions, kExtensions);
  auto back = JsonpickleCodec().encode(*m);
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(*back, kWithExtensions);
  auto none = JsonpickleCodec().decode(kSumm);
  ASSERT_TRUE(none.is_ok());
  EXPECT_EQ(none->extensions, "");
}

TEST(JsonpickleCodec, ExtensionsHoldOnlyPlainJson) {
  // Python wrote a second reference to the same list as {"py/id": 7}: it is not plain JSON.
  std::string text(kSumm);
  text.insert(text.size() - 1, R"(, "shared": [1], "again": {"py/id": 7}, "when": )"
                               R"({"py/object": "datetime.date", "x": 1}, "k": {"a": {"py/b": 1}},)"
                               R"( "n": 1, "n": 2)");
  auto m = JsonpickleCodec().decode(text);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ(m->extensions, R"({"shared": [1], "n": 2})");

  Message out = summ_message();
  out.extensions = R"({"func_name": "evil", "py/object": "os.system", "t": {"py/tuple": [1]}, )"
                   R"("ok": [true], "ok": [false]})";
  auto bytes = JsonpickleCodec().encode(out);
  ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
  EXPECT_EQ(bytes->substr(bytes->find(R"("date_done_message")")),
            R"("date_done_message": null, "ok": [false]})");
  auto back = JsonpickleCodec().decode(*bytes);
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->func_name, "summ");

  out.extensions = "not json";
  auto bad = JsonpickleCodec().encode(out);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kEncode);
  EXPECT_EQ(bad.status().message().rfind("extensions: invalid JSON at offset 1", 0), 0u)
      << bad.status().message();
}

TEST(JsonpickleCodec, RefusesWhatIsNotAPrpcMessage) {
  JsonpickleCodec codec;
  for (std::string_view bad : {
           R"({"py/object": "os.Whatever", "func_name": "x", "message_id": "a"})",
           R"({"func_name": "x", "message_id": "a"})",
           R"({"py/reduce": [{"py/function": "os.system"}, {"py/tuple": ["touch /tmp/x"]}]})",
           R"([1, 2])",
       }) {
    Message salvaged;
    auto m = codec.decode(bad, &salvaged);
    ASSERT_FALSE(m.is_ok()) << bad;
    EXPECT_EQ(m.status().code(), StatusCode::kDecode);
    EXPECT_NE(m.status().message().find("not a PRPCMessage"), std::string::npos)
        << m.status().message();
  }
}

TEST(JsonpickleCodec, SalvagesIdsFromBrokenMessages) {
  JsonpickleCodec codec;
  // Valid JSON, wrong field type: the id and reply_to are still recovered.
  std::string wrong(kSumm);
  wrong.replace(wrong.find(R"("func_kwargs": {"z": 0.5})"), 25, R"("func_kwargs": [1])");
  wrong.insert(wrong.size() - 1, R"(, "reply_to": "client-7")");
  Message salvaged;
  auto m = codec.decode(wrong, &salvaged);
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("func_kwargs"), std::string::npos);
  EXPECT_EQ(salvaged.message_id, "1b4e28ba-2fa1-41d2-883f-0016d3cca427");
  EXPECT_EQ(salvaged.reply_to, "client-7");
  EXPECT_EQ(salvaged.func_name, "summ");

  // Truncated: not JSON at all, the id is found in the text.
  Message s2;
  auto t = codec.decode(kSumm.substr(0, 240), &s2);
  ASSERT_FALSE(t.is_ok());
  EXPECT_EQ(s2.message_id, "1b4e28ba-2fa1-41d2-883f-0016d3cca427");
  EXPECT_EQ(s2.func_name, "summ");
}

TEST(JsonpickleCodec, ReportsPreciseFieldErrors) {
  JsonpickleCodec codec;
  auto check = [&](std::string_view from, std::string_view to, std::string_view expect) {
    std::string text(kSumm);
    auto p = text.find(from);
    ASSERT_NE(p, std::string::npos) << from;
    text.replace(p, from.size(), to);
    auto m = codec.decode(text);
    ASSERT_FALSE(m.is_ok()) << text;
    EXPECT_NE(m.status().message().find(expect), std::string::npos) << m.status().message();
  };
  check(R"("func_name": "summ")", R"("func_name": 3)", "PRPCMessage.func_name: expected a string");
  check(R"("func_args": [1, [2, 3]])", R"("func_args": "x")", "PRPCMessage.func_args");
  check(R"("result": null, "exception_info": null)", R"("result": null, "exception_info": 5)",
        "PRPCMessage.exception_info");
  check("B+gLBgkABQHiQA==", "AAAA", "malformed datetime state");
  check(R"("date_done_message": null)", R"("date_done_message": "yesterday")",
        "not an ISO 8601 datetime");
}

TEST(JsonpickleCodec, EnforcesLimits) {
  Limits l;
  l.max_depth = 8;
  JsonpickleCodec codec(l);
  Message m = summ_message();
  m.result = "[[[[[[[[[[1]]]]]]]]]]";
  auto e = codec.encode(m);
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("encoding result"), std::string::npos);

  std::string deep(kSumm);
  deep.replace(deep.find(R"("result": null)"), 14, R"("result": [[[[[[[[[[1]]]]]]]]]])");
  auto d = codec.decode(deep);
  ASSERT_FALSE(d.is_ok());
  EXPECT_EQ(d.status().code(), StatusCode::kResourceExhausted);

  Limits digits;
  digits.max_int_digits = 10;
  std::string big(kSumm);
  big.replace(big.find(R"("result": null)"), 14, R"("result": 123456789012345)");
  auto b = JsonpickleCodec(digits).decode(big);
  ASSERT_FALSE(b.is_ok());
  EXPECT_NE(b.status().message().find("15 digits"), std::string::npos);
}

TEST(Datetime, IsoRoundTrips) {
  for (std::string_view iso :
       {"2024-11-06T09:00:05.123456+00:00", "2024-11-06T09:00:05+00:00", "2024-11-06T09:00:05",
        "0001-01-01T00:00:00", "9999-12-31T23:59:59.999999-23:59:59.999999",
        "2024-02-29T12:30:00+05:30", "2024-02-29T12:30:00+05:30:15"}) {
    auto dt = datetime_from_iso(iso);
    ASSERT_TRUE(dt.has_value()) << iso;
    EXPECT_EQ(iso_from_datetime(*dt), iso);
  }
  EXPECT_EQ(iso_from_datetime(*datetime_from_iso("2024-11-06T09:00:05.5Z")),
            "2024-11-06T09:00:05.500000+00:00");
  EXPECT_EQ(iso_from_datetime(*datetime_from_iso("2024-11-06 09:00")), "2024-11-06T09:00:00");
  for (std::string_view bad : {"2023-02-29T00:00:00", "2024-13-01", "2024-01-01T24:00:00",
                               "2024-01-01T00:00:00+", "2024-01-01T00:00:00 junk", "x"}) {
    EXPECT_FALSE(datetime_from_iso(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace prpc::jsonpickle
