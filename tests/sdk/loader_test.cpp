// The plugin loader refuses every broken plugin with a one-line message and keeps working.
#include <gtest/gtest.h>

#include <fstream>

#include "process.hpp"
#include "prpc/plugin_loader.hpp"

namespace prpc {
namespace {

namespace fs = std::filesystem;

fs::path fixture(const std::string& name) { return fs::path(PRPC_FIXTURE_DIR) / (name + ".so"); }

class LoaderTest : public ::testing::Test {
 protected:
  // After every refusal the registry must still load and use a good plugin.
  void expect_still_usable() {
    ASSERT_TRUE(registry_.load(fixture("prpc_codec_good")).is_ok());
    auto codec = registry_.make_codec("good", {{"suffix", "!"}});
    ASSERT_TRUE(codec.is_ok()) << codec.status().to_string();
    auto m = (*codec)->decode("hello");
    ASSERT_TRUE(m.is_ok());
    EXPECT_EQ(m->func_name, "HELLO!");
  }
  static void expect_one_line(const Status& s) {
    EXPECT_FALSE(s.is_ok());
    EXPECT_EQ(s.message().find('\n'), std::string::npos) << s.message();
  }

  PluginRegistry registry_{{PRPC_FIXTURE_DIR}};
};

TEST_F(LoaderTest, LoadsAGoodPluginAndDescribesIt) {
  ASSERT_TRUE(registry_.load(fixture("prpc_codec_good")).is_ok());
  auto plugins = registry_.loaded();
  ASSERT_EQ(plugins.size(), 1u);
  EXPECT_EQ(plugins[0].name, "good");
  EXPECT_EQ(plugins[0].abi_major, PRPC_ABI_MAJOR);
  ASSERT_EQ(plugins[0].factories.size(), 1u);
  const FactoryInfo& f = plugins[0].factories[0];
  EXPECT_EQ(f.kind, PluginKind::kCodec);
  EXPECT_EQ(f.name, "good");
  ASSERT_EQ(f.options.size(), 2u);
  EXPECT_EQ(f.options[0].key, "suffix");
  EXPECT_EQ(f.options[1].default_value, "false");
  // Loading the same file twice is harmless.
  EXPECT_TRUE(registry_.load(fixture("prpc_codec_good")).is_ok());
  EXPECT_EQ(registry_.loaded().size(), 1u);
}

TEST_F(LoaderTest, WrongMajorVersion) {
  Status s = registry_.load(fixture("prpc_codec_wrong_major"));
  expect_one_line(s);
  std::string host = std::to_string(PRPC_ABI_MAJOR) + "." + std::to_string(PRPC_ABI_MINOR);
  std::string plugin = std::to_string(PRPC_ABI_MAJOR + 1) + "." + std::to_string(PRPC_ABI_MINOR);
  EXPECT_NE(s.message().find("was built for plugin ABI " + plugin + "; this host speaks " + host +
                             " and major versions must match"),
            std::string::npos)
      << s.message();
  EXPECT_EQ(registry_.find(PluginKind::kCodec, "wrong_major"), nullptr);
  expect_still_usable();
}

TEST_F(LoaderTest, NewerMinorVersion) {
  Status s = registry_.load(fixture("prpc_codec_newer_minor"));
  expect_one_line(s);
  std::string host = std::to_string(PRPC_ABI_MAJOR) + "." + std::to_string(PRPC_ABI_MINOR);
  std::string plugin = std::to_string(PRPC_ABI_MAJOR) + "." + std::to_string(PRPC_ABI_MINOR + 1);
  EXPECT_NE(s.message().find("needs plugin ABI " + plugin + ", newer than this host's " + host),
            std::string::npos)
      << s.message();
  expect_still_usable();
}

TEST_F(LoaderTest, NoEntrySymbol) {
  Status s = registry_.load(fixture("prpc_codec_no_entry"));
  expect_one_line(s);
  EXPECT_NE(s.message().find("is not a PRPC plugin: it exports no prpc_plugin_entry symbol"),
            std::string::npos)
      << s.message();
  expect_still_usable();
}

TEST_F(LoaderTest, UnknownKind) {
  Status s = registry_.load(fixture("prpc_codec_unknown_kind"));
  expect_one_line(s);
  EXPECT_NE(s.message().find("factory 'unknown_kind' has unknown kind 42"), std::string::npos)
      << s.message();
  expect_still_usable();
}

TEST_F(LoaderTest, PluginThatDeclinesTheHost) {
  Status s = registry_.load(fixture("prpc_codec_declines"));
  expect_one_line(s);
  EXPECT_NE(s.message().find("the plugin declined this host"), std::string::npos) << s.message();
  expect_still_usable();
}

TEST_F(LoaderTest, DuplicateName) {
  ASSERT_TRUE(registry_.load(fixture("prpc_codec_dup_a")).is_ok());
  Status s = registry_.load(fixture("prpc_codec_dup_b"));
  expect_one_line(s);
  EXPECT_NE(s.message().find("codec 'dup' is already provided by plugin 'dup_a'"),
            std::string::npos)
      << s.message();
  // The first one still works; the refused library registered nothing.
  auto codec = registry_.make_codec("dup", {});
  ASSERT_TRUE(codec.is_ok());
  EXPECT_EQ(registry_.loaded().size(), 1u);
  expect_still_usable();
}

TEST_F(LoaderTest, FactoryThatThrows) {
  ASSERT_TRUE(registry_.load(fixture("prpc_codec_throws")).is_ok());
  auto codec = registry_.make_codec("throws", {});
  ASSERT_FALSE(codec.is_ok());
  expect_one_line(codec.status());
  EXPECT_EQ(codec.status().message(), "codec 'throws': create: the factory failed on purpose");
  expect_still_usable();
}

TEST_F(LoaderTest, ExceptionsInsideAPluginBecomeErrors) {
  ASSERT_TRUE(registry_.load(fixture("prpc_codec_good")).is_ok());
  auto failing = registry_.make_codec("good", {{"fail", "true"}});
  ASSERT_FALSE(failing.is_ok());
  EXPECT_NE(failing.status().message().find("asked to fail"), std::string::npos);
  auto codec = registry_.make_codec("good", {});
  ASSERT_TRUE(codec.is_ok());
  auto r = (*codec)->decode("throw");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_EQ(r.status().message(), "decode threw");
}

TEST_F(LoaderTest, BadOptionsAreRefusedBeforeCreate) {
  ASSERT_TRUE(registry_.load(fixture("prpc_codec_good")).is_ok());
  auto r = registry_.make_codec("good", {{"fail", "perhaps"}});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(),
            "codec 'good': option 'fail': 'perhaps' is not a boolean "
            "(true/false)");
  auto unknown = registry_.make_codec("good", {{"colour", "red"}});
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_NE(unknown.status().message().find("unknown option 'colour'"), std::string::npos);
}

TEST_F(LoaderTest, NotALibraryAtAll) {
  testing::TempDir dir;
  fs::path fake = dir.path() / "prpc_codec_fake.so";
  std::ofstream(fake) << std::string(256, 'x');  // long enough to be read as a header
  Status s = registry_.load(fake);
  expect_one_line(s);
  EXPECT_NE(s.message().find("cannot load"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("invalid ELF header"), std::string::npos) << s.message();
  Status missing = registry_.load(dir.path() / "prpc_codec_missing.so");
  expect_one_line(missing);
  EXPECT_NE(missing.message().find("No such file"), std::string::npos) << missing.message();
  expect_still_usable();
}

TEST_F(LoaderTest, FindsPluginsByNameOnTheSearchPath) {
  // By the conventional file name prpc_<kind>_<name>.so ...
  ASSERT_TRUE(registry_.ensure(PluginKind::kCodec, "good").is_ok());
  // ... or by looking inside every plugin on the path (dup_a's file name says "dup_a").
  ASSERT_TRUE(registry_.ensure(PluginKind::kCodec, "dup").is_ok());
  Status s = registry_.ensure(PluginKind::kBroker, "nowhere");
  expect_one_line(s);
  EXPECT_NE(s.message().find("no broker plugin named 'nowhere' (looked for "
                             "prpc_broker_nowhere.so in: " PRPC_FIXTURE_DIR ")"),
            std::string::npos)
      << s.message();
}

TEST_F(LoaderTest, ScanListsEveryPluginWithItsProblem) {
  auto entries = registry_.scan();
  std::map<std::string, const PluginRegistry::ScanEntry*> by_file;
  for (const auto& e : entries) by_file[e.path.filename().string()] = &e;
  ASSERT_TRUE(by_file.count("prpc_codec_good.so"));
  ASSERT_TRUE(by_file["prpc_codec_good.so"]->info.has_value());
  EXPECT_EQ(by_file["prpc_codec_good.so"]->info->version, "1.0");
  ASSERT_TRUE(by_file.count("prpc_codec_wrong_major.so"));
  EXPECT_FALSE(by_file["prpc_codec_wrong_major.so"]->info.has_value());
  EXPECT_NE(by_file["prpc_codec_wrong_major.so"]->error.message().find(
                "ABI " + std::to_string(PRPC_ABI_MAJOR + 1) + "."),
            std::string::npos);
  EXPECT_TRUE(registry_.loaded().empty());  // scanning registers nothing
}

TEST_F(LoaderTest, ObjectsOutliveTheRegistry) {
  std::shared_ptr<Codec> codec;
  {
    PluginRegistry registry({PRPC_FIXTURE_DIR});
    auto r = registry.make_codec("good", {});
    ASSERT_TRUE(r.is_ok());
    codec = *r;
  }
  auto m = codec->decode("still here");
  ASSERT_TRUE(m.is_ok());
  EXPECT_EQ(m->func_name, "STILL HERE");
}

// A broker plugin built before requeue_dead_letters existed still loads, and the host answers
// that call itself without reading past the plugin's vtable.
TEST_F(LoaderTest, OldBrokerPluginCannotRequeueDeadLetters) {
  auto broker = registry_.make_broker("old_broker", {});
  ASSERT_TRUE(broker.is_ok()) << broker.status().message();
  std::vector<std::string> ids{"1-0"};
  auto r = (*broker)->requeue_dead_letters("q", ids);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_EQ(r.status().message(), "this broker cannot requeue dead letters");
}

TEST(PluginKinds, Names) {
  EXPECT_EQ(plugin_kind_name(PluginKind::kExecutor), "executor");
  EXPECT_EQ(plugin_kind_from_name("functions"), PluginKind::kFunctions);
  EXPECT_FALSE(plugin_kind_from_name("gadget"));
}

}  // namespace
}  // namespace prpc
