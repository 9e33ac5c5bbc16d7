#include <gtest/gtest.h>

#include "prpc/plugin_loader.hpp"

namespace prpc {
namespace {

FactoryInfo broker_factory(bool open = false) {
  FactoryInfo f;
  f.kind = PluginKind::kBroker;
  f.name = "test";
  f.open_options = open;
  f.options = {
      {"url", PRPC_OPT_STRING, std::nullopt, "where", true, false},
      {"ttl", PRPC_OPT_DURATION_MS, "6h", "how long", false, false},
      {"count", PRPC_OPT_INT, "3", "how many", false, false},
      {"flag", PRPC_OPT_BOOL, "false", "whether", false, false},
  };
  return f;
}

TEST(Options, DefaultsAreFilledAndValuesCanonical) {
  auto r = resolve_options(broker_factory(), {{"url", "x://"}, {"ttl", "2s"}, {"flag", "yes"}});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)["url"], "x://");
  EXPECT_EQ((*r)["ttl"], "2000");
  EXPECT_EQ((*r)["count"], "3");
  EXPECT_EQ((*r)["flag"], "true");
}

TEST(Options, MissingRequiredWrongTypeUnknownKey) {
  auto missing = resolve_options(broker_factory(), {});
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().message(), "broker 'test': option 'url' is required (where)");

  auto wrong = resolve_options(broker_factory(), {{"url", "u"}, {"count", "many"}});
  ASSERT_FALSE(wrong.is_ok());
  EXPECT_EQ(wrong.status().message(), "broker 'test': option 'count': 'many' is not an integer");

  auto unknown = resolve_options(broker_factory(), {{"url", "u"}, {"colour", "red"}});
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_EQ(unknown.status().message(),
            "broker 'test': unknown option 'colour' (known: url, ttl, count, flag)");
}

TEST(Options, OpenFactoriesPassUnknownKeysThrough) {
  auto r = resolve_options(broker_factory(true), {{"url", "u"}, {"sasl.mechanism", "PLAIN"}});
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ((*r)["sasl.mechanism"], "PLAIN");
}

}  // namespace
}  // namespace prpc
