// The codec as the host sees it: loaded from its .so through the plugin registry.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <string>

#include "prpc/plugin_loader.hpp"

namespace {

TEST(JsonpicklePlugin, LoadsAndRoundTrips) {
  prpc::PluginRegistry registry({PRPC_CODEC_PLUGIN_DIR});
  ASSERT_TRUE(registry.ensure(prpc::PluginKind::kCodec, "jsonpickle").is_ok());
  const prpc::FactoryInfo* info = registry.find(prpc::PluginKind::kCodec, "jsonpickle");
  ASSERT_NE(info, nullptr);
  ASSERT_EQ(info->options.size(), 3u);
  EXPECT_EQ(info->options[0].key, "max_depth");

  auto codec = registry.make_codec("jsonpickle", {});
  ASSERT_TRUE(codec.is_ok()) << codec.status().to_string();
  EXPECT_EQ((*codec)->dialect(), "jsonpickle");

  prpc::Message m;
  m.func_name = "echo";
  m.func_args = R"([[1], {"py/id": 1}])";
  m.message_id = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";
  m.date_create_message = "2024-11-06T09:00:05+00:00";
  auto bytes = (*codec)->encode(m);
  ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
  EXPECT_NE(bytes->find(R"("func_args": [[1], {"py/id": 2}])"), std::string::npos) << *bytes;
  auto back = (*codec)->decode(*bytes);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->func_args, m.func_args);
  EXPECT_EQ(back->message_id, m.message_id);
  EXPECT_EQ(back->date_create_message, m.date_create_message);
}

TEST(JsonpicklePlugin, OptionsReachTheCodec) {
  prpc::PluginRegistry registry({PRPC_CODEC_PLUGIN_DIR});
  auto codec = registry.make_codec("jsonpickle", {{"max_depth", "4"}});
  ASSERT_TRUE(codec.is_ok()) << codec.status().to_string();
  prpc::Message m;
  m.func_name = "f";
  m.message_id = "x";
  m.result = "[[[[[1]]]]]";
  auto bytes = (*codec)->encode(m);
  ASSERT_FALSE(bytes.is_ok());
  EXPECT_NE(bytes.status().message().find("nesting deeper than 4"), std::string::npos);

  // A decode failure reaches the host with what could be salvaged.
  prpc::Message salvaged;
  auto bad = (*codec)->decode(
      R"({"py/object": "evil.Thing", "message_id": "abc", "reply_to": "r"})", &salvaged);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), prpc::StatusCode::kDecode);
  EXPECT_EQ(salvaged.message_id, "abc");
  EXPECT_EQ(salvaged.reply_to, "r");
}

TEST(JsonpicklePlugin, ExportsOnlyTheEntryPoint) {
  std::string cmd = std::string("nm -D --defined-only ") + PRPC_CODEC_PLUGIN_FILE;
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  std::array<char, 256> buf{};
  while (fgets(buf.data(), static_cast<int>(buf.size()), p) != nullptr) out += buf.data();
  ASSERT_EQ(pclose(p), 0);
  EXPECT_NE(out.find(" T prpc_plugin_entry"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
}

}  // namespace
