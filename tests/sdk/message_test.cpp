// The plugin contract's C++ types: the message and Status / Result.
#include <gtest/gtest.h>

#include "prpc/message.hpp"
#include "prpc/status.hpp"

namespace prpc {
namespace {

TEST(Message, DefaultsMatchTheProtocol) {
  Message m;
  EXPECT_EQ(m.func_args, "[]");
  EXPECT_EQ(m.func_kwargs, "{}");
  EXPECT_EQ(m.result, "null");
  EXPECT_FALSE(m.failed());
}

TEST(Message, ExtensionKeysAreTheUnnamedOnesWithoutPyTags) {
  EXPECT_TRUE(Message{}.extensions.empty());
  for (std::string_view named : kMessageFields) EXPECT_FALSE(is_extension_key(named)) << named;
  EXPECT_FALSE(is_extension_key("py/object"));
  EXPECT_FALSE(is_extension_key("py/id"));
  EXPECT_TRUE(is_extension_key("server"));
  EXPECT_TRUE(is_extension_key("py"));
  EXPECT_TRUE(is_extension_key("signature"));
}

TEST(Message, ExceptionInfoIsNeverEmpty) {
  EXPECT_EQ(format_exception_info("ValueError", ""), "ValueError: ");
  EXPECT_EQ(format_exception_info("KeyError", "x"), "KeyError: x");
  EXPECT_EQ(format_exception_info("", "odd"), "Exception: odd");
}

TEST(Status, CarriesCodeMessageAndContext) {
  Status ok;
  EXPECT_TRUE(ok.is_ok());
  EXPECT_EQ(ok.to_string(), "OK");
  Status e(StatusCode::kUnavailable, "connection refused");
  EXPECT_TRUE(e.retriable());
  EXPECT_EQ(e.to_string(), "Unavailable: connection refused");
  EXPECT_EQ(e.with_context("redis").message(), "redis: connection refused");
  Result<int> r = 5;
  EXPECT_EQ(*r, 5);
  Result<int> bad = Status(StatusCode::kNotFound, "x");
  EXPECT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kNotFound);
  Result<int> misuse = Status::ok();  // an OK status is not a value
  EXPECT_FALSE(misuse.is_ok());
  EXPECT_EQ(status_code_from_abi(999), StatusCode::kInternal);
}

}  // namespace
}  // namespace prpc
