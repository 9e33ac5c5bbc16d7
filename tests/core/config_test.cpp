#include <gtest/gtest.h>

#include <fstream>

#include "process.hpp"
#include "prpc/config.hpp"

namespace prpc {
namespace {

TEST(Config, FlattensTomlToDottedKeys) {
  auto c = Config::parse_toml(R"(
[broker]
type = "redis"
url = "redis://127.0.0.1:6379/0"
[broker.options]
result_ttl = "6h"
[server]
max_in_flight = 128
verbose = true
ratio = 0.25
[functions]
plugins = ["example", "with \"quote\""]
)");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->get("broker.type"), "redis");
  EXPECT_EQ(c->get("broker.options.result_ttl"), "6h");
  EXPECT_EQ(*c->get_int("server.max_in_flight", 0), 128);
  EXPECT_TRUE(*c->get_bool("server.verbose", false));
  EXPECT_EQ(c->get("server.ratio"), "0.25");
  EXPECT_EQ(c->get_list("functions.plugins"),
            (std::vector<std::string>{"example", "with \"quote\""}));
  auto sub = c->subtree("broker");
  EXPECT_EQ(sub.size(), 3u);
  EXPECT_EQ(sub["options.result_ttl"], "6h");
  EXPECT_FALSE(c->get("missing"));
  EXPECT_EQ(c->get_or("missing", "fallback"), "fallback");
}

TEST(Config, TomlErrorsNameTheLine) {
  auto c = Config::parse_toml("[broker\ntype = 1", "prpc.toml");
  ASSERT_FALSE(c.is_ok());
  EXPECT_EQ(c.status().message().rfind("prpc.toml:1:", 0), 0u) << c.status().message();
}

TEST(Config, LoadsAFile) {
  testing::TempDir dir;
  auto path = dir.path() / "prpc.toml";
  std::ofstream(path) << "[queue]\nname = \"orders\"\n";
  auto c = Config::load_file(path);
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->get("queue.name"), "orders");
  auto missing = Config::load_file(dir.path() / "nope.toml");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("no such configuration file"), std::string::npos);
}

TEST(Config, EnvironmentOverridesWithTheSeedsNames) {
  Config c;
  c.set("broker.type", "kafka");
  const char* env[] = {"PRPC_TYPE_BROKER=redis",
                       "PRPC_URL_BROKER=redis://h:1/2",
                       "PRPC_QUEUE_NAME=task_prpc",
                       "PRPC_SERVER__MAX_IN_FLIGHT=7",
                       "PRPC_BROKER__OPTIONS__RESULT_TTL=1h",
                       "OTHER=ignored",
                       nullptr};
  c.apply_environment(env);
  EXPECT_EQ(c.get("broker.type"), "redis");
  EXPECT_EQ(c.get("broker.url"), "redis://h:1/2");
  EXPECT_EQ(c.get("queue.name"), "task_prpc");
  EXPECT_EQ(c.get("server.max_in_flight"), "7");
  EXPECT_EQ(c.get("broker.options.result_ttl"), "1h");
  EXPECT_FALSE(c.has("other"));
  EXPECT_EQ(Config::env_name("broker.url"), "PRPC_URL_BROKER");
  EXPECT_EQ(Config::env_name("server.max_in_flight"), "PRPC_SERVER__MAX_IN_FLIGHT");
}

TEST(Config, CommaListsFromTheEnvironment) {
  Config c;
  c.set("plugins.load", "a.so, b.so,,c.so");
  EXPECT_EQ(c.get_list("plugins.load"), (std::vector<std::string>{"a.so", "b.so", "c.so"}));
}

TEST(Config, TypedReadingsSayWhatIsWrong) {
  Config c;
  c.set("server.max_in_flight", "lots");
  c.set("server.drain_grace", "soon");
  auto n = c.get_int("server.max_in_flight", 1);
  ASSERT_FALSE(n.is_ok());
  EXPECT_EQ(n.status().message(), "server.max_in_flight: 'lots' is not an integer");
  EXPECT_FALSE(c.get_duration("server.drain_grace", {}).is_ok());
}

TEST(Config, Durations) {
  using namespace std::chrono_literals;
  EXPECT_EQ(*parse_duration("250ms"), 250ms);
  EXPECT_EQ(*parse_duration("5s"), 5000ms);
  EXPECT_EQ(*parse_duration("1.5s"), 1500ms);
  EXPECT_EQ(*parse_duration("2m"), 120000ms);
  EXPECT_EQ(*parse_duration("6h"), std::chrono::milliseconds(6 * 3600 * 1000));
  EXPECT_EQ(*parse_duration("1d"), std::chrono::milliseconds(86400 * 1000));
  EXPECT_EQ(*parse_duration("42"), 42ms);
  EXPECT_FALSE(parse_duration("-1s").is_ok());
  EXPECT_FALSE(parse_duration("5 parsecs").is_ok());
  EXPECT_FALSE(parse_duration("").is_ok());
  EXPECT_TRUE(*parse_bool("yes"));
  EXPECT_FALSE(*parse_bool("off"));
  EXPECT_FALSE(parse_bool("maybe").is_ok());
}

TEST(Config, SecretKeysAreKnownByTheirWords) {
  for (const char* key : {"broker.options.sasl.password", "broker.options.ssl.key.pem",
                          "broker.options.sasl.oauthbearer.client.secret",
                          "broker.options.sasl.oauthbearer.config", "security.signing_key",
                          "security.previous_keys", "SASL.PASSWORD", "broker.options.api_token"}) {
    EXPECT_TRUE(is_secret_key(key)) << key;
  }
  for (const char* key :
       {"broker.url", "broker.options.sasl.username", "broker.options.security.protocol",
        "queue.name", "server.max_in_flight"}) {
    EXPECT_FALSE(is_secret_key(key)) << key;
  }
}

}  // namespace
}  // namespace prpc
